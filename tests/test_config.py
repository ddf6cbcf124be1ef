"""models.yaml validation and the original service's environment variables."""

from pathlib import Path

import pytest

from vlm_router.config import DEFAULT_PORT, ConfigError, WeightFormat, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_minimal_file_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, "models:\n  - {name: a, path: m}\n"), env={})
    assert config.server.port == DEFAULT_PORT == 9764
    model = config.models[0]
    assert model.device == "CPU" and model.load == "lazy" and model.weight_format is WeightFormat.INT8
    assert model.path == tmp_path / "m", "relative paths resolve against the file's folder"
    assert config.server.cache_dir == tmp_path / "ov-model"


def test_shipped_models_yaml_is_valid():
    config = load_config(Path(__file__).parent.parent / "models.yaml", env={})
    sources = {m.source for m in config.models if m.source}
    assert sources == {
        "Qwen/Qwen2-VL-2B-Instruct",
        "OpenGVLab/InternVL2-4B",
        "openbmb/MiniCPM-V-2_6",
        "microsoft/Phi-3.5-vision-instruct",
        "Qwen/Qwen2.5-VL-7B-Instruct",
    }
    assert config.server.default_model == "demo"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - {name: a, path: m, device: TPU}\n", "models[0] ('a').device"),
        ("models:\n  - {name: a}\n", "models[0] ('a')"),
        ("models:\n  - {name: a, path: m, source: s}\n", "exactly one of 'path'"),
        ("models:\n  - {name: a, path: m, weight_format: int3}\n", "models[0] ('a').weight_format"),
        ("models:\n  - {name: a, path: m}\n  - {name: b, path: n, colour: red}\n", "models[1] ('b').colour"),
        ("models:\n  - {name: a, path: m}\n  - {name: b, aliases: [a], path: n}\n", "'a' is used by both"),
        ("server: {port: 70000}\n", "server.port"),
        ("server: {default_model: x}\nmodels: []\n", "default_model 'x'"),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_wrong_file_names_entry_and_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert expected in str(caught.value)


def test_environment_overrides(tmp_path):
    path = write(tmp_path, "models:\n  - {name: a, path: m}\n  - {name: b, path: n, device: GPU, defaults: {seed: 1}}\n")
    env = {"VLM_SERVICE_PORT": "8000", "VLM_DEVICE": "NPU", "VLM_SEED": "7", "VLM_COMPRESSION_WEIGHT_FORMAT": "INT4"}
    config = load_config(path, env=env)
    a, b = config.models
    assert config.server.port == 8000
    assert (a.device, a.defaults.seed, a.weight_format) == ("NPU", 7, WeightFormat.INT4)
    assert (b.device, b.defaults.seed) == ("GPU", 1), "an entry's own setting wins over the environment"


def test_model_name_selects_a_configured_model(tmp_path):
    path = write(tmp_path, "models:\n  - {name: a, path: m}\n  - {name: b, aliases: [bee], source: org/b}\n")
    assert load_config(path, env={"VLM_MODEL_NAME": "org/b"}).server.default_model == "b"
    assert load_config(path, env={"VLM_MODEL_NAME": "bee"}).server.default_model == "b"


def test_model_name_adds_a_source_model(tmp_path):
    path = write(tmp_path, "models:\n  - {name: a, path: m}\n")
    config = load_config(path, env={"VLM_MODEL_NAME": "Qwen/Qwen2-VL-2B-Instruct", "VLM_COMPRESSION_WEIGHT_FORMAT": "fp16"})
    added = config.find("Qwen/Qwen2-VL-2B-Instruct")
    assert added is not None and added.source == "Qwen/Qwen2-VL-2B-Instruct"
    assert added.weight_format is WeightFormat.FP16
    assert config.server.default_model == "Qwen/Qwen2-VL-2B-Instruct"


def test_bad_environment_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match="VLM_SERVICE_PORT"):
        load_config(write(tmp_path, "models: []\n"), env={"VLM_SERVICE_PORT": "nine"})
    with pytest.raises(ConfigError, match="device"):
        load_config(write(tmp_path, "models:\n  - {name: a, path: m}\n"), env={"VLM_DEVICE": "TPU"})


def test_empty_environment_values_count_as_unset(tmp_path):
    path = write(tmp_path, "server: {port: 9000}\nmodels:\n  - {name: a, path: m}\n")
    empty = {name: " " if name == "VLM_SEED" else "" for name in ("VLM_SERVICE_PORT", "VLM_HOST", "VLM_DEVICE", "VLM_SEED", "VLM_MODEL_NAME", "VLM_API_KEYS")}
    config = load_config(path, env={**empty, "VLM_COMPRESSION_WEIGHT_FORMAT": ""})
    (a,) = config.models
    assert (config.server.port, config.server.host, config.server.api_keys) == (9000, "127.0.0.1", [])
    assert (a.device, a.defaults.seed, a.weight_format) == ("CPU", None, WeightFormat.INT8)


def test_no_file_uses_environment_alone():
    config = load_config(None, env={"VLM_MODEL_NAME": "org/m"})
    assert [m.name for m in config.models] == ["org/m"]


def test_parse_config_accepts_empty_document():
    assert parse_config(None).models == []


def test_worker_settings_and_their_limits(tmp_path):
    text = (
        "server: {max_loaded_models: 2, memory_budget_gb: 12.5, shutdown_grace_s: 5}\n"
        "models:\n  - name: a\n    path: m\n    max_waiting: 4\n    keep_alive_s: 60\n    request_timeout_s: null\n"
        "    scheduler: {max_num_seqs: 2, cache_size_gb: 3, enable_prefix_caching: true}\n"
    )
    config = load_config(write(tmp_path, text), env={})
    model = config.models[0]
    assert (config.server.max_loaded_models, config.server.memory_budget_gb) == (2, 12.5)
    assert (model.max_waiting, model.keep_alive_s, model.request_timeout_s) == (4, 60, None)
    assert model.scheduler.scheduler_config() == {
        "cache_size": 3,
        "max_num_seqs": 2,
        "max_num_batched_tokens": 1024,
        "enable_prefix_caching": True,
        "dynamic_split_fuse": True,
    }
    with pytest.raises(ConfigError, match=r"models\[0\] \('a'\).scheduler.max_num_seqs"):
        load_config(write(tmp_path, "models:\n  - {name: a, path: m, scheduler: {max_num_seqs: 0}}\n"), env={})
    with pytest.raises(ConfigError, match="server.max_loaded_models"):
        load_config(write(tmp_path, "server: {max_loaded_models: 0}\n"), env={})
