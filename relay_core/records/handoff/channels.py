"""How a document reaches an agency: `webhook`, `email` or `redirect`.

Webhook requests carry

    Content-Type: application/json
    X-Relay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    Idempotency-Key: handoff-<reference> | deletion-<reference>

(the Stripe scheme: the timestamp is signed with the body, so a captured request cannot be
replayed later; receivers reject timestamps older than five minutes and de-duplicate by the
Idempotency-Key). A fresh timestamp is signed on each attempt; body and key never change.

What an answer means (decided here, in one place):

    2xx, 409               delivered (409: the agency already holds this Idempotency-Key)
    408, 429, 5xx,         retry later with capped exponential backoff, Retry-After honoured,
    network error          until the agency's `max_attempts`, then `dead`
    any other 4xx          dead at once: resending the same bytes cannot help

A network error after the request went out (a read timeout, the connection dropped before the
answer) may mean the agency has the data: the outcome says `maybe_delivered`, and the deliverer
records the provision at once, keeps retrying with the same Idempotency-Key, and ends
`maybe_delivered` rather than `dead` if no answer ever comes (deliver.py). A connection that
was never made (refused, DNS, connect timeout, TLS) delivered nothing.

Retries are spread over cycles rather than done in-process (no tenacity loop here): the state
lives in the `handoffs` row, so a restart resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from relay_core import __version__
from relay_core.config import Agency, Config
from relay_core.contract.times import parse_retry_after
from relay_core.errors import (
    FatalError,
    PermanentMailError,
    RetriableError,
    SignatureError,
    TemplateError,
)
from relay_core.inbound import same_token
from relay_core.mail.message import (
    build_message,
    make_message_id,
    message_id_domain,
    validate_address,
)
from relay_core.mail.transports import Transport
from relay_core.records.consent.disclosure import field_label
from relay_core.records.handoff.payload import DELETION_TYPE, Document
from relay_core.rendering.environment import template_environment
from relay_core.store import Connection, handoffs
from relay_core.store.handoffs import Handoff

SIGNATURE_HEADER = "X-Relay-Signature"
TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 15
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
RETRY_AFTER_CAP = timedelta(hours=24)


# --- signatures ------------------------------------------------------------------------------
def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, header: str | None, body: bytes, *,
                     now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> int:
    """The signed timestamp, or SignatureError. Used by the agency-events endpoint; agencies
    verify our requests the same way (README)."""
    if header is not None and not header.isascii():
        raise SignatureError(f"{SIGNATURE_HEADER} holds characters other than ASCII")
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} is missing or has no timestamp") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("the signature timestamp is outside the allowed five minutes")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(same_token(expected, v) for v in parts.get("v1", [])):
        raise SignatureError("the signature does not match the body")
    return timestamp


def agency_secret(agency: Agency) -> bytes:
    if agency.secret is None:
        raise FatalError(f"agency {agency.id} has no secret")
    return agency.secret.resolve().get_secret_value().encode()


# --- references ------------------------------------------------------------------------------
def reference_for(conn: Connection, handoff: Handoff, channel: str,
                  now: datetime) -> str:
    """The handoff's opaque reference (random, no personal data), made on first use."""
    found = handoffs.reference_of(conn, handoff.id)
    if found:
        return found
    reference = "cr_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
    handoffs.add_reference(conn, handoff, reference, channel, now)
    return reference


def sign_reference(secret: bytes, reference: str) -> str:
    return hmac.new(secret, f"ref.{reference}".encode(), hashlib.sha256).hexdigest()[:32]


def redirect_url(agency: Agency, reference: str, key: bytes) -> str:
    """The agency's form with the reference and its signature (the agency's secret if it has
    one, so it can check the reference came from us; else the instance key)."""
    query = urlencode({"relay_ref": reference, "relay_sig": sign_reference(key, reference)})
    return f"{agency.register_url}{'&' if '?' in agency.register_url else '?'}{query}"


# --- outcomes --------------------------------------------------------------------------------
@dataclass
class Outcome:
    delivered: bool
    retry: bool = False
    error: str = ""
    retry_after: timedelta | None = None
    destination: str = ""
    maybe_delivered: bool = False    # sent, but no answer: the agency may have the data


def may_have_arrived(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the agency before this error. Only a connection
    that was never established is known to have delivered nothing; anything else (a read
    timeout, a dropped connection, an unreadable answer) may have."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError
                  | requests.exceptions.ProxyError | requests.exceptions.InvalidURL):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # Refused, unreachable, name not resolved: the connection was never made.
    return not isinstance(reason, NewConnectionError)


def next_attempt(now: datetime, attempts: int, retry_after: timedelta | None) -> datetime:
    wait = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    if retry_after is not None:
        wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
    return now + wait


def _retry_after(value: str | None) -> timedelta | None:
    seconds = parse_retry_after(value)
    return None if seconds is None else timedelta(seconds=seconds)


