"""`vlm-router make-tiny`: random-weight models with offline tokenizers, for tests and the demo.

Needs the `convert` extra (transformers, torch, optimum-intel); nothing here is imported when serving.
"""

from __future__ import annotations

import codecs
import contextlib
import inspect
import io
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import WeightFormat
from .convert import convert_sync, is_openvino_folder
from .plugins import FamilyRegistry

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Vocabulary size of every tiny model; trained tokenizers stay below it.
TINY_VOCAB = 1024
SEED = 0


class TinyModelError(Exception):
    """No installed family can build the requested tiny model."""


def _corpus() -> list[str]:
    """Local text to train a byte-level BPE on: the Zen of Python and some standard-library source."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this

    zen = codecs.decode(this.s, "rot13")
    return [zen] * 4 + [inspect.getsource(json), inspect.getsource(shutil)]


def train_tokenizer(special_tokens: Sequence[str], vocab_size: int = 800) -> Tokenizer:
    """A byte-level BPE tokenizer trained offline, with `special_tokens` at ids 0, 1, ..."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return tokenizer


@contextlib.contextmanager
def seeded() -> Iterator[None]:
    """Deterministic random weights."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        yield


def make_tiny(
    families: FamilyRegistry,
    model_type: str,
    out_dir: Path,
    *,
    preset: str = "tiny",
    weight_format: WeightFormat = WeightFormat.FP16,
    hf_only: bool = False,
    force: bool = False,
) -> Path:
    """Build a random-weight `model_type` model into `out_dir`: an OpenVINO folder, or with `hf_only` the checkpoint."""
    family = families.for_model_type(model_type)
    buildable = {t: p for f in families.families.values() for t, p in f.tiny_model_types().items()}
    if family is None or model_type not in buildable:
        raise TinyModelError(f"cannot build a tiny '{model_type}' model; buildable: {', '.join(sorted(buildable))}")
    if preset not in buildable[model_type]:
        raise TinyModelError(f"'{model_type}' has no preset '{preset}'; presets: {', '.join(buildable[model_type])}")
    done = (out_dir / "config.json").is_file() if hf_only else is_openvino_folder(out_dir)
    if done and not force:
        return out_dir
    if hf_only:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        family.build_tiny(model_type, out_dir, preset)
        return out_dir
    with tempfile.TemporaryDirectory(prefix="vlm-tiny-") as tmp:
        family.build_tiny(model_type, Path(tmp), preset)
        shutil.rmtree(out_dir, ignore_errors=True)
        return convert_sync(tmp, out_dir, weight_format, trust_remote_code=False)
