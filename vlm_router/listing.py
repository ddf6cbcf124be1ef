"""`vlm-router list` and `vlm-router ps`: the models as a running server's `GET /v1/models` shows them (for `list`,
else as models.yaml declares them), printed as a table or as JSON."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .config import RouterConfig, ServerConfig, load_config

#: Seconds to wait for the server's answer.
TIMEOUT_S = 10.0
#: Where the server's own bind address is no address to call.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}

Card = dict[str, Any]


class Unreachable(Exception):
    """No server answers at the URL."""


class ServerError(Exception):
    """The server answered, but not with its models."""


def server_url(server: ServerConfig) -> str:
    """The URL of the server `server` configures (`host` and `port`, after `VLM_HOST` and `VLM_SERVICE_PORT`)."""
    host = _WILDCARDS.get(server.host, server.host)
    return f"http://[{host}]:{server.port}" if ":" in host else f"http://{host}:{server.port}"


def api_key(given: str | None, server: ServerConfig) -> str | None:
    """`--api-key`, else `$VLM_API_KEY`, else the first key the server is configured with (`api_keys`, `VLM_API_KEYS`)."""
    return given or os.environ.get("VLM_API_KEY") or next(iter(server.api_keys), None)


def fetch_models(url: str, key: str | None) -> list[Card]:
    """The models `GET {url}/v1/models` lists. Proxies are not used: this talks to one's own server."""
    request = urllib.request.Request(url.rstrip("/") + "/v1/models", headers={"Authorization": f"Bearer {key}"} if key else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        hint = ": pass its key with --api-key or VLM_API_KEY" if exc.code == 401 else ""
        raise ServerError(f"{url} answered {exc.code} ({_message(exc)}){hint}") from None
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors; ValueError: a malformed URL
        raise Unreachable(f"no server answers at {url} ({_reason(exc)})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ServerError(f"{url}/v1/models is not a vlm-router model list")
    return body["data"]


def configured_models(config: RouterConfig) -> list[Card]:
    """The models of `config` as a server just started with it would list them: none loaded."""
    from .api.models import ModelCard
    from .plugins import load_families
    from .registry import ModelRegistry

    return [ModelCard.of(handle).model_dump(mode="json") for handle in ModelRegistry(config, load_families()).handles]


def show_list(config_path: Path | None, url: str | None, key: str | None, as_json: bool) -> int:
    """`vlm-router list`: the server's models, or models.yaml's when no server answers."""
    config = load_config(config_path)
    url = url or server_url(config.server)
    try:
        cards = fetch_models(url, api_key(key, config.server))
        note = None
    except Unreachable as exc:
        cards = configured_models(config)
        where = config_path.resolve() if config_path else f"the environment (no models.yaml in {Path.cwd()})"
        note = f"{exc}: the models of {where}, none loaded"
    except ServerError as exc:
        return _fail(exc)
    if as_json:
        if note:
            print(f"vlm-router: {note}", file=sys.stderr)
        print(json.dumps(cards, indent=2))
    else:
        if note:
            print(note)
        print(_table(["NAME", "ALIASES", "FAMILY", "DEVICE", "STATE", "IMAGES", "VIDEO"], [_list_row(card) for card in cards]))
    return 0


def show_ps(config_path: Path | None, url: str | None, key: str | None, as_json: bool) -> int:
    """`vlm-router ps`: the models the server has loaded or is loading."""
    config = load_config(config_path)
    url = url or server_url(config.server)
    try:
        cards = [card for card in fetch_models(url, api_key(key, config.server)) if card["state"] in ("ready", "loading")]
    except (Unreachable, ServerError) as exc:
        return _fail(exc, ": start one with `vlm-router serve`, or name its URL with --url" if isinstance(exc, Unreachable) else "")
    if as_json:
        print(json.dumps(cards, indent=2))
    elif not cards:
        print(f"no model is loaded at {url}")
    else:
        header = ["NAME", "STATE", "DEVICE", "ENGINE", "MEMORY", "RUNNING", "WAITING", "PID", "IDLE"]
        print(_table(header, [_ps_row(card) for card in cards]))
    return 0


def _fail(exc: Exception, hint: str = "") -> int:
    print(f"vlm-router: {exc}{hint}", file=sys.stderr)
    return 1


def _list_row(card: Card) -> list[str]:
    caps = card["capabilities"]
    return [card["id"], ", ".join(card["aliases"]) or "-", card["family"] or "-", card["device"], _state(card), *_media(caps)]


def _ps_row(card: Card) -> list[str]:
    idle = card["idle_s"]
    return [
        card["id"],
        _state(card),
        card["device"],
        card["engine"] or "-",
        _memory(card["memory_gb"]),
        str(card["running"]),
        str(card["waiting"]),
        str(card["pid"] or "-"),
        "-" if idle is None else _duration(idle),
    ]


def _state(card: Card) -> str:
    """`ready`, `failed`, or a load's phase: `loading: downloading 45%`."""
    loading = card.get("loading")
    if card["state"] != "loading" or not loading or not loading["phase"]:
        return str(card["state"])
    share = f" {loading['progress']:.0%}" if loading["progress"] is not None else ""
    return f"loading: {loading['phase']}{share}"


def _media(caps: Card | None) -> tuple[str, str]:
    """The IMAGES and VIDEO columns; `?` while the family is unknown."""
    if caps is None:
        return "?", "?"
    images = "no" if not caps["images"] else "yes" if caps["max_images"] is None else f"up to {caps['max_images']}"
    return images, caps["video"]


def _memory(gb: float) -> str:
    """`2.3 GB`, or `120 MB` under one GB."""
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb * 1000:.0f} MB"


def _duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds // 60:.0f} min" if seconds < 3600 else f"{seconds // 3600:.0f} h"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, three spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])


def _message(exc: urllib.error.HTTPError) -> str:
    """The error message of an OpenAI-style error body, else the HTTP reason."""
    try:
        body = json.loads(exc.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


def _reason(exc: BaseException) -> str:
    """`Connection refused`, `timed out`: the innermost reason of a failed connection."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)
