"""The `vlm-router` command: serve, list, ps, plugins, devices, convert, pull, make-tiny."""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError, RouterConfig, ServerConfig, load_config
from .logs import setup_logging
from .plugins import PluginError, load_families, load_tiny_models

if TYPE_CHECKING:
    from aiohttp import web

    from .family import Capabilities

DEFAULT_CONFIG = "models.yaml"


class ListenError(Exception):
    """The server cannot listen where it is told to; the message says how to choose another address."""


def _config_path(value: str | None) -> Path | None:
    """`--config`, else `$VLM_CONFIG`, else ./models.yaml if it exists."""
    chosen = value or os.environ.get("VLM_CONFIG")
    if chosen:
        return Path(chosen)
    return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None


def serve(args: argparse.Namespace) -> int:
    from .api.app import create_app

    path = _config_path(args.config)

    def read() -> RouterConfig:
        """The configuration with the command line's --host and --port over it, at start and at each reload."""
        config = load_config(path)
        if args.host:
            config.server.host = args.host
        if args.port:
            config.server.port = args.port
        return config

    config = read()
    if not config.models:
        raise ConfigError(_no_models(path))
    app = create_app(config, load_families(), read)
    names = ", ".join(m.name for m in config.models)
    host, port = config.server.host, config.server.port
    page = f" (playground: http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}/)" if config.server.ui else ""
    logging.getLogger(__name__).info("serving %s on http://%s:%d%s", names, host, port, page)
    _warn_if_open(config.server)
    asyncio.run(_serve(app, config.server))
    return 0


def _warn_if_open(server: ServerConfig) -> None:
    """A warning when the server is reachable beyond this machine without API keys. In a container, whose server
    listens on every interface, `VLM_HOST_BIND` (which compose.yaml passes on) says where the port is published."""
    from .api.access import is_loopback

    reachable_on = os.environ.get("VLM_HOST_BIND", "").strip() or server.host
    if not server.api_keys and not is_loopback(reachable_on):
        logging.getLogger(__name__).warning(
            "no API keys, and reachable beyond this machine (on %s): anyone who can reach port %d can use the models; "
            "set VLM_API_KEYS (or server.api_keys), or listen on (publish on) 127.0.0.1",
            reachable_on, server.port,
        )


async def _serve(app: web.Application, server: ServerConfig) -> None:
    """Serve `app` until SIGINT or SIGTERM, then stop: in-flight requests get `server.shutdown_grace_s`. SIGHUP reloads the configuration."""
    from .api.app import RELOADER, SERVICE
    from .api.connections import start_server
    from .shutdown import ShutdownDeadline

    try:
        runner = await start_server(app, server)
    except OSError as exc:
        raise ListenError(_cannot_listen(exc, server)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER].on_signal)
    try:
        await stop.wait()
    finally:
        loop.add_signal_handler(signal.SIGHUP, logging.getLogger(__name__).warning, "SIGHUP ignored: the server is shutting down")
        ShutdownDeadline(app[SERVICE].registry, server.shutdown_grace_s).start()
        await runner.cleanup()


def _no_models(path: Path | None) -> str:
    """Why there is nothing to serve, and the ways to name a models.yaml."""
    if path is None:
        return f"no {DEFAULT_CONFIG} in {Path.cwd()}: name one with --config FILE or VLM_CONFIG=FILE, or serve one Hugging Face model with VLM_MODEL_NAME=<id>"
    return f"{path} configures no models: add some under `models:`, or set VLM_MODEL_NAME=<Hugging Face id>"


