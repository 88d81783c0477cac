"""Connector registry: an explicit dict, no scanning. Add a connector by importing its class
here and adding one line to _CONNECTORS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay_core.errors import ConfigError

from .base import Connector
from .greenhouse import Greenhouse
from .herp import Herp
from .hrmos_export import HrmosExport
from .lever import Lever
from .talentio import Talentio

if TYPE_CHECKING:
    from relay_core.config import Config

_CONNECTORS: list[type[Connector]] = [
    HrmosExport,
    Greenhouse,
    Lever,
    Herp,
    Talentio,
]


def _build_registry(classes: list[type[Connector]]) -> dict[str, type[Connector]]:
    registry: dict[str, type[Connector]] = {}
    for cls in classes:
        if cls.type in registry:
            raise RuntimeError(f"two connectors are registered as {cls.type!r}")
        registry[cls.type] = cls
    return registry


REGISTRY: dict[str, type[Connector]] = _build_registry(_CONNECTORS)


def build_connectors(config: Config) -> dict[str, Connector]:
    """One connector per enabled `[[sources]]` block, validated; keyed by source name."""
    built: dict[str, Connector] = {}
    for index, source in enumerate(config.sources):
        cls = REGISTRY.get(source.type)
        if cls is None:
            raise ConfigError(f"sources[{index}].type", f"unknown source type {source.type!r}",
                              "Use one of: " + ", ".join(sorted(REGISTRY)))
        connector = cls(source, config, index)
        if source.enabled:
            built[source.name] = connector
    return built
