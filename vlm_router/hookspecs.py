"""The plugin contract: every hook a plugin may implement.

A plugin is a module registered under the `vlm_router` entry-point group (built-in families use the
same group). It implements hooks with `@vlm_router.hookimpl`::

    from vlm_router import hookimpl

    @hookimpl
    def register_families(register):
        register(MyFamily())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from .family import Family

if TYPE_CHECKING:
    from .tiny import TinyModel

PROJECT = "vlm_router"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_families(register: Callable[[Family], None]) -> None:
    """Register model families by calling `register(family)` once for each.

    `family` is an instance of a `vlm_router.Family` subclass: it names the family and the
    `model_type`s it serves, states its capabilities, builds prompts from OpenAI messages and builds
    the OpenVINO pipeline for a model folder (`load_pipeline`, a default it may override). Two
    families with the same name, or claiming the same `model_type`, are a start-up error.
    """


@hookspec
def register_tiny_models(register: Callable[[TinyModel], None]) -> None:
    """Register random-weight models `vlm-router make-tiny` can build offline, by calling `register(model)` for each.

    `model` is a `vlm_router.TinyModel`: a `model_type` some family serves, its presets and the function
    that writes its Hugging Face checkpoint. Building test models is kept apart from the families, which
    are serving code; two plugins registering the same `model_type` are an error.
    """
