"""The demo model shipped in models/demo-qwen2-vl: it is what `make-tiny` builds now, the repository's
models.yaml serves it as users run it, and the README's quick start serves it without torch.

`tiny_qwen` is `make-tiny --family qwen2_vl` output, built by the current code; the shipped demo must match it:

- always, in what does not depend on the libraries' versions: the file names, every JSON file and the chat
  template (`transformers_version` aside), the tokenizer's settings, special tokens and vocabulary size, and
  for each OpenVINO IR its inputs and outputs (names, element types, partial shapes);
- byte for byte, where the rebuild's conversion toolchain is the one the demo was built with. `make-tiny` is
  deterministic (seeded weights, an offline tokenizer: two builds are identical), but its IRs record the
  versions of OpenVINO, torch, transformers and optimum-intel, and the weights come from torch's random
  initialisation, so other versions give other bytes. The learned BPE vocabulary (tokenizer.json's vocabulary
  and merges, vocab.json, merges.txt and the tokenizer IRs made from them) is left out of the bytes too: it is
  trained on the Python standard library's own source (`vlm_router.tiny._corpus`), which differs between Python
  releases that no IR records.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import openai
import pytest

from .conftest import CLI, ROOT, data_url, free_port, image_part, png_bytes, user, wait_healthy

DEMO = ROOT / "models" / "demo-qwen2-vl"
REBUILD = "vlm-router make-tiny --family qwen2_vl --out models/demo-qwen2-vl --force"
#: Files whose content follows the BPE vocabulary learned from Python's own source (see the module docstring).
LEARNED_VOCABULARY = ("tokenizer.json", "vocab.json", "merges.txt", "openvino_tokenizer.", "openvino_detokenizer.")


def stale(what: str) -> str:
    return f"models/demo-qwen2-vl is not what make-tiny builds now ({what}): rebuild the shipped demo with `{REBUILD}`"


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


def settings(path: Path) -> object:
    """A JSON file's content without the version of transformers that wrote it; tokenizer.json without its
    learned vocabulary and merges, but with their sizes."""
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data.pop("transformers_version", None)
    if path.name == "tokenizer.json":
        model = data["model"]
        model["vocab"], model["merges"] = len(model["vocab"]), len(model["merges"])
    elif path.name == "vocab.json":
        data = len(data)
    return data


def signature(xml: Path) -> dict[str, list[tuple[list[str], str, str]]]:
    """An IR's inputs and outputs: names, element type and partial shape of each."""
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (its extension reads the tokenizer IRs' operations)

    model = ov.Core().read_model(xml)

    def ports(items) -> list[tuple[list[str], str, str]]:
        return [(sorted(p.get_names()), p.get_element_type().get_type_name(), str(p.get_partial_shape())) for p in items]

    return {"inputs": ports(model.inputs), "outputs": ports(model.outputs)}


def toolchain(folder: Path) -> dict[str, str]:
    """The versions an OpenVINO folder was built with, as its IRs and config.json record them."""
    found = {"config.json transformers": json.loads((folder / "config.json").read_text()).get("transformers_version", "")}
    for xml in sorted(folder.glob("openvino_*.xml")):
        rt_info = ET.parse(xml).getroot().find("rt_info")
        for element in rt_info.iter() if rt_info is not None else ():
            key = element.get("name") if element.tag == "info" else element.tag
            if key and ("version" in key.lower() or key == "OpenVINO Runtime"):
                found[f"{xml.name} {key}"] = element.get("value", "")
    return found


def test_shipped_demo_is_what_make_tiny_builds(tiny_qwen):
    assert DEMO.is_dir(), stale("the folder is missing")
    shipped_only, built_only = set(files(DEMO)) - set(files(tiny_qwen)), set(files(tiny_qwen)) - set(files(DEMO))
    assert not shipped_only | built_only, stale(f"files only in the demo: {sorted(shipped_only)}, only in a rebuild: {sorted(built_only)}")
    for name in files(DEMO):
        shipped, built = DEMO / name, tiny_qwen / name
        if name.endswith(".json"):
            assert settings(shipped) == settings(built), stale(name)
        elif name == "merges.txt":
            assert len(shipped.read_text().splitlines()) == len(built.read_text().splitlines()), stale(f"{name}: another number of merges")
        elif name.endswith((".jinja", ".txt")):
            assert shipped.read_text() == built.read_text(), stale(name)
        elif name.endswith(".xml"):
            assert signature(shipped) == signature(built), stale(f"{name}: other inputs or outputs")


def test_shipped_demo_is_byte_identical_to_a_rebuild_on_its_toolchain(tiny_qwen):
    shipped, built = toolchain(DEMO), toolchain(tiny_qwen)
    if shipped != built:
        differ = {key: (shipped.get(key), built.get(key)) for key in shipped.keys() | built.keys() if shipped.get(key) != built.get(key)}
        pytest.skip(f"built with other versions than these (shipped, here): {dict(sorted(differ.items()))}")
    compared = [name for name in files(DEMO) if not name.startswith(LEARNED_VOCABULARY)]
    assert "openvino_language_model.bin" in compared
    differ = [name for name in compared if (DEMO / name).read_bytes() != (tiny_qwen / name).read_bytes()]
    assert not differ, stale(f"other bytes in {', '.join(differ)}")


@pytest.mark.e2e
def test_repository_models_yaml_serves_the_shipped_demo(tmp_path):
    """The quick start's `vlm-router serve`: the repository's models.yaml, its default model the shipped folder."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("VLM_")}
    log = tmp_path / "serve.log"
    with open(log, "w") as output:
        process = subprocess.Popen([*CLI, "serve", "--config", str(ROOT / "models.yaml"), "--port", str(port)], cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        answer = client.chat.completions.create(model="demo", messages=[user(image_part(data_url(png_bytes())), "What is in this image?")], max_tokens=8)
        assert answer.choices[0].message.content
        assert answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens > 20  # the image's tokens are in the prompt
    finally:
        process.terminate()
        process.wait(timeout=30)
        print(log.read_text())  # shown when the test fails
    assert f"loading model 'demo' from {DEMO}" in log.read_text()


def test_quick_start_serves_the_demo_without_torch():
    """The README's first command installs the package alone (the `convert` extra brings torch), and xgrammar,
    which declares torch, without its dependencies but at the `structured` extra's pin; it builds nothing."""
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    command = re.search(r"```sh\n(.*?)\n```", quick_start, re.S).group(1)
    (structured,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["structured"]
    assert command.split(" && ") == [
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        "pip install -e .",
        f"pip install --no-deps '{structured}'",
        "vlm-router serve",
    ]
