"""Reloading the configuration while serving (SIGHUP, `POST /v1/admin/reload`): the file is read again and checked
whole, then its models are applied to the registry; a file that cannot be applied whole changes nothing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from . import loading
from .config import ConfigError, MediaConfig, ModelConfig, RouterConfig, ServerConfig
from .plugins import FamilyRegistry
from .registry import ModelRegistry

log = logging.getLogger(__name__)

#: The `server` settings a reload applies; the others, and every `media` one, take a restart.
RELOADABLE_SERVER_SETTINGS = frozenset({"default_model"})


@dataclass(frozen=True)
class Changes:
    """Model names by what a reload did to them; a model counts as changed when any field of its entry changed."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: list[str]


def diff(old: list[ModelConfig], new: list[ModelConfig]) -> Changes:
    """What serving the `new` entries instead of the `old` ones changes, model by model (by name)."""
    before = {m.name: m.model_dump() for m in old}
    after = {m.name: m.model_dump() for m in new}
    return Changes(
        added=[name for name in after if name not in before],
        removed=[name for name in before if name not in after],
        changed=[name for name, entry in after.items() if name in before and before[name] != entry],
        unchanged=[name for name, entry in after.items() if before.get(name) == entry],
    )


def restart_settings(old: RouterConfig, new: RouterConfig) -> list[str]:
    """The settings that differ between `old` and `new` and that only a restart applies."""
    sections = (("server", ServerConfig, old.server, new.server), ("media", MediaConfig, old.media, new.media))
    return [
        f"{section}.{field}"
        for section, schema, before, after in sections
        for field in schema.model_fields
        if not (section == "server" and field in RELOADABLE_SERVER_SETTINGS) and getattr(before, field) != getattr(after, field)
    ]


def problems(old: RouterConfig, new: RouterConfig, changes: Changes, families: FamilyRegistry) -> list[str]:
    """Why `new` cannot replace `old` while serving: no models, a setting that takes a restart, a new or changed
    entry whose family is not installed."""
    found = [] if new.models else ["no models configured"]
    found += [f"{setting} cannot change without a restart" for setting in restart_settings(old, new)]
    applied = {*changes.added, *changes.changed}
    found += [
        f"models[{index}] ('{model.name}').family: {loading.missing_family(model, families)}"
        for index, model in enumerate(new.models)
        if model.name in applied and model.family is not None and families.get(model.family) is None
    ]
    return found


class Reloader:
    """Applies the configuration `load` returns to `registry`, which serves `config` now, or refuses it whole."""

    def __init__(self, load: Callable[[], RouterConfig], config: RouterConfig, registry: ModelRegistry, families: FamilyRegistry) -> None:
        self._load = load
        self._config = config
        self._registry = registry
        self._families = families

    def reload(self) -> Changes:
        """Serve the configuration as `load` reads it now; a `ConfigError` (also logged) when it cannot be applied whole."""
        try:
            new = self._load()
            changes = diff(self._config.models, new.models)
            if found := problems(self._config, new, changes, self._families):
                raise ConfigError("\n".join(found))
        except ConfigError as exc:
            log.error("reload refused, the configuration stays as it was: %s", exc)
            raise
        self._registry.apply(new, keep=changes.unchanged)
        self._config = new
        log.info(
            "reloaded the configuration: added %s; removed %s; changed %s; unchanged %s",
            *(", ".join(names) or "none" for names in (changes.added, changes.removed, changes.changed, changes.unchanged)),
        )
        return changes

    def on_signal(self) -> None:
        """SIGHUP: reload; a refusal is only logged."""
        with contextlib.suppress(ConfigError):
            self.reload()
