"""The container files parse and point at files that exist."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_builds_the_dockerfile_and_keeps_the_port():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["vlm-router"]
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert any("9764" in port for port in service["ports"])
    assert {"VLM_MODEL_NAME", "VLM_DEVICE", "VLM_COMPRESSION_WEIGHT_FORMAT", "VLM_SERVICE_PORT", "VLM_SEED"} <= set(service["environment"])


def test_dockerfile_copies_existing_paths_and_serves():
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    copied = [part for line in lines if line.startswith("COPY") for part in line.split()[1:-1]]
    assert copied and all((ROOT / part).exists() for part in copied)
    assert any(line.startswith("CMD") and "vlm-router" in line and "serve" in line for line in lines)
    assert any(line.startswith("USER") and "root" not in line for line in lines)
