"""`vlm-router make-tiny`: random-weight models with offline tokenizers, for tests, benchmarks and the demo.

Plugins register what they can build with the `register_tiny_models` hook, as `TinyModel`s, and build
them with the helpers here. Building needs the `convert` extra (transformers, torch, optimum-intel),
imported only when a model is built.
"""

from __future__ import annotations

import codecs
import contextlib
import inspect
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .config import WeightFormat
from .convert import convert_sync, is_openvino_folder

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Vocabulary size of every tiny model; trained tokenizers stay below it.
TINY_VOCAB = 1024
SEED = 0


class TinyModelError(Exception):
    """No installed plugin can build the requested tiny model."""


@dataclass(frozen=True)
class TinyModel:
    """A random-weight model of one `model_type` that `make-tiny` can build offline."""

    model_type: str
    #: Its presets, `tiny` first: a model of a few MB for tests; others give a real model's shapes, for benchmarks.
    presets: tuple[str, ...]
    #: `build(out_dir, preset)` writes the Hugging Face checkpoint into the empty folder `out_dir`.
    build: Callable[[Path, str], None]


def _corpus() -> list[str]:
    """Local text to train a byte-level BPE on: the Zen of Python and some standard-library source."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this

    zen = codecs.decode(this.s, "rot13")
    return [zen] * 4 + [inspect.getsource(json), inspect.getsource(shutil)]


#: Tokens a BPE learns from the local corpus; a larger vocabulary is filled up with merges of them.
_TRAINED_VOCAB = 800


def train_tokenizer(special_tokens: Sequence[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer trained offline, `special_tokens` at ids 0, 1, ...

    Every id below `vocab_size` decodes to text, as in a real model's tokenizer, so whatever a
    random-weight model generates comes out as text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, _TRAINED_VOCAB),
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return Tokenizer.from_str(json.dumps(_filled(json.loads(tokenizer.to_str()), set(special_tokens), vocab_size)))


def _filled(data: dict, special: set[str], vocab_size: int) -> dict:
    """The serialized BPE `data` with merges of its own tokens added until it has `vocab_size` ids."""
    vocab: dict[str, int] = data["model"]["vocab"]
    merges: list = data["model"]["merges"]
    pieces = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1]) if token not in special and _plain(token)]
    pairs = ((a, b) for a in pieces for b in pieces)
    while len(vocab) < vocab_size:
        a, b = next(pairs)
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
    return data


def _plain(token: str) -> bool:
    """A byte-level token of printable ASCII and spaces (`Ġ`), which decodes to clean text."""
    return all((c.isascii() and c.isprintable()) or c == "Ġ" for c in token)


@contextlib.contextmanager
def seeded() -> Iterator[None]:
    """Deterministic random weights."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        yield


def auto_map(code: ModuleType, **classes: str) -> dict[str, str]:
    """A config's `auto_map` naming `code`'s classes in a checkpoint that carries its file: `AutoConfig="MyConfig"`."""
    module = code.__name__.rpartition(".")[2]
    return {auto_class: f"{module}.{name}" for auto_class, name in classes.items()}


def save_checkpoint(model: Any, processor: Any, out_dir: Path, code: ModuleType | None = None) -> None:
    """`model`, its generation config and `processor` as a Hugging Face checkpoint in `out_dir`.

    `code` is the family's own modeling module, for a model transformers does not ship: the checkpoint carries
    its file, which `auto_map` names, and loads with `trust_remote_code`.
    """
    model.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if code is not None:
        shutil.copy(str(code.__file__), out_dir)


def make_tiny(
    models: Mapping[str, TinyModel],
    model_type: str,
    out_dir: Path,
    *,
    preset: str = "tiny",
    weight_format: WeightFormat = WeightFormat.FP16,
    hf_only: bool = False,
    force: bool = False,
) -> Path:
    """Build a random-weight `model_type` model into `out_dir`: an OpenVINO folder, or with `hf_only` the checkpoint.

    `models` are the buildable ones by model type (`vlm_router.plugins.load_tiny_models()`).
    """
    model = models.get(model_type)
    if model is None:
        raise TinyModelError(f"cannot build a tiny '{model_type}' model; buildable: {', '.join(sorted(models))}")
    if preset not in model.presets:
        raise TinyModelError(f"'{model_type}' has no preset '{preset}'; presets: {', '.join(model.presets)}")
    done = (out_dir / "config.json").is_file() if hf_only else is_openvino_folder(out_dir)
    if done and not force:
        return out_dir
    if hf_only:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        model.build(out_dir, preset)
        return out_dir
    with tempfile.TemporaryDirectory(prefix="vlm-tiny-") as tmp:
        model.build(Path(tmp), preset)
        shutil.rmtree(out_dir, ignore_errors=True)
        own_code = "auto_map" in json.loads((Path(tmp) / "config.json").read_text())  # modeling code its plugin wrote
        return convert_sync(tmp, out_dir, weight_format, trust_remote_code=own_code, own_code=own_code)
