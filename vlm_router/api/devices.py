"""`/device` endpoints, as the original service had them: the devices, and one device's properties."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..devices import UnknownDevice, available_devices, device_properties
from .errors import APIError


async def list_devices(_: web.Request) -> web.Response:
    """`GET /device`: `{"devices": [...]}`."""
    devices = await asyncio.to_thread(available_devices)  # the first call loads OpenVINO
    return web.json_response({"devices": devices})


async def get_device(request: web.Request) -> web.Response:
    """`GET /device/{name}`, and the original `POST /device?device=NAME`: the device's properties."""
    name = request.match_info.get("name") or request.query.get("device")
    if not name:
        raise APIError(400, "name the device: POST /device?device=CPU, or GET /device/CPU", param="device", code="invalid_value")
    try:
        properties = await asyncio.to_thread(device_properties, name)
    except UnknownDevice as exc:
        raise APIError(404, str(exc), param="device", code="device_not_found") from None
    return web.json_response({"device": name, "properties": properties})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/device", list_devices)
    app.router.add_get("/device/{name}", get_device)
    app.router.add_post("/device", get_device)
