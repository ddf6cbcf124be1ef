"""OpenVINO's devices and their properties, as plain JSON-able data (for `/device` and `vlm-router devices`)."""

from __future__ import annotations

from functools import cache
from typing import Any


class UnknownDevice(LookupError):
    """No such device on this machine."""


@cache
def _core() -> Any:
    import openvino

    return openvino.Core()


def available_devices() -> list[str]:
    """The devices OpenVINO can run models on here, e.g. `["CPU", "GPU.0"]`."""
    return list(_core().available_devices)


def device_properties(name: str) -> dict[str, Any]:
    """Every readable property of device `name`; values OpenVINO cannot hand to Python are left out."""
    if name not in available_devices():
        raise UnknownDevice(f"device '{name}' is not available; available: {', '.join(available_devices())}")
    core = _core()
    properties: dict[str, Any] = {}
    for key in core.get_property(name, "SUPPORTED_PROPERTIES"):
        try:
            properties[key] = _plain(core.get_property(name, key))
        except Exception:  # some properties have no Python form (e.g. COMPATIBILITY_CHECK)
            continue
    return properties


def _plain(value: Any) -> Any:
    """A property value as JSON: numbers, strings and booleans as they are, containers item by item, the rest as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return str(value)