def _cannot_listen(exc: OSError, server: ServerConfig) -> str:
    """Why the server cannot listen on its address, in one line naming the settings that choose another."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {server.port} is already in use on {server.host} (another vlm-router?): choose another with --port or VLM_SERVICE_PORT"
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
    return f"cannot listen on {server.host} port {server.port} ({reason}): choose another with --host or VLM_HOST, --port or VLM_SERVICE_PORT"


def list_models(args: argparse.Namespace) -> int:
    from .listing import show_list

    return show_list(_config_path(args.config), args.url, args.api_key, args.json)


def ps(args: argparse.Namespace) -> int:
    from .listing import show_ps

    return show_ps(_config_path(args.config), args.url, args.api_key, args.json)


def plugins(_: argparse.Namespace) -> int:
    families, tiny_models = load_families(), load_tiny_models()
    for name in families.names():
        family = families.families[name]
        caps = family.capabilities
        max_images = "any number of" if caps.max_images is None else f"up to {caps.max_images}"
        print(f"{family.name}  (plugin {families.plugin_of[name]})")
        print(f"  {family.description}")
        print(f"  model types: {', '.join(family.model_types) or f'none (a model chooses it with family: {name})'}")
        frames = f", up to {caps.max_frames} frames" if caps.max_frames is not None and caps.video.value != "none" else ""
        print(f"  images: {'yes, ' + max_images if caps.images else 'no'}; video: {caps.video.value}{frames}")
        if caps.images:
            print(f"  image budget: {_image_budget(caps)}")
        batching = "continuous" if family.continuous_batching else "none (VLMPipeline, one request at a time)"
        print(f"  batching: {batching}")
        if family.history_images:
            print(f"  images in earlier turns: {family.history_images}")
        buildable = [tiny_models[t] for t in family.model_types if t in tiny_models]
        for model in buildable:
            print(f"  make-tiny --family {model.model_type}: presets {', '.join(model.presets)}")
        if not buildable:
            print("  make-tiny: not available (no offline build for this family)")
    return 0


def _image_budget(caps: Capabilities) -> str:
    """The family's image budget in one line, for `plugins`."""
    if caps.max_image_pixels is None:
        return "none (the model's own preprocessing bounds an image)"
    low = f", detail low {caps.low_detail_pixels}" if caps.low_detail_pixels is not None else ""
    shape = f", {caps.image_tile}-pixel tiles" if caps.image_tile else f", {caps.image_grid}-pixel grid" if caps.image_grid else ""
    return f"{caps.max_image_pixels} pixels{low}{shape}"


def devices(_: argparse.Namespace) -> int:
    from .devices import available_devices, device_properties

    for name in available_devices():
        print(f"{name}  {device_properties(name).get('FULL_DEVICE_NAME', '')}")
    return 0


def convert(args: argparse.Namespace) -> int:
    from .config import WeightFormat
    from .convert import ConversionError, cache_folder, convert_sync
    from .progress import Progress

    weight_format = WeightFormat(args.weight_format)
    out = Path(args.out) if args.out else cache_folder(load_config(_config_path(args.config)).server.cache_dir, args.source, weight_format)
    try:
        convert_sync(args.source, out, weight_format, args.trust_remote_code, progress=Progress(args.source, sys.stderr))
    except ConversionError as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def pull(args: argparse.Namespace) -> int:
    from .config import WeightFormat
    from .hub import FetchError, fetch_sync
    from .progress import Progress

    cache_dir = load_config(_config_path(args.config)).server.cache_dir
    out = Path(args.out) if args.out else None
    try:
        folder = fetch_sync(args.source, cache_dir, WeightFormat(args.weight_format), args.trust_remote_code, Progress(args.source, sys.stderr), out)
    except FetchError as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vlm-router: interrupted; pulling again resumes a download where it stopped", file=sys.stderr, flush=True)
        os._exit(130)  # at once: huggingface_hub's download threads would otherwise finish their files first
    print(folder)
    return 0


def make_tiny(args: argparse.Namespace) -> int:
    from .config import WeightFormat
    from .tiny import TinyModelError
    from .tiny import make_tiny as build

    try:
        out = build(
            load_tiny_models(),
            args.family,
            Path(args.out),
            preset=args.preset,
            weight_format=WeightFormat(args.weight_format),
            hf_only=args.hf,
            force=args.force,
        )
    except TinyModelError as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 2
    print(f"{args.preset} {args.family} model in {out}")
    return 0


