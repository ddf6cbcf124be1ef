"""Modeling code that tiny checkpoints carry and load with `trust_remote_code`; self-contained, importing torch and transformers only."""
