"""ATS webhook receiver: `POST /webhooks/<type>/<source name>`.

The connector verifies the signature against the raw body and translates; this module only
enforces size, de-duplicates redeliveries and stores the outcome before answering 200, so an
acknowledged delivery is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from relay_core.cycle.ingest import cancel_pending, ingest
from relay_core.errors import AuthError, FatalError, RetriableError, SignatureError
from relay_core.store import utcnow
from relay_core.web.bodies import documented
from relay_core.web.deps import AppState, state

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

router = APIRouter()
log = logging.getLogger("career_relay.webhooks")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, "payload too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "payload too large")
    return body


@router.post("/webhooks/{ats_type}/{source}", openapi_extra=documented(
    dict[str, Any], {"Signature": "Greenhouse: sha256 <hex HMAC-SHA256 of the body>",
                     "Greenhouse-Event-ID": "Greenhouse: the delivery's id"},
    errors={400: "not JSON, nested too deep, or not the ATS's shape",
            401: "signature missing or wrong", 404: "no such webhook source",
            413: "body too large", 503: "the ATS could not be asked; retry"}))
async def receive(ats_type: str, source: str, request: Request) -> JSONResponse:
    app = state(request)
    connector = app.connectors.get(source)
    if connector is None or connector.type != ats_type or not connector.receives_webhooks:
        raise HTTPException(404, "no such webhook source")
    body = await read_body(request, app.config.web.max_body_bytes)
    # Verification may call the ATS (Lever sends no data) and storing touches the database:
    # both block, so they run in the thread pool and never stall other deliveries.
    return await run_in_threadpool(handle, app, connector, request.headers, body)


def handle(app: AppState, connector: Connector, headers: Mapping[str, str],
           body: bytes) -> JSONResponse:
    source = connector.name
    try:
        result = connector.parse_webhook(headers, body)
    except SignatureError as exc:
        # Never log the body: it holds personal data and may be an attacker's probe.
        log.warning("webhook %s: signature refused (%s)", source, exc)
        raise HTTPException(401, "signature verification failed") from None
    except (RetriableError, AuthError) as exc:
        # The ATS retries a failed delivery; a 503 asks it to.
        log.warning("webhook %s: could not complete, ATS asked to retry (%s)", source, exc)
        raise HTTPException(503, "temporarily unable to process; please retry") from None
    except FatalError as exc:
        log.warning("webhook %s: unusable delivery (%s)", source, exc)
        raise HTTPException(400, str(exc)) from None
    if result.reply is not None and not result.events and not result.unrejected:
        return JSONResponse(result.reply)
    store = app.store
    with store.begin() as conn:
        if result.event_id and not store.record_inbound(conn, source, result.event_id,
                                                        result.kind):
            return JSONResponse({"status": "duplicate"})
        report = ingest(store, app.config, result.events, now=utcnow(),
                        actor=f"webhook:{source}", conn=conn)
        cancelled = cancel_pending(store, source, result.unrejected,
                                   "un-rejected in the ATS (webhook)", f"webhook:{source}", conn)
    return JSONResponse({"status": "stored", "new_cases": report.detected,
                         "cancelled": cancelled})
