"""`POST /agency/<agency id>/events`: registrations and placements reported by an agency.

Signed like our webhooks (X-Relay-Signature, HMAC-SHA256 over timestamp and body with the
agency's shared secret, five minutes' tolerance). The body is one event or {"events": [...]}
(docs/agency-handoff.schema.json). A batch is all or nothing: one refused event (unknown
reference, bad type) refuses the batch with a message naming it, so the agency fixes and resends;
resending accepted events is harmless (idempotent by event id).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from relay_core.errors import EventRefused, SignatureError
from relay_core.inbound import BadInput, describe_errors, load_json
from relay_core.records.handoff.channels import SIGNATURE_HEADER, agency_secret, verify_signature
from relay_core.records.handoff.gate import agency_by_id
from relay_core.records.ledger import event_from_json, record_event
from relay_core.store import utcnow
from relay_core.web.bodies import documented
from relay_core.web.deps import AppState, state
from relay_core.web.webhooks import read_body

router = APIRouter()
log = logging.getLogger("career_relay.agency")
MAX_EVENTS = 500


class _Refused(Exception):
    def __init__(self, message: str):
        self.message = message


class EventIn(BaseModel):
    """One event as docs/agency-handoff.schema.json describes it; the ledger checks the
    values (known type, known reference, readable time)."""
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    reference: str = Field(min_length=1, max_length=200)
    occurred_at: str | None = Field(None, max_length=100)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a verified body; HTTPException 400 when it is not JSON or nested too
    deep, _Refused (422, like the ledger's refusals) when it is not the documented shape."""
    try:
        data = load_json(body)
    except BadInput as exc:
        raise HTTPException(400, str(exc)) from None
    model = EventBatch if isinstance(data, dict) and "events" in data else EventIn
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise _Refused(f"send one event or {{\"events\": [...]}} with 1 to {MAX_EVENTS} "
                       f"events: {describe_errors(exc)}") from None
    events = parsed.events if isinstance(parsed, EventBatch) else [parsed]
    return [e.model_dump(exclude_none=True) for e in events]


def _store_events(app: AppState, agency_id: str, items: list[Any]) -> dict[str, Any]:
    events = [event_from_json(item, app.config) for item in items]
    now = utcnow()
    try:
        with app.store.begin() as conn:
            results = [record_event(app.store, conn, app.config, agency_id, e, via="api",
                                    now=now) for e in events]
    except EventRefused as exc:
        raise _Refused(str(exc)) from None
    return {"accepted": sum(r.status == "stored" for r in results),
            "duplicates": sum(r.status == "duplicate" for r in results),
            "results": [{"id": r.event_id, "status": r.status} for r in results]}


@router.post("/agency/{agency_id}/events", openapi_extra=documented(
    EventBatch | EventIn, {SIGNATURE_HEADER: "t=<unix seconds>,v1=<hex HMAC-SHA256>"},
    errors={400: "not JSON, or nested too deep", 401: "signature missing or wrong",
            404: "no such agency", 413: "body too large", 422: "not the documented shape"}))
async def receive_events(agency_id: str, request: Request) -> JSONResponse:
    app = state(request)
    agency = agency_by_id(app.config, agency_id)
    if agency is None or agency.secret is None:
        raise HTTPException(404, "no such agency")
    body = await read_body(request, app.config.web.max_body_bytes)
    try:
        secret = await run_in_threadpool(agency_secret, agency)
        verify_signature(secret, request.headers.get(SIGNATURE_HEADER), body)
    except SignatureError as exc:
        log.warning("agency %s: events refused (%s)", agency_id, exc)
        raise HTTPException(401, "signature verification failed") from None
    try:
        items = parse_events(body)
        result = await run_in_threadpool(_store_events, app, agency_id, items)
    except (_Refused, EventRefused) as exc:
        message = getattr(exc, "message", str(exc))
        log.info("agency %s: events refused: %s", agency_id, message)
        return JSONResponse({"error": message}, status_code=422)
    return JSONResponse(result)
