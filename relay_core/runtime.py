"""Wiring shared by the CLI and the service: config → store, connectors, transport."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from relay_core.config import Config, load_config
from relay_core.mail.transports import Transport, make_transport
from relay_core.store import Store, open_store

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


@dataclass
class Runtime:
    config: Config
    store: Store
    connectors: dict[str, Connector]

    def transport(self) -> Transport:
        return make_transport(self.config)


def load_runtime(config_path: str | Path) -> Runtime:
    from relay_core.contract.registry import build_connectors

    config = load_config(config_path)
    connectors = build_connectors(config)   # validates every source before touching the store
    return Runtime(config, open_store(config.store_url), connectors)
