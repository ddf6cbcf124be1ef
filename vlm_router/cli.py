"""The `vlm-router` command: serve, plugins, devices, convert, make-tiny."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError, ServerConfig, load_config
from .logs import setup_logging
from .plugins import PluginError, load_families

if TYPE_CHECKING:
    from aiohttp import web

    from .family import Capabilities

DEFAULT_CONFIG = "models.yaml"


def _config_path(value: str | None) -> Path | None:
    """`--config`, else `$VLM_CONFIG`, else ./models.yaml if it exists."""
    chosen = value or os.environ.get("VLM_CONFIG")
    if chosen:
        return Path(chosen)
    return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None


def serve(args: argparse.Namespace) -> int:
    from .api.app import create_app

    config = load_config(_config_path(args.config))
    if args.host:
        config.server.host = args.host
    if args.port:
        config.server.port = args.port
    if not config.models:
        raise ConfigError("no models configured: add some to models.yaml or set VLM_MODEL_NAME")
    app = create_app(config, load_families())
    names = ", ".join(m.name for m in config.models)
    logging.getLogger(__name__).info("serving %s on http://%s:%d", names, config.server.host, config.server.port)
    asyncio.run(_serve(app, config.server))
    return 0


async def _serve(app: web.Application, server: ServerConfig) -> None:
    """Serve `app` until SIGINT or SIGTERM, then stop: in-flight requests get `server.shutdown_grace_s`."""
    from .api.app import SERVICE
    from .api.connections import start_server
    from .shutdown import ShutdownDeadline

    runner = await start_server(app, server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        ShutdownDeadline(app[SERVICE].registry, server.shutdown_grace_s).start()
        await runner.cleanup()


def plugins(_: argparse.Namespace) -> int:
    families = load_families()
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
        engine = "continuous batching" if family.continuous_batching else "VLMPipeline, one request at a time"
        print(f"  engine: {engine}")
        if family.history_images:
            print(f"  images in earlier turns: {family.history_images}")
        for model_type, presets in family.tiny_model_types().items():
            print(f"  make-tiny --family {model_type}: presets {', '.join(presets)}")
        if not family.tiny_model_types():
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

    weight_format = WeightFormat(args.weight_format)
    out = Path(args.out) if args.out else cache_folder(load_config(_config_path(args.config)).server.cache_dir, args.source, weight_format)
    try:
        convert_sync(args.source, out, weight_format, args.trust_remote_code, progress=sys.stderr)
    except ConversionError as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def make_tiny(args: argparse.Namespace) -> int:
    from .config import WeightFormat
    from .tiny import TinyModelError
    from .tiny import make_tiny as build

    try:
        out = build(
            load_families(),
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vlm-router", description="OpenAI-compatible server for vision-language models on OpenVINO")
    top.add_argument("--log-level", default=os.environ.get("VLM_LOG_LEVEL") or "INFO")
    top.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("VLM_LOG_FORMAT") or "text", help="json: one JSON object per line")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="serve the models of models.yaml")
    run.add_argument("--config", help="models.yaml to use (default: $VLM_CONFIG, else ./models.yaml)")
    run.add_argument("--host", help="address to listen on (default: server.host, or $VLM_HOST)")
    run.add_argument("--port", type=int, help="port to listen on (default: server.port, or $VLM_SERVICE_PORT, else 9764)")
    run.set_defaults(func=serve)

    listing = commands.add_parser("plugins", help="list installed plugins and families with their capabilities")
    listing.set_defaults(func=plugins)

    device_list = commands.add_parser("devices", help="list OpenVINO's devices on this machine")
    device_list.set_defaults(func=devices)

    export = commands.add_parser("convert", help="export a Hugging Face model to an OpenVINO folder (needs the convert extra)")
    export.add_argument("source", help="a Hugging Face id or a local checkpoint folder")
    export.add_argument("--weight-format", default="int8", choices=["int4", "int8", "fp16"])
    export.add_argument("--out", help="output folder (default: <cache_dir>/<source>/<format>, as lazy loading uses)")
    export.add_argument("--config", help="models.yaml whose server.cache_dir to use (default: as serve finds it)")
    export.add_argument("--trust-remote-code", action="store_true", help="run the model repository's own code (only for ones you trust)")
    export.set_defaults(func=convert)

    tiny = commands.add_parser("make-tiny", help="build a tiny random-weight model offline (needs the convert extra)")
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
    except (ConfigError, PluginError) as exc:
        print(f"vlm-router: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
