"""vlm-router: an OpenAI-compatible server for vision-language models on OpenVINO."""

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations; see `vlm_router.hookspecs`.
hookimpl = pluggy.HookimplMarker("vlm_router")
