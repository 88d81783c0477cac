"""What every route of `career-relay serve` shares: the configuration, store and connectors,
kept on the app and handed to a request through `state(request)`. Routers import this module,
never app.py, so the app can import its routers without an import circle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

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
    inbox_writer: Any = None        # web/inbox.py InboxWriter: the webhooks' group commit
    inbox_processor: Any = None     # web/inbox.py InboxProcessor: their processing after the ack


def state(request: Request) -> AppState:
    return request.app.state.relay


T = TypeVar("T")
_building = threading.Lock()


def built_once(request: Request, name: str, build: Callable[[AppState], T]) -> T:
    """What a router builds from the app's state the first time a request needs it (keys,
    renderers), kept on the app: requests run on several threads, and it is built only once."""
    built = getattr(request.app.state, name, None)
    if built is None:
        with _building:
            built = getattr(request.app.state, name, None)
            if built is None:
                built = build(state(request))
                setattr(request.app.state, name, built)
    return built
