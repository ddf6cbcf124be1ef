"""Property-based fuzzing of `POST /v1/chat/completions` on a real loopback server.

More than a thousand generated malformed requests: valid-looking requests with one field wrong, refused
and broken media, raw bytes, invalid UTF-8, huge strings, deep nesting, oversized and mis-encoded
bodies. Every one must get a 4xx with an OpenAI error body; afterwards a good request still gets a 200
and the server's memory has not grown past a bound.

Every generated request is invalid. Where the wrong part might, by chance, be acceptable (a corrupted
image that still decodes, an arbitrary tool schema), the request also asks for `n` above the model's
`max_n`: the server checks that only after media and prompt, just before generation, so such a request
still exercises the whole path and is answered 400 `param: n` instead of generating.

All failures are collected, not raised one by one, so a single run reports every kind of failure with
its input and the server's traceback. The run is deterministic (`derandomize=True`, no database).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import math
import random
import struct
import threading
import time
import traceback
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlm_router.api.app import create_app

from .conftest import ServerThread, make_video, router_config

#: Requests the hypothesis run sends, besides the fixed cases below.
EXAMPLES = 2500
#: Growth of this process's resident memory (the server runs on a thread of it) over the run. Measured:
#: 40-60 MB for 2,500 requests. About 30 MB of it is hypothesis's own bookkeeping (generating the same
#: cases without sending them); the rest is allocator arenas that bodies of up to 1.6 MiB and decoded
#: media leave behind, which flattens out: replaying the same 600 cases six times grows 6 MB after the
#: first round. A leak of 50 KB a request (a small fraction of the larger bodies) would pass this bound.
MAX_RSS_GROWTH_MB = 120
MAX_REQUEST_BYTES = 1 << 20
MAX_N = 8
GUARD = {"n": MAX_N + 1}  # refused just before generation, after media and prompt
GOOD = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ERROR_KEYS = {"message", "type", "param", "code"}


# --- the server -------------------------------------------------------------------------------------


class _Records(logging.Handler):
    """Every warning or error the server logs, with its traceback, in order."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.levelname}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        with self._lock:
            self.lines.append(text)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.lines[mark:]


@pytest.fixture(scope="module")
def fuzz_server(families, tiny_model) -> Iterator[ServerThread]:
    """Two tiny models (one that calls tools), loopback refused for media, a 1 MiB body limit."""
    qwen2, qwen3 = tiny_model("qwen2_vl"), tiny_model("qwen3_vl")
    config = router_config(
        [
            {"name": "tiny", "path": str(qwen2), "max_n": MAX_N, "defaults": {"max_tokens": 2}},
            {"name": "tiny-tools", "path": str(qwen3), "max_n": MAX_N, "defaults": {"max_tokens": 2}},
        ],
        server={"default_model": "tiny"},
        media={
            "allowed_hosts": [],
            "max_request_bytes": MAX_REQUEST_BYTES,
            "max_image_bytes": 256 * 1024,
            "max_video_bytes": 256 * 1024,
            "fetch_timeout_s": 2,
            "max_video_frames": 8,
        },
    )
    with ServerThread(create_app(config, families)) as running:
        yield running


# --- media to break ---------------------------------------------------------------------------------