def classify(status: int, headers: dict[str, str] | Any) -> Outcome:
    if 200 <= status < 300 or status == 409:
        return Outcome(True)
    error = f"HTTP {status}"   # never the body: an agency may echo the candidate back
    if status in (408, 429) or status >= 500:
        return Outcome(False, retry=True, error=error,
                       retry_after=_retry_after(headers.get("Retry-After")))
    return Outcome(False, retry=False, error=error + " (not retried)")


# --- webhook ---------------------------------------------------------------------------------
def claim_timestamp(conn: Connection, handoff_id: int) -> int:
    """The signature timestamp for the next attempt: now, or one second after the previous
    attempt's if that is not earlier (a restart within the same second). Agencies may refuse a
    signature they have seen as a replay; a retry must never look like one. At most a second
    ahead of the clock, well inside the five minutes' tolerance."""
    last = handoffs.last_signed(conn, handoff_id)
    timestamp = max(int(time.time()), (last or 0) + 1)
    handoffs.set_last_signed(conn, handoff_id, timestamp)
    return timestamp


def post_webhook(agency: Agency, doc: Document, *, timestamp: int, session: Any = None
                 ) -> Outcome:
    body = doc.body
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: sign(agency_secret(agency), body, timestamp),
        "Idempotency-Key": doc.idempotency_key,
        "User-Agent": f"career-relay/{__version__}",
    }
    http = session or requests
    try:
        response = http.post(agency.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS,
                             allow_redirects=False)
    except requests.RequestException as exc:
        maybe = may_have_arrived(exc)
        return Outcome(False, retry=True, destination=agency.url, maybe_delivered=maybe,
                       error=f"network error ({type(exc).__name__})"
                             + ("; it may have arrived" if maybe else ""))
    outcome = classify(response.status_code, response.headers)
    outcome.destination = agency.url
    return outcome


# --- email -----------------------------------------------------------------------------------
# The mail is Japanese first (agencies are Japanese businesses), with English where the
# manifest has it. Templates: templates/agency/{handoff,deletion}.subject.txt and .txt, and
# agency/message.html around the text; a file in mail.templates_dir overrides each one.
MAIL_LANGUAGE = "ja"


def mail_context(doc: Document, agency: Agency, config: Config) -> dict[str, Any]:
    """What templates/agency/*.txt may use: agency.legal_name, reference, provider (legal_name,
    address, representative), manifest (acquisition, acquisition_en, consent_reference),
    company (name, reply_to); for a handoff also candidate (label and lines of each item, in
    the document's order) and report_events_to; for a deletion request, request and
    withdrawn_at ("" when unknown)."""
    data = doc.data
    context: dict[str, Any] = {
        "agency": {"legal_name": agency.legal_name},
        "reference": doc.reference,
        "manifest": data["manifest"],
        "provider": data["manifest"]["provider"],
        "company": {"name": config.company.name, "reply_to": config.company.reply_to},
    }
    if doc.kind == DELETION_TYPE:
        context.update(request=data["request"], withdrawn_at=data["withdrawn_at"] or "")
        return context
    # A multi-line value (the candidate's message) continues on indented lines.
    context["candidate"] = [{"label": field_label(key, MAIL_LANGUAGE),
                             "lines": str(data["candidate"][key]).splitlines() or [""]}
                            for key in data["items"] if key in data["candidate"]]
    context["report_events_to"] = data["report_events_to"]
    return context


def render_mail(doc: Document, agency: Agency, config: Config) -> tuple[str, str, str]:
    """(subject, text, html) of the message to the agency."""
    env = template_environment(config, html_only=False)
    kind = "deletion" if doc.kind == DELETION_TYPE else "handoff"
    context = mail_context(doc, agency, config)
    text = env.render_file(f"agency/{kind}.txt", context)
    return (env.render_file(f"agency/{kind}.subject.txt", context).strip(), text,
            env.render_file("agency/message.html", {"text": text}))


def send_email(agency: Agency, doc: Document, config: Config, transport: Transport,
               now: datetime) -> Outcome:
    """The document as a plain, readable message to the agency's intake (or, for a deletion
    notice from a redirect agency, its deletion contact)."""
    to = agency.email
    if doc.kind == DELETION_TYPE and validate_address(agency.deletion_contact):
        to = agency.deletion_contact
    if validate_address(to) is None:
        return Outcome(False, retry=False, error="no email address to send this to; tell the "
                       "agency yourself and mark it done")
    try:
        subject, text, html = render_mail(doc, agency, config)
    except TemplateError as exc:   # a broken override in mail.templates_dir: fixable, retry
        return Outcome(False, retry=True, error=str(exc)[:300], destination=to)
    message = build_message(
        config, to_addr=to, to_name=agency.legal_name, subject=subject, text=text, html=html,
        message_id=make_message_id(doc.idempotency_key, "agency", message_id_domain(config)),
        date=now)
    try:
        with transport:
            transport.send(message)
    except RetriableError as exc:
        return Outcome(False, retry=True, error=str(exc)[:300], destination=to)
    except PermanentMailError as exc:
        return Outcome(False, retry=False, error=f"the mail server refused it ({exc.code})",
                       destination=to)
    return Outcome(True, destination=to)