def _add_log_options(parser: argparse.ArgumentParser, level: str, form: str) -> None:
    """`--log-level` and `--log-format`, defaulting to `level` and `form`."""
    parser.add_argument("--log-level", default=level, help="DEBUG, INFO, WARNING or ERROR (default: $VLM_LOG_LEVEL, else INFO)")
    parser.add_argument("--log-format", choices=["text", "json"], default=form, help="json: one JSON object per line (default: $VLM_LOG_FORMAT, else text)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vlm-router", description="OpenAI-compatible server for vision-language models on OpenVINO")
    _add_log_options(top, os.environ.get("VLM_LOG_LEVEL") or "INFO", os.environ.get("VLM_LOG_FORMAT") or "text")
    log_options = argparse.ArgumentParser(add_help=False)  # the same after the command, where given they win
    _add_log_options(log_options, argparse.SUPPRESS, argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True)
    command = functools.partial(commands.add_parser, parents=[log_options])

    run = command("serve", help="serve the models of models.yaml")
    run.add_argument("--config", help="models.yaml to use (default: $VLM_CONFIG, else ./models.yaml)")
    run.add_argument("--host", help="address to listen on (default: server.host, or $VLM_HOST)")
    run.add_argument("--port", type=int, help="port to listen on (default: server.port, or $VLM_SERVICE_PORT, else 9764)")
    run.set_defaults(func=serve)

    client_options = argparse.ArgumentParser(add_help=False)
    client_options.add_argument("--url", help="the server (default: http://<host>:<port> as serve finds them, e.g. http://127.0.0.1:9764)")
    client_options.add_argument("--api-key", help="the server's API key (default: $VLM_API_KEY, else the first of server.api_keys and VLM_API_KEYS)")
    client_options.add_argument("--config", help="models.yaml with the server's address and keys (default: $VLM_CONFIG, else ./models.yaml)")
    client_options.add_argument("--json", action="store_true", help="print the models as JSON, as GET /v1/models shows each")
    known = commands.add_parser(
        "list", parents=[log_options, client_options], help="list the configured models and their states (models.yaml's when no server answers)"
    )
    known.set_defaults(func=list_models)
    loaded = commands.add_parser("ps", parents=[log_options, client_options], help="list the models a running server has loaded")
    loaded.set_defaults(func=ps)

    listing = command("plugins", help="list installed plugins and families with their capabilities")
    listing.set_defaults(func=plugins)

    device_list = command("devices", help="list OpenVINO's devices on this machine")
    device_list.set_defaults(func=devices)

    export = command("convert", help="export a Hugging Face model to an OpenVINO folder (needs the convert extra)")
    export.add_argument("source", help="a Hugging Face id or a local checkpoint folder")
    export.add_argument("--weight-format", default="int8", choices=["int4", "int8", "fp16"])
    export.add_argument("--out", help="output folder (default: <cache_dir>/<source>/<format>, as lazy loading uses)")
    export.add_argument("--config", help="models.yaml whose server.cache_dir to use (default: as serve finds it)")
    export.add_argument("--trust-remote-code", action="store_true", help="run the model repository's own code (only for ones you trust)")
    export.set_defaults(func=convert)

    fetch = command("pull", help="download a model published as an OpenVINO export, or convert any other (conversion needs the convert extra)")
    fetch.add_argument("source", help="a Hugging Face id, a local checkpoint folder or an OpenVINO folder")
    fetch.add_argument("--weight-format", default="int8", choices=["int4", "int8", "fp16"], help="for a conversion; a published export keeps its own")
    fetch.add_argument("--out", help="output folder (default: <cache_dir>/<source>/openvino for a published export, else <cache_dir>/<source>/<format>)")
    fetch.add_argument("--config", help="models.yaml whose server.cache_dir to use (default: as serve finds it)")
    fetch.add_argument("--trust-remote-code", action="store_true", help="for a conversion: run the model repository's own code (only for ones you trust)")
    fetch.set_defaults(func=pull)

    tiny = command("make-tiny", help="build a tiny random-weight model offline (needs the convert extra)")
    tiny.add_argument("--family", required=True, help="model type to build, e.g. qwen2_vl or qwen2_5_vl")
    tiny.add_argument("--out", required=True, help="output folder")
    tiny.add_argument("--preset", default="tiny", help="tiny (a few MB, for tests) or a real model's shape, e.g. 2b (see `plugins`)")
    tiny.add_argument("--weight-format", default="fp16", choices=["fp16", "int8", "int4"], help="weights of the exported model")
    tiny.add_argument("--hf", action="store_true", help="write the Hugging Face checkpoint instead of an OpenVINO folder")
    tiny.add_argument("--force", action="store_true", help="rebuild even if the folder already holds a model")
    tiny.set_defaults(func=make_tiny)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except (ConfigError, PluginError, ListenError) as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
