"""What every route of `career-relay serve` shares: the configuration, store and connectors,
kept on the app and handed to a request through `state(request)`. Routers import this module,
never app.py, so the app can import its routers without an import circle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from relay_core.config import Config
from relay_core.store import Store

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


@dataclass
class AppState:
    config: Config
    store: Store
    connectors: dict[str, Connector]


def state(request: Request) -> AppState:
    return request.app.state.relay
