"""Console pages about cases: search, one case, its email, the actions, the approval queue.

Approve, hold and cancel call cycle/approval.py, exactly as `career-relay approve`/`cancel`
do; Resend calls cycle/recovery.py's `resend_cases`, as `career-relay resend` does, and the
page offers it only where that function's own check (`resend_check`) allows. The store audits
each transition with the actor `admin:<name>`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from email import message_from_bytes, policy
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from relay_core.cycle import approval
from relay_core.cycle.outbox import CASE_KINDS
from relay_core.cycle.preview import preview_case_mail
from relay_core.cycle.recovery import resend_cases, resend_check
from relay_core.errors import ConfigError, RelayError
from relay_core.models import CASE_ID_MAX, CaseState
from relay_core.records.consent.records import consent_for_case, relay_status
from relay_core.store import consents, utcnow
from relay_core.store.console import (
    SEARCH_SCAN,
    CaseDetail,
    case_detail,
    held_cases,
    search_cases,
    sources_with_cases,
)
from relay_core.web.admin import auth
from relay_core.web.admin.console import ConsoleWeb, console
from relay_core.web.admin.i18n import MESSAGES

router = APIRouter(prefix="/admin")
PAGE_SIZE = 50
STATES = [s.value for s in CaseState]
# The mail frame shows the HTML part only: no script, no fetches, styles inline, in a sandbox.
# A case id the database can hold (models.CASE_ID_MAX): a larger one in a URL is a 422, where
# SQLite and PostgreSQL would fail with a 500.
CaseId = Annotated[int, Path(ge=1, le=CASE_ID_MAX)]
FRAME_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
             "frame-ancestors 'self'; sandbox")


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/cases")
def cases(request: Request, q: str = "", state: str = "", source: str = "", since: str = "",
          until: str = "", page: int = 1) -> Response:
    web = console(request)
    session = auth.require_session(web, request)
    tz = web.config.company.tz
    start, end = _day(since), _day(until)
    page = max(1, min(page, 10_000))
    with web.store.engine.connect() as conn:
        found = search_cases(
            conn, text=q[:200], state=state if state in STATES else "", source=source[:64],
            since=datetime.combine(start, time(), tz) if start else None,
            until=datetime.combine(end, time(), tz) + timedelta(days=1) if end else None,
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        sources = sorted({*sources_with_cases(conn), *(s.name for s in web.config.sources)})
    pages = max(1, -(-found.total // PAGE_SIZE))
    filters = {"q": q, "state": state, "source": source, "since": since, "until": until}
    return web.page(request, "cases.html", {
        "found": found, "filters": filters, "states": STATES, "sources": sources,
        "page": page, "pages": pages,
        "previous_url": web.url("/cases", **filters, page=page - 1) if page > 1 else "",
        "next_url": web.url("/cases", **filters, page=page + 1) if page < pages else "",
        "limit": SEARCH_SCAN}, admin=session, active="cases")


# --- one case --------------------------------------------------------------------------------
def _parse(data: bytes) -> dict[str, Any]:
    msg = message_from_bytes(data, policy=policy.default)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return {"headers": [(k, str(msg[k])) for k in ("From", "To", "Reply-To", "Subject", "Date",
                                                   "Message-ID") if msg[k] is not None],
            "subject": str(msg["Subject"] or ""),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else ""}


def _mask(web: ConsoleWeb, value: str) -> str:
    """The candidate's personal links (consent, withdrawal) blanked: only they may use them."""
    base = re.escape(web.config.relay.public_base_url)
    return re.sub(base + r"/([rw])/[A-Za-z0-9_\-.]+", web.config.relay.public_base_url
                  + r"/\1/••••••", value)


def mail_view(web: ConsoleWeb, detail: CaseDetail) -> dict[str, Any]:
    """The case's email and where it comes from: the stored bytes while it is queued, a
    rendering for a case not sent yet (or sent: the bytes are not kept after delivery)."""
    case = detail.case
    stored = [o for o in detail.outbox if o["kind"] in CASE_KINDS and o["message"]]
    if stored:
        parsed = _parse(stored[-1]["message"])
        parsed["text"], parsed["html"] = _mask(web, parsed["text"]), _mask(web, parsed["html"])
        return {"source": "stored", **parsed}
    if case.state == CaseState.SKIPPED:
        return {"source": "none"}
    try:
        data = preview_case_mail(web.config, case, renderer=web.emails)
    except (RelayError, ConfigError) as exc:
        return {"source": "error", "error": str(exc)}
    sent = case.state == CaseState.SENT
    return {"source": "rerendered" if sent else "preview", **_parse(data)}


def _load(web: ConsoleWeb, case_id: int) -> tuple[CaseDetail, dict[str, Any]] | None:
    with web.store.engine.connect() as conn:
        detail = case_detail(conn, case_id)
        if detail is None:
            return None
        consent = consent_for_case(conn, case_id)
        extra = {"consent": consent, "relay_status": relay_status(conn, case_id).value,
                 "preferences": None, "resend": resend_check(conn, case_id)}
        if consent is not None:
            extra["preferences"] = consents.preferences(conn, consent.id)
    return detail, extra


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: CaseId, done: str = "", n: int = 0) -> Response:
    web = console(request)
    session = auth.require_session(web, request)
    return _case_response(web, request, session, case_id, done=done, n=n)


def why_not(words: dict[str, str], code: str, detail: str = "") -> str:
    """A refused resend in the console's language (`resend_check`'s code and the state it
    names); the CLI prints the check's English text."""
    state = words.get(f"state_{detail}", detail)
    return words[f"resend_no_{code}"].format(state=state)


