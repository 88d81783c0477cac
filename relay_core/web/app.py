"""`career-relay serve`: one FastAPI app. Each concern is a router in its own module:
webhooks.py (ATS deliveries, acknowledged once in the inbox; inbox.py
processes them after the ack), consent.py (the candidate's pages), agency.py (agency events),
admin/ (the HR console at /admin/, unless `admin.enabled = false`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from relay_core.config import Config
from relay_core.store import Store
from relay_core.web import admin, agency, consent, webhooks
from relay_core.web.deps import AppState
from relay_core.web.inbox import InboxProcessor, InboxWriter

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


def create_app(config: Config, store: Store, connectors: dict[str, Connector]) -> FastAPI:
    app = FastAPI(title="Career Relay", docs_url=None, redoc_url=None, openapi_url=None)
    writer = InboxWriter(store)
    processor = InboxProcessor(store, config, connectors, writer)
    writer.on_commit = processor.notify
    app.state.relay = AppState(config=config, store=store, connectors=connectors,
                               inbox_writer=writer, inbox_processor=processor)
    app.include_router(webhooks.router)
    app.include_router(agency.router)
    consent.install(app)
    if config.admin.enabled:
        admin.install(app)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app
