"""`/device` endpoints as the original service had them, and `vlm-router devices`."""

import subprocess
import sys

import httpx


def test_devices_list_cpu(server):
    answer = httpx.get(server.url + "/device", timeout=60)
    assert answer.status_code == 200
    assert "CPU" in answer.json()["devices"]


def test_a_device_has_its_properties_by_path_and_by_the_original_form(server):
    by_path = httpx.get(server.url + "/device/CPU", timeout=60).json()
    assert by_path["device"] == "CPU" and by_path["properties"]["FULL_DEVICE_NAME"]
    assert isinstance(by_path["properties"]["OPTIMIZATION_CAPABILITIES"], list)
    by_query = httpx.post(server.url + "/device", params={"device": "CPU"}, timeout=60).json()
    assert by_query["properties"]["FULL_DEVICE_NAME"] == by_path["properties"]["FULL_DEVICE_NAME"]


def test_an_unknown_or_missing_device_is_an_openai_error(server):
    unknown = httpx.get(server.url + "/device/TPU", timeout=60)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "device_not_found" and "available: CPU" in unknown.json()["error"]["message"]
    missing = httpx.post(server.url + "/device", timeout=60)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "device"


def test_cli_lists_devices_with_their_names():
    result = subprocess.run([sys.executable, "-m", "vlm_router", "devices"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CPU  ") and len(result.stdout.split("  ", 1)[1].strip()) > 0
