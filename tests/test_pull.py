"""`vlm-router pull` and `hub.fetch`: published OpenVINO exports downloaded from a loopback hub (resumed, refused,
unreachable), other repositories sent to conversion, the progress both show, and reading the converter's output."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from huggingface_hub import constants, file_download

from vlm_router import hub as hub_module
from vlm_router.api.app import create_app
from vlm_router.config import WeightFormat
from vlm_router.convert import MARKER, read_output
from vlm_router.hub import FetchError, fetch_sync
from vlm_router.progress import Progress

from .conftest import CLI, ServerThread, free_port, router_config
from .fake_hub import FakeHub

#: A published export's files, small: the marker is what makes a repository one.
EXPORT = {MARKER: b"<net/>", "openvino_language_model.bin": b"\x01" * 3000, "config.json": b'{"model_type": "qwen2_vl"}'}


@pytest.fixture
def fake_hub(monkeypatch) -> Iterator[FakeHub]:
    """A loopback hub that huggingface_hub in this process talks to: what `HF_ENDPOINT` sets when huggingface_hub is
    imported (the endpoint, and the file URL template that `file_download` keeps a copy of), set after import."""
    running = FakeHub()
    template = running.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", running.url)
    monkeypatch.setattr(constants, "ENDPOINT", running.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield running
    running.close()


def pull(*args: str, endpoint: str, home: Path) -> subprocess.CompletedProcess:
    """`vlm-router pull ARGS` against the hub at `endpoint`, with a Hugging Face home of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(home)}
    return subprocess.run([*CLI, "pull", *args], capture_output=True, text=True, timeout=300, env=env)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_pull_downloads_a_published_export_that_then_serves(tmp_path, tiny_qwen, families):
    hub = FakeHub()
    try:
        hub.add_folder("OpenVINO/tiny-qwen2-vl-ov", tiny_qwen)
        (tmp_path / "models.yaml").write_text(yaml.safe_dump({"server": {"cache_dir": "cache"}}))
        result = pull("OpenVINO/tiny-qwen2-vl-ov", "--weight-format", "int4", "--config", str(tmp_path / "models.yaml"), endpoint=hub.url, home=tmp_path / "hf")
        assert not [r for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1] and r[2]], "nothing to resume on a first pull"
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "cache" / "OpenVINO--tiny-qwen2-vl-ov" / "openvino"
    assert result.stdout.strip() == str(folder)
    assert files_under(folder) == files_under(tiny_qwen), "the repository's files, byte for byte, and nothing else"
    assert not folder.with_name("openvino.partial").exists()
    assert "no weight format applies" in result.stderr
    assert "downloading OpenVINO/tiny-qwen2-vl-ov: 100% (" in result.stderr.splitlines()[-1]

    again = pull("OpenVINO/tiny-qwen2-vl-ov", "--config", str(tmp_path / "models.yaml"), endpoint=f"http://127.0.0.1:{free_port()}", home=tmp_path / "hf")
    assert (again.returncode, again.stdout.strip()) == (0, str(folder)), "a pulled model is found without the hub"

    with ServerThread(create_app(router_config([{"name": "m", "path": str(folder)}]), families)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert answer.choices[0].message.content


def test_an_interrupted_download_fails_in_one_line_and_the_next_resumes_it(fake_hub, tmp_path):
    blob = os.urandom(24 << 20)  # past huggingface_hub's 10 MiB write chunk, so that part of it is kept
    fake_hub.add("OpenVINO/big-ov", {**EXPORT, "openvino_language_model.bin": blob})
    fake_hub.cut_once("OpenVINO/big-ov", "openvino_language_model.bin", after=15 << 20)
    folder = tmp_path / "OpenVINO--big-ov" / "openvino"
    progress = Progress("OpenVINO/big-ov")

    with pytest.raises(FetchError) as failed:
        fetch_sync("OpenVINO/big-ov", tmp_path, WeightFormat.INT8, False, progress)
    message = str(failed.value)
    assert "download of OpenVINO/big-ov was interrupted (Connection broken" in message and "\n" not in message
    assert "pulling again resumes it" in message
    assert progress.phase == "downloading" and progress.fraction is not None and 0 < progress.fraction < 1
    assert not folder.exists() and folder.with_name("openvino.partial").is_dir()

    assert fetch_sync("OpenVINO/big-ov", tmp_path, WeightFormat.INT8, False, progress) == folder
    assert (folder / "openvino_language_model.bin").read_bytes() == blob
    resumed = [r[2] for r in fake_hub.requests if r[1].endswith("/openvino_language_model.bin") and r[2]]
    assert len(resumed) == 1 and int(resumed[0].removeprefix("bytes=").rstrip("-")) >= 10 << 20, resumed
    assert progress.fraction == 1.0


def test_download_progress_is_a_value_and_periodic_lines_off_a_terminal(fake_hub, tmp_path):
    fake_hub.add("OpenVINO/small-ov", EXPORT)
    shown = io.StringIO()
    progress = Progress("OpenVINO/small-ov", shown, interval_s=3600)
    fetch_sync("OpenVINO/small-ov", tmp_path, WeightFormat.INT8, False, progress)
    assert (progress.phase, progress.fraction, progress.total) == ("downloading", 1.0, sum(map(len, EXPORT.values())))
    lines = shown.getvalue().splitlines()
    assert 1 <= len(lines) <= 2 and all(line.startswith("downloading OpenVINO/small-ov: ") for line in lines), lines
    assert lines[-1] == "downloading OpenVINO/small-ov: 100% (3.0/3.0 kB)", "the first line at once, then one per interval, and the last"


def test_download_progress_is_a_bar_on_a_terminal(fake_hub, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake_hub.add("OpenVINO/small-ov", EXPORT)
    shown = Terminal()
    fetch_sync("OpenVINO/small-ov", tmp_path, WeightFormat.INT8, False, Progress("OpenVINO/small-ov", shown))
    bar = shown.getvalue()
    assert bar.startswith("\rdownloading OpenVINO/small-ov:   0%|") and "100%|" in bar and bar.count("\n") == 1


def test_a_gated_repository_needs_hf_token(fake_hub, tmp_path, monkeypatch):
    fake_hub.add("meta/gated-ov", EXPORT, token="hf_secret")
    with pytest.raises(FetchError, match=r"^meta/gated-ov is gated on http://127\.0\.0\.1:\d+: .* set HF_TOKEN"):
        fetch_sync("meta/gated-ov", tmp_path, WeightFormat.INT8, False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    folder = fetch_sync("meta/gated-ov", tmp_path, WeightFormat.INT8, False)
    assert files_under(folder) == EXPORT


def test_a_repository_without_an_export_goes_to_conversion(fake_hub, tmp_path, monkeypatch):
    fake_hub.add("someone/checkpoint", {"config.json": b"{}", "model.safetensors": b"\0" * 100})
    calls = []

    async def convert(source, out, weight_format, trust_remote_code, progress):
        calls.append((source, out, weight_format, trust_remote_code))
        out.mkdir(parents=True)
        (out / MARKER).write_text("<net/>")
        return out

    monkeypatch.setattr(hub_module, "convert", convert)
    folder = fetch_sync("someone/checkpoint", tmp_path, WeightFormat.INT4, True)
    assert calls == [("someone/checkpoint", tmp_path / "someone--checkpoint" / "int4", WeightFormat.INT4, True)]
    assert folder == calls[0][1]
    assert not [r for r in fake_hub.requests if "/resolve/" in r[1]], "a checkpoint is optimum-cli's to download"


@pytest.mark.convert
def test_pull_converts_a_repository_that_is_no_export_through_the_same_hub(tmp_path, tiny_models):
    hub = FakeHub()
    try:
        hub.add_folder("someone/tiny-qwen2-vl", tiny_models["qwen2_vl_hf"])
        (tmp_path / "models.yaml").write_text(yaml.safe_dump({"server": {"cache_dir": "cache"}}))
        result = pull("someone/tiny-qwen2-vl", "--weight-format", "fp16", "--config", str(tmp_path / "models.yaml"), endpoint=hub.url, home=tmp_path / "hf")
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "cache" / "someone--tiny-qwen2-vl" / "fp16"
    assert result.stdout.strip() == str(folder) and (folder / MARKER).is_file()
    assert f"converting 'someone/tiny-qwen2-vl' to fp16 in {folder}" in result.stderr
    assert ("GET", "/someone/tiny-qwen2-vl/resolve/main/model.safetensors", None) in hub.requests, "optimum-cli downloaded it from HF_ENDPOINT"


def test_a_wrong_repository_id_is_one_line_and_exit_status_1(tmp_path):
    hub = FakeHub()
    try:
        missing = pull("nobody/nothing", "--out", str(tmp_path / "out"), endpoint=hub.url, home=tmp_path / "hf")
        malformed = pull("not a repo!", "--out", str(tmp_path / "out"), endpoint=hub.url, home=tmp_path / "hf")
    finally:
        hub.close()
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == f"vlm-router: repository nobody/nothing not found on {hub.url}: check the id (a private repository also needs HF_TOKEN)\n"
    assert malformed.returncode == 1
    assert malformed.stderr == "vlm-router: 'not a repo!' is neither a local folder nor a Hugging Face repository id (owner/name)\n"
    assert not (tmp_path / "out").exists()


def test_no_network_is_one_line_and_exit_status_1(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = pull("OpenVINO/anything-ov", "--out", str(tmp_path / "out"), endpoint=endpoint, home=tmp_path / "hf")
    assert result.returncode == 1
    assert result.stderr == f"vlm-router: cannot reach the Hugging Face Hub at {endpoint} (Connection refused): check the network, proxy settings or HF_ENDPOINT\n"


def test_fetching_imports_no_torch():
    code = "import sys, vlm_router.hub; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'optimum'}))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


async def test_converter_output_of_bars_without_newlines_is_read_in_chunks():
    """optimum-cli's bars redraw with `\\r` only: 64 KiB of them made `readline()` fail ("Separator is not found")."""
    bars = "''.join(f'exporting {i % 100}%\\r' for i in range(20000))"  # about 300 KiB, no `\n`
    script = f"import sys; sys.stdout.write('start\\n' + {bars} + '\\nSaved\\nlast bar\\r')"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    shown = io.StringIO()
    progress = Progress("m", shown, interval_s=3600)
    assert process.stdout is not None
    tail = await read_output(process.stdout, progress)
    assert await process.wait() == 0
    assert tail == ["start", "exporting 99%", "Saved", "last bar"], "the bar's line as its last state"
    assert shown.getvalue() == "start\nexporting 0%\nexporting 99%\nSaved\nlast bar\n", "off a terminal, one bar state per interval"
    assert progress.detail == "last bar"
