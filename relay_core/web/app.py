"""`career-relay serve`: one FastAPI app. Each concern is a router in its own module:
webhooks.py (ATS deliveries, acknowledged once in the inbox; inbox.py
processes them after the ack), consent.py (the candidate's pages), agency.py (agency events),
admin/ (the HR console at /admin/, unless `admin.enabled = false`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from relay_core.config import Config
from relay_core.store import Store, runs, utcnow
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

    started = utcnow()

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        status, body = health(store, config.web.cycle_minutes, started, utcnow())
        return JSONResponse(body, status_code=status)

    return app


def health(store: Store, cycle_minutes: int, started: datetime, now: datetime
           ) -> tuple[int, dict[str, object]]:
    """200 while a cycle has succeeded within three cycle intervals (of any instance sharing
    the database), else 503 with why. Before any cycle, the process's start is the reference,
    so a fresh `serve` has three intervals to complete its first one."""
    limit = timedelta(minutes=3 * cycle_minutes)
    try:
        with store.connect() as conn:
            last_ok, last = runs.last_ok_cycle(conn), runs.last_cycle(conn)
    except Exception as exc:   # whatever the driver raises: unhealthy, not a 500
        return 503, {"status": "error", "why": f"the database cannot be read "
                                               f"({type(exc).__name__}); see the log"}
    reference = max(last_ok.finished_at, started) if last_ok else started
    body: dict[str, object] = {
        "status": "ok", "cycle_minutes": cycle_minutes,
        "last_ok_cycle": last_ok.finished_at.isoformat() if last_ok else None,
        "last_cycle": last.finished_at.isoformat() if last else None,
        "last_cycle_ok": last.ok if last else None}
    if now - reference <= limit:
        return 200, body
    age = int((now - (last_ok.finished_at if last_ok else started)).total_seconds() // 60)
    why = (f"no cycle has succeeded for {age} min (limit: 3 × {cycle_minutes} min)"
           if last_ok else f"no cycle has succeeded since start-up {age} min ago (limit: "
           f"3 × {cycle_minutes} min)")
    if last and not last.ok:   # its messages stay in the log: this page is public
        why += "; the last cycle had problems (see the log or the console's dashboard)"
    elif last is None or (last_ok and last.finished_at == last_ok.finished_at):
        why += "; is the cycle stuck or the lock held elsewhere? see the log"
    body.update(status="stale", why=why)
    return 503, body