def _case_response(web: ConsoleWeb, request: Request, session: Any, case_id: int, *,
                   done: str = "", n: int = 0, refused: tuple[str, str] | None = None,
                   status: int = 200) -> Response:
    loaded = _load(web, case_id)
    if loaded is None:
        return _not_found(web, request, session)
    detail, extra = loaded
    state = detail.case.state
    resend = extra["resend"]
    words = MESSAGES[web.language(request)]
    return web.page(request, "case.html", {
        "detail": detail, "case": detail.case, **extra, "mail": mail_view(web, detail),
        "others": [o for o in detail.outbox if o["kind"] not in CASE_KINDS],
        "can_approve": state == CaseState.HELD,
        "can_hold": state == CaseState.SCHEDULED,
        "can_cancel": state in (CaseState.HELD, CaseState.SCHEDULED),
        "can_resend": not resend.why,
        # why an ambiguous or failed case's email cannot go again (the other states say it)
        "no_resend": why_not(words, resend.code, resend.detail)
        if resend.why and state in (CaseState.AMBIGUOUS, CaseState.FAILED) else "",
        "refused": why_not(words, *refused) if refused else "",
        "done": done, "n": n, "agency_names": {a.id: a.legal_name for a in web.config.agencies},
        "frame": web.url(f"/cases/{case_id}/mail.html"),
    }, status=status, admin=session, active="cases")


@router.get("/cases/{case_id}/mail.html")
def case_mail_html(request: Request, case_id: CaseId) -> Response:
    web = console(request)
    auth.require_session(web, request)
    loaded = _load(web, case_id)
    html = mail_view(web, loaded[0]).get("html", "") if loaded else ""
    return HTMLResponse(html or "<!DOCTYPE html><p>—</p>", status_code=200 if loaded else 404,
                        headers={"content-security-policy": FRAME_CSP,
                                 "x-frame-options": "SAMEORIGIN"})


def _not_found(web: ConsoleWeb, request: Request, session: Any) -> Response:
    words = MESSAGES[web.language(request)]
    return web.page(request, "message.html", {"title": words["not_found"], "text": "",
                                              "link": web.url("/cases"),
                                              "link_text": words["back_to_cases"]},
                    status=404, admin=session)


# --- actions ---------------------------------------------------------------------------------
def _reason(form: Any, default: str, field: str = "reason") -> str:
    value = " ".join(str(form.get(field, "")).split())[:300]
    return value or default


# Declared before the generic action route, which would otherwise take /resend.
@router.post("/cases/{case_id}/resend")
async def case_resend(request: Request, case_id: CaseId) -> Response:
    """Re-queue an ambiguous or given-up email as built (same bytes and Message-ID); a refusal
    shows the page again with `resend_cases`' reason instead of a silent "nothing"."""
    web = console(request)
    session, form = await auth.require_post(web, request)
    result = await run_in_threadpool(resend_cases, web.store, [case_id],
                                     actor=auth.actor(session.account), now=utcnow(),
                                     note=_reason(form, "", "note"))
    if case_id in result.resent:
        return RedirectResponse(web.url(f"/cases/{case_id}", done="resent", n=1),
                                status_code=303)
    return _case_response(web, request, session, case_id, refused=result.codes[case_id],
                          status=409)


@router.post("/cases/{case_id}/{action}")
async def case_action(request: Request, case_id: CaseId, action: str) -> Response:
    web = console(request)
    session, form = await auth.require_post(web, request)
    actor = auth.actor(session.account)
    if action == "approve":
        changed = await run_in_threadpool(approval.approve, web.store, [case_id], actor)
        done = "approved"
    elif action == "hold":
        changed = await run_in_threadpool(approval.hold, web.store, [case_id], actor,
                                          _reason(form, "held for review"))
        done = "held"
    elif action == "cancel":
        changed = await run_in_threadpool(approval.cancel, web.store, [case_id], actor,
                                          _reason(form, "cancelled by HR"))
        done = "cancelled"
    else:
        return Response(status_code=404)
    return RedirectResponse(web.url(f"/cases/{case_id}", done=done if changed else "nothing",
                                    n=len(changed)), status_code=303)


# --- the approval queue ----------------------------------------------------------------------
@router.get("/queue")
def queue(request: Request, done: str = "", n: int = 0) -> Response:
    web = console(request)
    session = auth.require_session(web, request)
    with web.store.engine.connect() as conn:
        held = held_cases(conn)
        details = {row.id: case_detail(conn, row.id) for row in held}
    items = [{"row": row, "mail": mail_view(web, details[row.id])} for row in held]
    return web.page(request, "queue.html", {"items": items, "done": done, "n": n},
                    admin=session, active="queue")


@router.post("/queue")
async def queue_action(request: Request) -> Response:
    web = console(request)
    session, form = await auth.require_post(web, request)
    # ASCII digits only, and few: "²".isdigit() is True, but int("²") raises.
    ids = sorted({int(v) for v in form.getlist("case")
                  if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 18})
    actor = auth.actor(session.account)
    action = form.get("action")
    if action == "approve" and ids:
        changed = await run_in_threadpool(approval.approve, web.store, ids, actor)
        done = "approved"
    elif action == "cancel" and ids:
        changed = await run_in_threadpool(approval.cancel, web.store, ids, actor,
                                          _reason(form, "cancelled by HR"))
        done = "cancelled"
    else:
        changed, done = [], "nothing"
    return RedirectResponse(web.url("/queue", done=done if changed else "nothing",
                                    n=len(changed)), status_code=303)
