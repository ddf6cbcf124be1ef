"""Loading plugins from the entry-point group and collecting the families they register."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .family import Family
from .tiny import TinyModel


class PluginError(Exception):
    """Plugins disagree (a family name, or a model_type served or built, registered twice)."""


@dataclass
class FamilyRegistry:
    """Every installed family, by name and by the `model_type`s it serves."""

    families: dict[str, Family] = field(default_factory=dict)
    plugin_of: dict[str, str] = field(default_factory=dict)
    _by_model_type: dict[str, Family] = field(default_factory=dict)
    #: None for an architecture two families list (a subclass inherits its parent's): it identifies neither.
    _by_architecture: dict[str, Family | None] = field(default_factory=dict)

    def add(self, family: Family, plugin: str) -> None:
        if family.name in self.families:
            raise PluginError(f"family '{family.name}' is registered by both '{self.plugin_of[family.name]}' and '{plugin}'")
        for model_type in family.model_types:
            if model_type in self._by_model_type:
                other = self._by_model_type[model_type].name
                raise PluginError(f"model_type '{model_type}' is claimed by both '{other}' and '{family.name}'")
        self.families[family.name] = family
        self.plugin_of[family.name] = plugin
        for model_type in family.model_types:
            self._by_model_type[model_type] = family
        for architecture in family.architectures if family.model_types else ():  # none: chosen by name only
            self._by_architecture[architecture] = None if architecture in self._by_architecture else family

    def get(self, name: str) -> Family | None:
        return self.families.get(name)

    def for_model_type(self, model_type: str) -> Family | None:
        return self._by_model_type.get(model_type)

    def for_config(self, config: Mapping[str, Any]) -> Family | None:
        """The family serving a model folder's `config.json`: by its `model_type`, else by its `architectures`."""
        family = self._by_model_type.get(str(config.get("model_type")))
        architectures = config.get("architectures")
        if family is None and isinstance(architectures, list):
            family = next((f for a in architectures if (f := self._by_architecture.get(a)) is not None), None)
        return family

    def names(self) -> list[str]:
        return sorted(self.families)


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with every plugin of the entry-point group loaded."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    return manager


def load_families(manager: pluggy.PluginManager | None = None) -> FamilyRegistry:
    """Ask every plugin to register its families."""
    manager = manager or plugin_manager()
    registry = FamilyRegistry()
    for impl in manager.hook.register_families.get_hookimpls():
        impl.function(register=lambda family, plugin=impl.plugin_name: registry.add(family, plugin))
    return registry


def load_tiny_models(manager: pluggy.PluginManager | None = None) -> dict[str, TinyModel]:
    """Every tiny model the plugins can build, by `model_type`."""
    manager = manager or plugin_manager()
    models: dict[str, TinyModel] = {}
    by: dict[str, str] = {}

    def add(model: TinyModel, plugin: str) -> None:
        if model.model_type in models:
            raise PluginError(f"tiny model '{model.model_type}' is registered by both '{by[model.model_type]}' and '{plugin}'")
        models[model.model_type], by[model.model_type] = model, plugin

    for impl in manager.hook.register_tiny_models.get_hookimpls():
        impl.function(register=lambda model, plugin=impl.plugin_name: add(model, plugin))
    for family in load_families(manager).families.values():
        for model in _family_tiny_models(family):
            add(model, f"family '{family.name}'")
    return models


def _family_tiny_models(family: Family) -> list[TinyModel]:
    """The tiny models a family builds through `Family.build_tiny`, deprecated for the `register_tiny_models` hook."""
    if type(family).build_tiny is Family.build_tiny:
        return []
    warnings.warn(
        f"family '{family.name}' builds tiny models with Family.tiny_model_types/build_tiny, which will be removed in 0.3: "
        "register them with the register_tiny_models hook (docs/tiny-models.md)",
        DeprecationWarning,
        stacklevel=2,
    )
    return [TinyModel(model_type, presets, functools.partial(family.build_tiny, model_type)) for model_type, presets in family.tiny_model_types().items()]
