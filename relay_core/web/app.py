"""`career-relay serve`: one FastAPI app. Each concern is a router in its own module:
webhooks.py (ATS deliveries); the consent pages and agency events add theirs here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

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


def create_app(config: Config, store: Store, connectors: dict[str, Connector]) -> FastAPI:
    from relay_core.web import agency, consent, webhooks

    app = FastAPI(title="Career Relay", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.relay = AppState(config=config, store=store, connectors=connectors)
    app.include_router(webhooks.router)
    app.include_router(agency.router)
    consent.install(app)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app
