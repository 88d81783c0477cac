"""ATS webhook receiver: `POST /webhooks/<type>/<source name>`.

The ack path only: enforce the size, let the connector verify the signature against the raw
body (an HMAC, no network), and append the verified delivery to the inbox through the group
commit (web/inbox.py). The 200 is sent once the row is committed, so an acknowledged delivery
is never lost; what it means (translation, de-duplication, ingest, cancellation) is worked out
after the ack by the processor (cycle/webhooks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from relay_core.errors import AuthError, FatalError, RetriableError, SignatureError
from relay_core.store import inbox, utcnow
from relay_core.web.bodies import documented
from relay_core.web.deps import state

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

router = APIRouter()
log = logging.getLogger("career_relay.webhooks")
# Headers that are never kept with a delivery (the translation reads vendor headers only).
DROPPED_HEADERS = {"cookie", "authorization", "proxy-authorization", "x-forwarded-for"}


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
    verify(connector, request.headers, body)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_HEADERS}
    try:
        await app.inbox_writer.append(inbox.row_values(connector.name, headers, body, utcnow()))
    except Exception as exc:
        log.error("webhook %s: delivery not stored, ATS asked to retry (%s)", source,
                  type(exc).__name__)
        raise HTTPException(503, "temporarily unable to store; please retry") from None
    return JSONResponse({"status": "stored"})


def verify(connector: Connector, headers: Mapping[str, str], body: bytes) -> None:
    """The signature check, then the body's shape (bounded JSON, the connector's model), or
    the HTTP error to send: a delivery the processor could not read is refused now, not
    acknowledged and dropped later."""
    source = connector.name
    try:
        connector.verify_webhook(headers, body)
        connector.checked_body(body)
    except SignatureError as exc:
        # Never log the body: it holds personal data and may be an attacker's probe.
        log.warning("webhook %s: signature refused (%s)", source, exc)
        raise HTTPException(401, "signature verification failed") from None
    except (RetriableError, AuthError) as exc:
        # The ATS retries a failed delivery; a 503 asks it to.
        log.warning("webhook %s: could not verify, ATS asked to retry (%s)", source, exc)
        raise HTTPException(503, "temporarily unable to process; please retry") from None
    except FatalError as exc:
        log.warning("webhook %s: unusable delivery (%s)", source, exc)
        raise HTTPException(400, str(exc)) from None
