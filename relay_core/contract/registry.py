"""The connector registry: an explicit dict from source type to the class that serves it.

A vendor module is imported only when a configured `[[sources]]` block names its type, so
importing the core loads no connector (tests/test_architecture.py checks `sys.modules`). Add a
connector with one line here; ruff (F601) refuses a repeated key, and a class whose `type`
disagrees with its key is refused when it loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from relay_core.errors import ConfigError

if TYPE_CHECKING:
    from relay_core.config import Config
    from relay_core.contract.base import Connector

CONNECTORS: dict[str, str] = {
    "hrmos_export": "relay_core.connectors.hrmos_export:HrmosExport",
    "greenhouse": "relay_core.connectors.greenhouse:Greenhouse",
    "lever": "relay_core.connectors.lever:Lever",
    "herp": "relay_core.connectors.herp:Herp",
    "talentio": "relay_core.connectors.talentio:Talentio",
}


def connector_class(source_type: str) -> type[Connector]:
    """The class registered for `source_type`; KeyError when there is none."""
    module_name, class_name = CONNECTORS[source_type].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.type != source_type:
        raise RuntimeError(f"{CONNECTORS[source_type]} declares type {cls.type!r}, "
                           f"but is registered as {source_type!r}")
    return cls


def build_connectors(config: Config) -> dict[str, Connector]:
    """One connector per enabled `[[sources]]` block, validated; keyed by source name."""
    built: dict[str, Connector] = {}
    for index, source in enumerate(config.sources):
        if source.type not in CONNECTORS:
            raise ConfigError(f"sources[{index}].type", f"unknown source type {source.type!r}",
                              "Use one of: " + ", ".join(sorted(CONNECTORS)))
        connector = connector_class(source.type)(source, config, index)
        if source.enabled:
            built[source.name] = connector
    return built
