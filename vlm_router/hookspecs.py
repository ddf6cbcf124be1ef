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

import pluggy

from .family import Family

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