def _image(fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    image.paste((20, 200, 40), (5, 5, 25, 20))
    if fmt == "GIF":
        frames = [image, Image.new("RGB", (40, 30), (0, 0, 255))]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    else:
        image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate, so exif_transpose runs
    exif[0x010E] = "fuzz"
    return _image("JPEG", exif=exif.tobytes(), quality=80)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a huge image, with no pixel data to back it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


IMAGES = {
    "png": _image("PNG"),
    "jpeg-exif": _jpeg_with_exif(),
    "gif": _image("GIF"),
    "bmp": _image("BMP"),
    "tiff": _image("TIFF", compression="tiff_lzw"),
    "webp": _image("WEBP"),
    "ico": _image("ICO"),
    "ppm": _image("PPM"),
}
VIDEOS = {
    "mp4": make_video(0.4, size=(32, 32), fps=10),
    "mkv-mpeg4": make_video(0.4, fmt="matroska", codec="mpeg4", size=(32, 32), fps=10),
    "avi-mpeg4": make_video(0.4, fmt="avi", codec="mpeg4", size=(32, 32), fps=10),
    "webm-vp8": make_video(0.4, fmt="webm", codec="libvpx", size=(32, 32), fps=10),
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{_b64(data)}"


@st.composite
def broken(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` truncated, with bytes overwritten, inserted or zeroed."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "zero", "duplicate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            del data[at:]
        elif op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "zero":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:end] = bytes(end - at)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
    return bytes(data)


# --- cases ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """A request to send, and what its error must say."""

    kind: str
    body: bytes | None = None
    payload: Any = None  # sent as JSON when `body` is None
    headers: dict[str, str] = field(default_factory=dict)
    statuses: tuple[int, ...] = (400,)
    #: The error's `param` must equal one of these or start with one and a dot; `...` accepts any.
    params: tuple[str | None, ...] | Any = ...
    chunked: bool = False

    def encoded(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(self.payload, allow_nan=True).encode()

    def describe(self, limit: int = 600) -> str:
        text = repr(self.body) if self.body is not None else json.dumps(self.payload, allow_nan=True)
        if len(text) > limit:
            text = f"{text[: limit // 2]} ...({len(text)} chars)... {text[-limit // 4 :]}"
        extra = f" headers={self.headers}" if self.headers else ""
        return f"[{self.kind}]{extra} {text}"


def req(**changes: Any) -> dict[str, Any]:
    payload = dict(GOOD)
    payload.update(changes)
    return payload


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


NEUTRAL = (None, False, 0, [], {}, "none", "auto", {"type": "text"})
json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
non_numbers = st.text(max_size=10) | st.booleans() | st.lists(json_leaf, max_size=3) | st.dictionaries(st.text(max_size=5), json_leaf, max_size=3)
non_ints = non_numbers | st.floats(allow_nan=False) | st.just(1.0)
non_strings = st.booleans() | st.integers() | st.floats(allow_nan=False) | st.lists(json_leaf, max_size=3) | st.dictionaries(st.text(max_size=5), json_leaf, max_size=3)
non_bools = st.integers() | st.text(max_size=5) | st.floats(allow_nan=False) | st.lists(json_leaf, max_size=2) | st.dictionaries(st.text(max_size=3), json_leaf, max_size=2)
specials = st.sampled_from([math.nan, math.inf, -math.inf, 1e308 * 10])


def outside(low: float, high: float, low_open: bool = False) -> st.SearchStrategy[float]:
    """Floats outside [low, high] (outside (low, high] with `low_open`), infinities and NaN."""
    below = st.floats(max_value=low if low_open else math.nextafter(low, -math.inf), allow_nan=False, allow_infinity=False)
    above = st.floats(min_value=math.nextafter(high, math.inf), allow_nan=False, allow_infinity=False)
    return below | above | specials


def ints_outside(low: int | None, high: int | None) -> st.SearchStrategy[int]:
    options = []
    if low is not None:
        options += [st.integers(max_value=low - 1), st.integers(low - 2**70, low - 2**63)]
    if high is not None:
        options += [st.integers(min_value=high + 1), st.integers(high + 2**63, high + 2**70)]
    return st.one_of(options)


#: A top-level field and the values of it that are wrong.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "temperature": outside(0, 2) | non_numbers,
    "top_p": outside(0, 1) | non_numbers,
    "presence_penalty": outside(-2, 2) | non_numbers,
    "frequency_penalty": outside(-2, 2) | non_numbers,
    "min_p": outside(0, 1) | non_numbers,
    "repetition_penalty": outside(0, 2, low_open=True) | non_numbers,
    "n": ints_outside(1, MAX_N) | non_ints,
    "max_tokens": ints_outside(1, None) | non_ints,
    "max_completion_tokens": ints_outside(1, None) | non_ints,
    "seed": ints_outside(-(2**63), 2**63 - 1) | non_ints,
    "top_k": ints_outside(-1, None) | non_ints,
    "logprobs": non_bools,
    "top_logprobs": st.integers(1, 20) | ints_outside(0, 20) | non_ints,
    "stream": non_bools,
    "ignore_eos": non_bools,
    "stream_options": non_strings.filter(lambda v: not isinstance(v, dict))
    | st.fixed_dictionaries({"include_usage": non_bools})
    | st.fixed_dictionaries({"include_usage": st.booleans(), "extra": json_value}),
    "stop": st.just("")
    | st.lists(st.text(min_size=1, max_size=30), min_size=5, max_size=12)
    | st.lists(st.text(min_size=1, max_size=5), max_size=3).map(lambda good: [*good, ""])
    | st.lists(st.text(max_size=5), max_size=2).flatmap(lambda good: non_strings.map(lambda bad: [*good, bad]))
    | st.booleans()
    | st.integers()
    | st.dictionaries(st.text(max_size=5), json_leaf, max_size=3),
    "tool_choice": st.sampled_from(["any", "None", "AUTO", "REQUIRED", ""])
    | st.text(max_size=10).filter(lambda s: s not in ("none", "auto", "required"))
    | st.dictionaries(st.text(max_size=5), json_value, max_size=3)
    | st.integers()
    | st.lists(json_leaf, max_size=3),
    "model": non_strings,
    **{name: json_value.filter(lambda v: v not in NEUTRAL) for name in ("functions", "function_call", "logit_bias", "audio", "prediction")},
    "modalities": json_value.filter(lambda v: v not in NEUTRAL and not (isinstance(v, list) and all(x == "text" for x in v))),
}


@st.composite
def field_cases(draw: st.DrawFn) -> Case:
    """A good request with one top-level field wrong."""
    name = draw(st.sampled_from(sorted(FIELD_VALUES)))
    value = draw(FIELD_VALUES[name])
    return Case(f"field:{name}", payload=req(**{name: value}), params=(name,))


@st.composite
def unknown_model_cases(draw: st.DrawFn) -> Case:
    name = "zz-no-such-model-" + draw(st.text(max_size=40))
    return Case("unknown-model", payload=req(model=name), statuses=(404,), params=("model",))


SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
bad_schema_leaf = (
    st.text(max_size=10).filter(lambda s: s not in SCHEMA_TYPES).map(lambda t: {"type": t})
    | st.lists(st.sampled_from(sorted(SCHEMA_TYPES)) | st.text(max_size=4) | non_strings, min_size=1, max_size=3)
    .filter(lambda ts: any(not isinstance(t, str) or t not in SCHEMA_TYPES for t in ts))
    .map(lambda ts: {"type": ts})
    | non_strings.filter(lambda v: not isinstance(v, bool | dict)).map(lambda v: {"type": "object", "properties": {"a": v}})
    | non_strings.filter(lambda t: not isinstance(t, str | list)).map(lambda t: {"type": t})
    | st.just({"$ref": "https://example.com/schema.json"})
    | st.just({"anyOf": {"type": "string"}})
    | st.just({"properties": ["a"]})
    | st.integers(33, 600).map(lambda depth: json.loads('{"items":' * depth + "{}" + "}" * depth))
)


@st.composite
def bad_schemas(draw: st.DrawFn) -> Any:
    """A JSON schema `check_schema` must refuse: a wrong part, maybe nested in a right one."""
    schema = draw(bad_schema_leaf)
    for _ in range(draw(st.integers(0, 3))):
        wrap = draw(st.sampled_from(["items", "properties", "anyOf", "not", "$defs"]))
        if wrap in ("properties", "$defs"):
            schema = {"type": "object", wrap: {draw(st.text(max_size=5)): schema}}
        elif wrap == "anyOf":
            schema = {"anyOf": [{"type": "string"}, schema]}
        else:
            schema = {wrap: schema}
    return schema


@st.composite
def response_format_cases(draw: st.DrawFn) -> Case:
    good_schema = {"name": "answer", "schema": {"type": "object"}}
    value = draw(
        non_strings.filter(lambda v: not isinstance(v, dict))
        | st.text(max_size=10)
        | st.text(max_size=12).filter(lambda t: t not in ("text", "json_object", "json_schema")).map(lambda t: {"type": t})
        | st.just({"type": "json_schema"})
        | st.sampled_from(["text", "json_object"]).map(lambda t: {"type": t, "json_schema": good_schema})
        | (non_strings | st.just("") | st.text(min_size=65, max_size=100)).map(lambda name: {"type": "json_schema", "json_schema": {"name": name}})
        | non_strings.filter(lambda v: not isinstance(v, dict | bool)).map(lambda s: {"type": "json_schema", "json_schema": {"name": "x", "schema": s}})
    )
    if draw(st.booleans()):
        value = {"type": "json_schema", "json_schema": {"name": "x", "schema": draw(bad_schemas())}}
    return Case("response_format", payload=req(response_format=value), params=("response_format",))


tool_names = st.text(max_size=70).filter(lambda s: not (1 <= len(s) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in s)))


@st.composite
def tools_cases(draw: st.DrawFn) -> Case:
    """Tools wrong by the schema, or odd but well-formed tools to the model that calls tools (with the guard)."""
    good_tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    wrong = draw(
        non_strings.filter(lambda v: not isinstance(v, list))
        | st.text(max_size=5)
        | st.integers(129, 300).map(lambda k: [good_tool] * k)
        | tool_names.map(lambda name: [{"type": "function", "function": {"name": name}}])
        | non_strings.map(lambda f: [{"type": "function", "function": f}])
        | st.text(max_size=10).filter(lambda t: t != "function").map(lambda t: [{"type": t, "function": good_tool["function"]}])
        | st.just([{"type": "function"}])
        | st.just([{"type": "function", "function": {"name": "f", "extra": 1}}])
        | non_strings.filter(lambda v: not isinstance(v, dict)).map(lambda p: [{"type": "function", "function": {"name": "f", "parameters": p}}])
    )
    if draw(st.integers(0, 3)) == 0:  # well-formed tools with arbitrary parameters reach the tool prompt template
        depth = draw(st.sampled_from([1, 10, 200, 600]))
        nested = json.loads('{"a":' * depth + "1" + "}" * depth)
        parameters = draw(st.dictionaries(st.text(max_size=8), json_value, max_size=5) | st.just(nested))
        description = draw(st.text(max_size=200))
        tool = {"type": "function", "function": {"name": "f_" + str(draw(st.integers(0, 99))), "description": description, "parameters": parameters}}
        return Case("tools:odd", payload=req(model="tiny-tools", tools=[tool], **GUARD), params=("tools", "n"))
    return Case("tools:wrong", payload=req(tools=wrong), params=("tools",))


RESERVED = ["<|vision_start|>", "<|image_pad|>", "<|video_pad|>", "<|vision_end|>", "<ov_genai_image_0>", "<ov_genai_video_12>"]
SMALL_PNG = _data_url(IMAGES["png"], "image/png")


@st.composite
def message_cases(draw: st.DrawFn) -> Case:
    """Messages wrong as a whole, or one message among good ones wrong."""
    if draw(st.integers(0, 4)) == 0:
        whole = draw(st.none() | st.just([]) | non_strings.filter(lambda v: not isinstance(v, list)) | st.text(max_size=5))
        return Case("messages:whole", payload=req(messages=whole), params=("messages",))
    roles = st.text(max_size=12).filter(lambda r: r not in ("system", "developer", "user", "assistant", "tool"))
    bad_part = (
        st.text(max_size=12).filter(lambda t: t not in ("text", "image_url", "video", "video_url")).map(lambda t: {"type": t, t: "x"})
        | st.sampled_from(["input_image", "image", "audio_url", "input_audio", "file"]).map(lambda t: {"type": t, t: {"url": SMALL_PNG}})
        | non_strings.map(lambda v: {"type": "text", "text": v})
        | st.just({"type": "text"})
        | st.just({"text": "no type"})
        | st.just({"type": "text", "text": "x", "extra": 1})
        | non_strings.filter(lambda v: not isinstance(v, dict))
        | st.text(max_size=5)
        | st.sampled_from(RESERVED).flatmap(lambda tag: st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda ab: text(ab[0] + tag + ab[1])))
    )
    wrong = draw(
        roles.map(lambda r: {"role": r, "content": "hi"})
        | non_strings.map(lambda r: {"role": r, "content": "hi"})
        | st.just({"content": "no role"})
        | st.sampled_from(["user", "system", "developer", "tool"]).map(lambda r: {"role": r})
        | st.sampled_from(["user", "system"]).map(lambda r: {"role": r, "content": None})
        | (st.integers() | st.floats(allow_nan=False) | st.booleans() | st.dictionaries(st.text(max_size=4), json_leaf, max_size=3)).map(lambda c: {"role": "user", "content": c})
        | bad_part.map(lambda p: {"role": "user", "content": [text("look"), p]})
        | st.sampled_from(["system", "developer", "assistant", "tool"]).map(lambda r: {"role": r, "content": [{"type": "image_url", "image_url": {"url": SMALL_PNG}}]})
        | st.sampled_from(["user", "system", "tool"]).map(lambda r: {"role": r, "content": "x", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}]})
        | non_strings.filter(lambda v: not isinstance(v, list)).map(lambda calls: {"role": "assistant", "tool_calls": calls})
        | st.just({"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "", "arguments": "{}"}}]})
        | non_strings.map(lambda a: {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": a}}]})
        | non_strings.filter(lambda v: v is not None).map(lambda i: {"role": "tool", "content": "42", "tool_call_id": i})
        | st.sampled_from(RESERVED).map(lambda tag: {"role": "user", "content": f"see {tag} here"})
        | st.sampled_from(RESERVED).map(lambda tag: {"role": "system", "content": tag})
    )
    others = draw(st.lists(st.sampled_from([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]), max_size=3))
    at = draw(st.integers(0, len(others)))
    messages = [*others[:at], wrong, *others[at:]]
    return Case("messages:one", payload=req(messages=messages, stream=draw(st.booleans())), params=("messages",))


# Media URLs: refused, malformed, or data URLs that cannot be what they claim.
REFUSED_URLS = [
    "file:///etc/passwd",
    "file://localhost/etc/shadow",
    "/etc/passwd",
    "../../etc/passwd",
    "ftp://127.0.0.1/x.png",
    "gopher://127.0.0.1:70/_x",
    "javascript:alert(1)",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://localhost/x.png",
    "http://127.0.0.1:1/x.png",
    "http://0.0.0.0:80/x.png",
    "http://0/x.png",
    "http://127.1/x.png",
    "http://2130706433/x.png",
    "http://0x7f000001/x.png",
    "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png",
    "http://[::ffff:a9fe:a9fe]/x.png",
    "http://[fe80::1%25eth0]/x.png",
    "http://user:pass@10.0.0.1/x.png",
    "https://192.168.0.1:8443/x.png",
    "http://[::1/x.png",
    "http:///x.png",
    "http://",
    "http://:80/x.png",
    "http://a..b/x.png",
    "http://" + "a" * 64 + ".invalid/x.png",
    "http://" + "a" * 300 + "/x.png",
    "http://exa mple.invalid/x.png",
    "http://\u00a0/x.png",
    "http://xn--/x.png",
    "http://\ud800.invalid/x.png",
    "http://127.0.0.1:99999/x.png",
    "http://127.0.0.1:-1/x.png",
    "HTTP://127.0.0.1/X.PNG",
    " http://127.0.0.1/x.png",
    "data:",
    "data:,",
    "data:image/png,not-base64",
    "data:image/png;base64",
    "data:image/png;base64,",
    "data:image/png;base64,@@not-base64@@",
    "data:image/png;base64,iVBORw0KGgo",
    "data:image/png;base64,iVBORw0KGgo=====",
    "data:;base64,iVBORw0KGgo=",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/svg+xml;base64," + _b64(b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>'),
    "data:application/octet-stream;base64," + _b64(IMAGES["png"]),
    "data:video/mp4;base64," + _b64(IMAGES["png"]),
    "DATA:IMAGE/PNG;BASE64,////",
]
private_hosts = st.one_of(
    st.ip_addresses(network=net).map(str)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")
) | st.one_of(st.ip_addresses(network=net).map(lambda ip: f"[{ip}]") for net in ("::1/128", "fc00::/7", "fe80::/10", "::ffff:10.0.0.0/104", "ff00::/8"))
url_tail = st.text(st.characters(codec="ascii", exclude_characters="#?/ \\"), max_size=20)
refused_http = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTP"]),
    private_hosts,
    st.sampled_from(["", ":80", ":443", ":8080", ":1"]),
    url_tail,
)
media_types = st.sampled_from(["text/plain", "text/html", "application/json", "application/octet-stream", "audio/wav", "font/woff", "x/y", "image", "video"])


@st.composite
def bad_data_url(draw: st.DrawFn, kind: str) -> str:
    """A data URL of the wrong type, badly encoded, truncated, or of random or broken bytes."""
    good_type = "image/png" if kind == "image" else "video/mp4"
    originals = IMAGES if kind == "image" else VIDEOS
    payload = draw(st.sampled_from(sorted(originals)).map(originals.get))
    b64 = _b64(payload)
    choice = draw(st.sampled_from(["type", "base64-chars", "truncated-b64", "random", "broken", "broken", "broken", "no-b64-flag", "whitespace"]))
    if choice == "type":
        other = "video/mp4" if kind == "image" else "image/png"
        return f"data:{draw(media_types | st.just(other))};base64,{b64}"
    if choice == "base64-chars":
        at = draw(st.integers(0, len(b64)))
        junk = draw(st.text(st.characters(exclude_characters="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n\r"), min_size=1, max_size=5))
        return f"data:{good_type};base64,{b64[:at]}{junk}{b64[at:]}"
    if choice == "truncated-b64":
        cut = draw(st.integers(1, len(b64) - 1).filter(lambda c: c % 4 != 0))
        return f"data:{good_type};base64,{b64[:cut]}"
    if choice == "random":
        seed, size = draw(st.integers(0, 2**32)), draw(st.integers(0, 4096))
        return _data_url(random.Random(seed).randbytes(size), good_type)
    if choice == "no-b64-flag":
        return f"data:{good_type},{b64}"
    if choice == "whitespace":  # base64 in lines: strict decoding refuses inner whitespace
        return f"data:{good_type};base64," + "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)) + "\n="
    return _data_url(draw(broken(payload)), draw(st.sampled_from([good_type, "image/jpeg", "image/webp"]) if kind == "image" else st.just(good_type)))


@st.composite
def media_cases(draw: st.DrawFn) -> Case:
    """One media part that is refused, malformed or broken, among text; the guard keeps it from generating."""
    kind = draw(st.sampled_from(["image", "image", "image", "video_url", "video"]))
    url = draw(st.sampled_from(REFUSED_URLS) | refused_http | bad_data_url("image" if kind != "video_url" else "video"))
    if kind == "image":
        part = draw(
            st.sampled_from(
                [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "image_url", "image_url": url},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                ]
            )
        )
    elif kind == "video_url":
        options = draw(st.fixed_dictionaries({}, optional={"fps": st.floats(0.5, 30), "max_frames": st.integers(1, 8), "max_pixels": st.sampled_from([784, "64*64", 4096])}))
        part = {"type": "video_url", "video_url": {"url": url}, **options}
    else:
        good = [_data_url(IMAGES["png"], "image/png")] * draw(st.integers(0, 2))
        frames = [*good, url]
        draw(st.randoms(use_true_random=False)).shuffle(frames)
        part = {"type": "video", "video": frames}
    good_images = [{"type": "image_url", "image_url": {"url": SMALL_PNG}}] * draw(st.integers(0, 2))
    parts = [*good_images, text("Describe."), part]
    if draw(st.booleans()):
        parts.reverse()
    payload = req(messages=[user(*parts)], stream=draw(st.booleans()), **GUARD)
    return Case(f"media:{kind}", payload=payload, statuses=(400, 413), params=("messages", "n"))


#: Pixel counts no `max_pixels` or `min_pixels` accepts: out of range, not an integer or `"W*H"` of digits.
bad_pixels = (
    st.integers(max_value=783)
    | st.integers(min_value=4096 * 4096 + 1)
    | st.sampled_from(["abc", "1e9", "360*420*2", "360x420", "-1", "360*", "*420", "9999999*1", "4097*4097", "1*1", "", " ", "0x100", "360 * 420 * 0"])
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
)


@st.composite
def media_field_cases(draw: st.DrawFn) -> Case:
    """A media part whose own fields are wrong: its URL object, detail, its pixels, or a video's sampling options."""
    good_image = {"type": "image_url", "image_url": {"url": SMALL_PNG}}
    good_video = {"type": "video_url", "video_url": {"url": _data_url(VIDEOS["mp4"], "video/mp4")}}
    part = draw(
        non_strings.filter(lambda v: not isinstance(v, dict | str)).map(lambda v: {**good_image, "image_url": v})
        | st.just({"type": "image_url", "image_url": {"url": ""}})
        | st.just({"type": "image_url", "image_url": ""})
        | st.just({"type": "image_url"})
        | non_strings.map(lambda v: {"type": "image_url", "image_url": {"url": v}})
        | (st.text(max_size=6).filter(lambda d: d not in ("auto", "low", "high")) | non_strings.filter(lambda v: v is not None)).map(
            lambda d: {"type": "image_url", "image_url": {"url": SMALL_PNG, "detail": d}}
        )
        | st.just({"type": "image_url", "image_url": {"url": SMALL_PNG, "extra": True}})
        | outside(0, 60, low_open=True).map(lambda f: {**good_video, "fps": f})
        | st.integers(max_value=0).map(lambda m: {**good_video, "max_frames": m})
        | (bad_pixels | st.integers(1280 * 720 + 1, 4096 * 4096).map(str)).map(lambda p: {**good_video, "max_pixels": p})
        | st.tuples(st.sampled_from(["max_pixels", "min_pixels"]), bad_pixels).map(lambda f: {**good_image, f[0]: f[1]})
        | st.integers(785, 4096 * 4096).map(lambda m: {**good_image, "max_pixels": m - 1, "min_pixels": m})
        | st.just({"type": "video", "video": []})
        | non_strings.filter(lambda v: not isinstance(v, list)).map(lambda v: {"type": "video", "video": v})
        | st.integers(9, 40).map(lambda k: {"type": "video", "video": [SMALL_PNG] * k})
        | st.just({"type": "video_url", "video_url": {"url": ""}})
    )
    return Case("media:fields", payload=req(messages=[user(text("Describe."), part)], **GUARD), statuses=(400, 413), params=("messages",))


@st.composite
def too_large_media_cases(draw: st.DrawFn) -> Case:
    """Pixel bombs and inline media over their byte limits: 413."""
    choice = draw(st.sampled_from(["bomb", "bytes", "video-bytes"]))
    if choice == "bomb":
        width, height = draw(st.integers(7000, 65535)), draw(st.integers(6000, 65535))
        part = {"type": "image_url", "image_url": {"url": _data_url(_png_claiming(width, height), "image/png")}}
    elif choice == "bytes":
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * draw(st.integers(350_000, 900_000))}}
    else:
        part = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + "A" * draw(st.integers(350_000, 900_000))}}
    return Case(f"media:too-large:{choice}", payload=req(messages=[user(text("Describe."), part)], **GUARD), statuses=(413,), params=("messages",))


# --- raw bodies -------------------------------------------------------------------------------------

CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "image/png",
    "application/json; charset=utf-16",
    "application/octet-stream",
    "",
]


@st.composite
def raw_cases(draw: st.DrawFn) -> Case:
    choice = draw(st.sampled_from(["random", "random", "invalid-utf8", "huge", "huge", "deep", "deep-in-field", "truncated", "oversized", "content-type", "encoding", "surrogate"]))
    if choice == "random":
        data = draw(st.binary(max_size=2048))
        return Case("raw:random", body=data, headers={"Content-Type": draw(st.sampled_from(CONTENT_TYPES))})
    if choice == "invalid-utf8":
        good = json.dumps(req(messages=[{"role": "user", "content": "hi there"}])).encode()
        bad = draw(st.lists(st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xe2\x82"]), min_size=1, max_size=4))
        at = good.index(b"hi there") + draw(st.integers(0, 8))
        # a space after each piece: `\xe2\x82` then `\x80` would make a valid character
        return Case("raw:invalid-utf8", body=good[:at] + b" ".join(bad) + good[at:], params=(None,))
    if choice == "huge":
        size = draw(st.integers(100_000, 900_000))
        blob = draw(st.sampled_from(["a", "\u00e9", "\u4e2d", "\\", "\U0001f600", "<|image_pad|>"])) * (size // 13 + 1)
        name, value, statuses, params = draw(
            st.sampled_from(
                [
                    ("model", "zz-" + blob, (404,), ("model",)),
                    ("temperature", blob, (400,), ("temperature",)),
                    ("stop", [blob] * 5, (400, 413), ("stop", None)),
                    ("messages", [{"role": blob, "content": "hi"}], (400,), ("messages",)),
                    ("messages", [user({"type": "image_url", "image_url": {"url": "http://10.0.0.1/" + blob}})], (400,), ("messages",)),  # refused
                    ("messages", [user(text(blob + "<|vision_start|>"))], (400,), ("messages",)),
                    ("tool_choice", blob, (400,), ("tool_choice",)),
                ]
            )
        )
        payload = req(**{name: value}, **GUARD)
        if len(json.dumps(payload)) > MAX_REQUEST_BYTES:  # wide characters are escaped in JSON
            statuses, params = (413,), (None,)
        return Case(f"raw:huge:{name}", payload=payload, statuses=statuses, params=params)
    if choice == "deep":
        depth = draw(st.integers(1_000, 20_000) | st.just(10_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"messages":', b"}"), (b'[{"a":', b"}]")]))
        closed = draw(st.booleans())
        body = opener * depth + (b"1" + closer * depth if closed else b"")
        return Case("raw:deep", body=body, params=(None, "messages"))
    if choice == "deep-in-field":
        depth = draw(st.integers(100, 3000))
        nested = "[" * depth + "]" * depth
        name = draw(st.sampled_from(["messages", "stop", "temperature", "tools", "response_format", "tool_choice", "model", "logit_bias", "stream_options"]))
        body = json.dumps(req(**GUARD)).encode()[:-1] + f', "{name}": {nested}}}'.encode()
        return Case("raw:deep-in-field", body=body, params=(name, None))
    if choice == "truncated":
        good = json.dumps(req(response_format={"type": "json_object"}, stop=["a", "b"])).encode()
        return Case("raw:truncated", body=good[: draw(st.integers(0, len(good) - 1))], params=(None,))
    if choice == "oversized":
        size = MAX_REQUEST_BYTES + draw(st.integers(1, 600_000))
        start = draw(st.sampled_from([b'{"messages": "', b"", b"[", json.dumps(req()).encode()[:-1] + b', "pad": "']))
        body = start + b"x" * (size - len(start))
        return Case("raw:oversized", body=body, statuses=(413,), params=(None,), chunked=draw(st.booleans()))
    if choice == "content-type":
        content_type = draw(st.sampled_from(CONTENT_TYPES))
        body = draw(
            st.sampled_from(
                [
                    b"model=tiny&messages=hi&max_tokens=2",
                    b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny\r\n--xyz--\r\n',
                    b"<request><model>tiny</model></request>",
                    IMAGES["png"],
                    json.dumps(req(temperature=5)).encode("utf-16"),  # JSON in UTF-16/32 may parse: wrong by its temperature
                    json.dumps(req(temperature=5)).encode("utf-32")[4:],
                ]
            )
        )
        return Case("raw:content-type", body=body, headers={"Content-Type": content_type}, params=(None, "temperature"))
    if choice == "encoding":
        good = json.dumps(req(temperature=5)).encode()
        encoding, body, statuses, params = draw(
            st.sampled_from(
                [
                    ("gzip", b"not gzip at all", (400,), (None,)),
                    ("deflate", b"not deflate", (400,), (None,)),
                    ("gzip", gzip.compress(good)[:-6], (400,), (None, "temperature")),
                    ("gzip", gzip.compress(good), (400,), ("temperature",)),
                    ("gzip", gzip.compress(b" " * (4 * MAX_REQUEST_BYTES)), (413,), (None,)),
                    ("x-unknown", good, (400, 415), ("temperature", None)),
                ]
            )
        )
        return Case(f"raw:encoding:{encoding}", body=body, headers={"Content-Encoding": encoding}, statuses=statuses, params=params)
    # lone surrogates, legal JSON escapes that are no text: refused (there is no guard: this one reaches the tokenizer)
    where = draw(st.sampled_from(["content", "system", "stop"]))
    surrogate = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udbff\\u0041", "x\\ud83d"]))
    if where == "content":
        body = b'{"model":"tiny","max_tokens":2,"messages":[{"role":"user","content":"hi ' + surrogate.encode() + b'"}]}'
    elif where == "system":
        body = b'{"model":"tiny","max_tokens":2,"messages":[{"role":"system","content":"' + surrogate.encode() + b'"},{"role":"user","content":"hi"}]}'
    else:
        body = b'{"model":"tiny","max_tokens":2,"stop":["' + surrogate.encode() + b'"],"messages":[{"role":"user","content":"hi"}]}'
    return Case(f"raw:surrogate:{where}", body=body)


#: Each kind of case and its share of the run (`st.one_of` would favour the first ones).
WEIGHTED = [
    (field_cases(), 20),
    (unknown_model_cases(), 3),
    (response_format_cases(), 8),
    (tools_cases(), 7),
    (message_cases(), 14),
    (media_cases(), 22),
    (media_field_cases(), 7),
    (too_large_media_cases(), 3),
    (raw_cases(), 16),
]
CASES = st.integers(0, 2**32 - 1).flatmap(lambda seed: random.Random(seed).choices([s for s, _ in WEIGHTED], [w for _, w in WEIGHTED])[0])


#: Cases every run sends, whatever hypothesis draws.
FIXED = [
    Case("fixed:deep", body=b"[" * 10_000, params=(None,)),
    Case("fixed:deep-object", body=b'{"a":' * 10_000, params=(None,)),
    Case("fixed:file-url", payload=req(messages=[user({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}})], **GUARD), params=("messages",)),
    Case("fixed:metadata-url", payload=req(messages=[user({"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}})], **GUARD), params=("messages",)),
    Case("fixed:truncated-png", payload=req(messages=[user({"type": "image_url", "image_url": {"url": _data_url(IMAGES["png"][:60], "image/png")}})], **GUARD), params=("messages",)),
    Case("fixed:truncated-jpeg", payload=req(messages=[user({"type": "image_url", "image_url": {"url": _data_url(IMAGES["jpeg-exif"][:300], "image/jpeg")}})], **GUARD), params=("messages",)),
    Case("fixed:random-video", payload=req(messages=[user({"type": "video_url", "video_url": {"url": _data_url(random.Random(7).randbytes(3000), "video/mp4")}})], **GUARD), params=("messages",)),
    Case("fixed:oversized", body=b'{"messages": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}', statuses=(413,), params=(None,)),
    Case("fixed:schema-type-list", payload=req(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": ["string", ["null"]]}}}), params=("response_format",)),
    Case("fixed:gzip-garbage", body=b"not gzip", headers={"Content-Encoding": "gzip"}, params=(None,)),
    Case("fixed:long-host-label", payload=req(messages=[user({"type": "image_url", "image_url": {"url": "http://" + "a" * 64 + ".invalid/x.png"}})], **GUARD), params=("messages",)),
]


# --- checking answers -------------------------------------------------------------------------------


def _param_ok(param: Any, allowed: tuple[str | None, ...]) -> bool:
    return any(param == p or (p is not None and isinstance(param, str) and param.startswith(p + ".")) for p in allowed)


def check(response: httpx.Response, case: Case) -> str | None:
    """What is wrong with the answer to `case`, or None."""
    status = response.status_code
    if not 400 <= status < 500:
        return f"status {status}"
    if "application/json" not in response.headers.get("Content-Type", ""):
        return f"status {status}, not JSON but {response.headers.get('Content-Type')!r}: {response.text[:200]!r}"
    try:
        body = response.json()
    except ValueError:
        return f"status {status}, body is not JSON: {response.text[:200]!r}"
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict) and set(body["error"]) == ERROR_KEYS):
        return f"status {status}, not an OpenAI error body: {response.text[:300]}"
    error = body["error"]
    if not (isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str) and error["type"]):
        return f"status {status}, empty message or type: {error}"
    if not (error["param"] is None or isinstance(error["param"], str)) or not (error["code"] is None or isinstance(error["code"], str)):
        return f"status {status}, param or code neither string nor null: {error}"
    if status not in case.statuses:
        return f"status {status}, expected {case.statuses}: {error['message'][:300]}"
    if case.params is not ... and not _param_ok(error["param"], case.params):
        return f"param {error['param']!r}, expected one of {case.params}: {error['message'][:300]}"
    return None


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Fuzzer:
    """Sends cases, counts them, and keeps every failure with the server's log of it."""

    def __init__(self, url: str, records: _Records) -> None:
        self.url = url + "/v1/chat/completions"
        self.client = httpx.Client(timeout=httpx.Timeout(30.0))
        self.records = records
        self.sent = 0
        self.by_kind: dict[str, int] = {}
        self.failures: dict[str, list[str]] = {}
        self.rss_trace: list[int] = []
        self.hangs = 0

    def send(self, case: Case) -> None:
        if self.hangs >= 3:
            return  # a server that hangs would make the run last hours; the count check fails instead
        mark = len(self.records.lines)
        body = case.encoded()
        headers = {"Content-Type": "application/json", **case.headers}
        headers = {k: v for k, v in headers.items() if v}
        content: Any = body
        if case.chunked:
            content = (body[i : i + 65536] for i in range(0, len(body), 65536))
        self.sent += 1
        if self.sent % 250 == 0:
            self.rss_trace.append(round(rss_mb()))
        kind = ":".join(case.kind.split(":")[:2])
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        try:
            response = self.client.post(self.url, content=content, headers=headers)
            problem = check(response, case)
        except httpx.TimeoutException:
            problem = "no answer within 30 s (a hang)"
            self.hangs += 1
        except httpx.TransportError as exc:
            problem = f"no HTTP answer: {type(exc).__name__}: {exc}"
        if problem is None and not any(" ERROR: " in line for line in self.records.since(mark)):
            return
        time.sleep(0.05)  # let the server finish logging
        log = "\n".join(self.records.since(mark))
        problem = problem or "a good answer, but the server logged an error"
        signature = f"{kind} -> {problem.split(':')[0][:60]}"
        self.failures.setdefault(signature, []).append(f"input: {case.describe()}\nanswer: {problem}\nserver log:\n{log or '(nothing)'}")

    def report(self) -> str:
        parts = [f"{len(self.failures)} kinds of failure in {self.sent} requests:"]
        for signature, items in self.failures.items():
            parts.append(f"\n=== {signature} ({len(items)}x) ===\n{items[0]}")
        return "\n".join(parts)


def test_fuzz_chat_endpoint(fuzz_server: ServerThread) -> None:
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    started = time.monotonic()
    fuzzer = Fuzzer(fuzz_server.url, records)
    try:
        # Warm up: both models loaded, media decoders imported, so memory growth below is the run's own.
        for model in ("tiny", "tiny-tools"):
            warm = fuzzer.client.post(fuzzer.url, json=req(model=model))
            assert warm.status_code == 200, warm.text
        for case in FIXED[:7]:
            fuzzer.client.post(fuzzer.url, content=case.encoded(), headers={"Content-Type": "application/json"})
        before = rss_mb()

        for case in FIXED:
            fuzzer.send(case)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            print_blob=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example],
        )
        @given(case=CASES)
        def fuzz(case: Case) -> None:
            fuzzer.send(case)

        fuzz()
        after = rss_mb()

        good = fuzzer.client.post(fuzzer.url, json=req(max_tokens=4))
        elapsed = time.monotonic() - started
        summary = (
            f"{fuzzer.sent} malformed requests in {elapsed:.1f} s; RSS {before:.0f} -> {after:.0f} MB "
            f"(+{after - before:.1f} MB; every 250 requests: {fuzzer.rss_trace}); by kind: {dict(sorted(fuzzer.by_kind.items()))}"
        )
        if fuzzer.failures:
            pytest.fail(summary + "\n" + fuzzer.report(), pytrace=False)
        print("\n" + summary)
        assert fuzzer.sent >= 1000, summary
        assert good.status_code == 200, good.text
        assert good.json()["choices"][0]["message"]["content"], good.text
        assert after - before < MAX_RSS_GROWTH_MB, summary
    finally:
        root.removeHandler(records)
        fuzzer.client.close()
