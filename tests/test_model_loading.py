"""What a model loads from, without loading one: its folder, its family from `config.json`, its worker's settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from vlm_router.config import ModelConfig, ServerConfig
from vlm_router.conversation import Message
from vlm_router.convert import MARKER
from vlm_router.family import Capabilities, Family
from vlm_router.loading import LoadError, detect_family, known_family, model_folder, ov_properties, uses_batching, worker_spec
from vlm_router.plugins import FamilyRegistry


class Sketch(Family):
    name = "sketch"
    model_types = ("sketch_vl",)
    architectures = ("SketchForConditionalGeneration",)
    capabilities = Capabilities()

    def build_prompt(self, messages: Sequence[Message]) -> str:
        return ""


class OneAtATime(Sketch):
    name = "one_at_a_time"
    model_types = ("one_vl",)
    architectures = ()
    continuous_batching = False


@pytest.fixture
def families() -> FamilyRegistry:
    registry = FamilyRegistry()
    registry.add(Sketch(), "test")
    registry.add(OneAtATime(), "test")
    return registry


def folder_with(tmp_path: Path, config: object, openvino: bool = False) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    if openvino:
        (tmp_path / MARKER).write_text("")
    return tmp_path


@pytest.mark.parametrize(
    "config", [{"model_type": "sketch_vl"}, {"model_type": "sketch_vl_next", "architectures": ["SketchForConditionalGeneration"]}]
)
def test_the_family_is_read_from_model_type_or_else_architectures(families, tmp_path, config):
    assert detect_family(families, folder_with(tmp_path, config)).name == "sketch"


def test_a_folder_no_family_serves_names_the_installed_ones(families, tmp_path):
    with pytest.raises(LoadError, match=r"no installed family serves model_type 'mllama' or architectures \['Mllama'\]; .*sketch \(sketch_vl\)"):
        detect_family(families, folder_with(tmp_path, {"model_type": "mllama", "architectures": ["Mllama"]}))


@pytest.mark.parametrize(("content", "error"), [(None, "cannot read"), ("[1]", "is not a JSON object"), ("{", "cannot read")])
def test_an_unreadable_config_json_is_a_load_error(families, tmp_path, content, error):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(LoadError, match=error):
        detect_family(families, tmp_path)


def test_the_family_is_known_before_loading_when_named_or_in_the_folder(families, tmp_path):
    folder = folder_with(tmp_path, {"model_type": "one_vl"})
    assert known_family(ModelConfig(name="m", path=Path("/none"), family="sketch"), families).name == "sketch"
    assert known_family(ModelConfig(name="m", path=Path("/none"), family="absent"), families) is None
    assert known_family(ModelConfig(name="m", path=folder), families).name == "one_at_a_time"
    assert known_family(ModelConfig(name="m", source=str(folder)), families).name == "one_at_a_time"
    assert known_family(ModelConfig(name="m", source="org/model"), families) is None, "a hub name: known once converted"
    assert known_family(ModelConfig(name="m", path=tmp_path / "missing"), families) is None


async def test_the_folder_is_the_path_or_a_source_that_is_already_openvino(tmp_path):
    folder = folder_with(tmp_path, {}, openvino=True)
    assert await model_folder(ModelConfig(name="m", path=folder), tmp_path / "cache") == folder
    assert await model_folder(ModelConfig(name="m", source=str(folder)), tmp_path / "cache") == folder
    with pytest.raises(LoadError, match=r"missing is not an OpenVINO model folder \(it does not exist\): .*`vlm-router pull .*`vlm-router make-tiny "):
        await model_folder(ModelConfig(name="m", path=tmp_path / "missing"), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError, match=r"empty is not an OpenVINO model folder \(no openvino_language_model.xml\): .*`vlm-router pull .*`vlm-router make-tiny "):
        await model_folder(ModelConfig(name="m", path=tmp_path / "empty"), tmp_path / "cache")


@pytest.mark.parametrize(
    ("compile_cache", "device", "ov_config", "cache_dir"),
    [
        ("auto", "CPU", {}, None),  # CPU compiles faster than it reads a compiled model back
        ("auto", "GPU.0", {}, "compiled"),
        (True, "CPU", {}, "compiled"),
        (False, "GPU", {}, None),
        (True, "GPU", {"CACHE_DIR": "/own"}, "/own"),  # the model's own wins
        (True, "GPU", {"CACHE_DIR": ""}, None),  # "" turns it off for this model
    ],
)
def test_the_compile_cache_follows_the_server_and_the_model(tmp_path, compile_cache, device, ov_config, cache_dir):
    server = ServerConfig(cache_dir=tmp_path, compile_cache=compile_cache)
    config = ModelConfig(name="m", path=tmp_path, device=device, ov_config={"NUM_STREAMS": 1, **ov_config})
    properties = ov_properties(config, server)
    assert properties.pop("NUM_STREAMS") == 1
    expected = str(tmp_path / "compiled" / "m") if cache_dir == "compiled" else cache_dir
    assert properties == ({} if expected is None else {"CACHE_DIR": expected})


def test_the_entry_then_the_family_choose_batching(families, tmp_path):
    sketch, one = families.get("sketch"), families.get("one_at_a_time")
    assert uses_batching(ModelConfig(name="m", path=tmp_path), None), "a family not known yet does not say otherwise"
    assert uses_batching(ModelConfig(name="m", path=tmp_path), sketch)
    assert not uses_batching(ModelConfig(name="m", path=tmp_path), one)
    assert not uses_batching(ModelConfig(name="m", path=tmp_path, scheduler={"continuous_batching": False}), sketch)
    assert uses_batching(ModelConfig(name="m", path=tmp_path, scheduler={"continuous_batching": True}), one)


def test_npu_models_run_one_request_at_a_time_whatever_the_entry_says(families, tmp_path, caplog):
    """NPU runs no ContinuousBatchingPipeline: VLMPipeline (no scheduler) for every model on it, as OVMS does."""
    sketch = families.get("sketch")
    for scheduler in ({}, {"continuous_batching": True}):
        config = ModelConfig(name="m", path=tmp_path, device="NPU", scheduler=scheduler)
        assert not uses_batching(config, sketch) and not uses_batching(config, None)
        assert worker_spec(config, ServerConfig(cache_dir=tmp_path), sketch, tmp_path).scheduler is None
    assert caplog.messages == ["model 'm': NPU runs no continuous batching; serving one request at a time (VLMPipeline)"], "warned once: it asked for batching"
    assert uses_batching(ModelConfig(name="m", path=tmp_path, device="AUTO:NPU,CPU"), sketch), "AUTO may choose another device"


def test_the_worker_spec_has_a_scheduler_only_when_batching(families, tmp_path):
    config = ModelConfig(name="m", path=tmp_path, device="GPU", scheduler={"max_num_seqs": 3})
    batched = worker_spec(config, ServerConfig(cache_dir=tmp_path), families.get("sketch"), tmp_path)
    assert (batched.model, batched.model_dir, batched.device, batched.family.name) == ("m", str(tmp_path), "GPU", "sketch")
    assert batched.scheduler is not None and batched.scheduler["max_num_seqs"] == 3
    assert batched.ov_config == {"CACHE_DIR": str(tmp_path / "compiled" / "m")}
    assert worker_spec(config, ServerConfig(), families.get("one_at_a_time"), tmp_path).scheduler is None
