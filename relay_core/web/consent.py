"""The relay pages: invitation link → session → consent page → consent / decline / withdrawal.

    GET  /r/{token}          consent link: verified, exchanged for a session cookie, 303 → /relay
    GET  /w/{token}          withdrawal link from the confirmation email, same exchange
    GET  /u/{token}          opt-out link of an invite_only email, same exchange
    GET  /relay              the page for the session's case (consent form or its outcome)
    POST /relay/consent      record consent to the ticked agencies (CSRF + Origin checked)
    POST /relay/decline      record "no thanks"
    POST /relay/withdraw     withdraw a consent (works after the invitation expired)
    POST /relay/unsubscribe  stop further mail to this address (records/consent/optout.py)
    GET  /relay/static/relay.css

GET and HEAD never write to the store and never use up a token: mail scanners open every link
(reference/privacy_email.md sec. 3.9). Every URL this module writes starts with
`relay.public_base_url`; nothing is built from the request's Host header.

Origin check: a browser's form POST carries `Origin`. Because these pages send
`Referrer-Policy: no-referrer`, the Fetch standard makes that header `null` for our own forms,
so `null` is accepted only together with `Sec-Fetch-Site: same-origin` (or from a browser too old
to send Fetch metadata); any other origin, or none, is refused. The CSRF token bound to the
SameSite=Strict session cookie is the primary defence either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from relay_core.config import Config
from relay_core.errors import FatalError, RelayError, TokenError, TokenWrongPurpose
from relay_core.models import RelayCase
from relay_core.records.agencies import offered_agencies
from relay_core.records.consent import optout, tokens
from relay_core.records.consent.confirmation import prepare_confirmation, queue_prepared
from relay_core.records.consent.disclosure import (
    LANGUAGES,
    PREFERENCE_FIELDS,
    PREFERENCE_LIMITS,
    PageRenderer,
    disclosure_context,
    field_label,
)
from relay_core.records.consent.records import (
    ConsentRefused,
    RelayStatus,
    clean_preferences,
    consent_for_case,
    new_withdraw_token,
    record_consent,
    record_decline,
    withdraw,
)
from relay_core.rendering.emails import Renderer
from relay_core.rendering.environment import format_day, template_folders
from relay_core.store import Connection, Store, consents, utcnow
from relay_core.store.consents import ConsentRecord
from relay_core.store.outbox import QueuedMail
from relay_core.web.deps import AppState, built_once
from relay_core.web.session import COOKIE, MAX_AGE_SECONDS, RelaySession, SessionSigner

router = APIRouter()
log = logging.getLogger("career_relay.consent")

CSP = ("default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
PREFIXES = ("/r/", "/w/", "/u/", "/relay")
MAX_FORM_BYTES = 64 * 1024
STATUS_CODES = {"tampered": 400, "wrong_purpose": 400, "expired": 410, "session": 401,
                "csrf": 403, "origin": 403, "used": 409, "changed": 409, "no_consent": 409,
                "withdrawn": 409, "none": 422, "too_long": 422, "unavailable": 503}


class SecurityHeaders:
    """Pure ASGI middleware: the hygiene headers on every relay response (errors included),
    and a size cap on relay form posts."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in SECURITY_HEADERS}
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if k.lower() not in names] + SECURITY_HEADERS
            await send(message)

        if scope["method"] == "POST":
            # Browsers always declare the length of a form; an undeclared (chunked) body
            # could be unbounded, so it is refused before anything reads it.
            length = dict(scope["headers"]).get(b"content-length")
            if length is None or not length.isdigit():
                await Response("length required", 411)(scope, receive, send_with_headers)
                return
            if int(length) > MAX_FORM_BYTES:
                await Response("payload too large", 413)(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(SecurityHeaders)


@dataclass
class ConsentWeb:
    """What the relay pages keep per app: compiled templates and the session key."""

    config: Config
    store: Store
    pages: PageRenderer
    emails: Renderer
    key: bytes
    signer: SessionSigner
    stylesheet: bytes

    @property
    def base(self) -> str:
        return self.config.relay.public_base_url

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    @property
    def secure(self) -> bool:
        return self.base.startswith("https://")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def cookie_path(self) -> str:
        return (urlsplit(self.base).path.rstrip("/") or "") + "/"


def _web(request: Request) -> ConsentWeb:
    return built_once(request, "consent_web", _build_web)


async def _web_async(request: Request) -> ConsentWeb:
    """`_web` for the async pages: the first build (a store transaction) runs in a thread."""
    web = getattr(request.app.state, "consent_web", None)
    return web if web is not None else await run_in_threadpool(_web, request)


def _build_web(app: AppState) -> ConsentWeb:
    with app.store.begin() as conn:
        key = tokens.signing_key(app.config, conn)
    return ConsentWeb(app.config, app.store, PageRenderer(app.config), Renderer(app.config), key,
                      SessionSigner(key), _stylesheet(app.config))


def _stylesheet(config: Config) -> bytes:
    candidates = [folder / "pages" / "relay.css" for folder in template_folders(config)]
    return next(p.read_bytes() for p in candidates if p.is_file())


# --- rendering -------------------------------------------------------------------------------
def _lang(value: str | None, fallback: str) -> str:
    if value in LANGUAGES:
        return value
    return fallback if fallback in LANGUAGES else "ja"


def _base_context(web: ConsentWeb, language: str, switch: bool = True) -> dict[str, Any]:
    other = "en" if language == "ja" else "ja"
    return {
        "company_name": web.config.company.name,
        "other_language": other,
        "urls": {
            "stylesheet": web.url("/relay/static/relay.css"),
            "switch": web.url(f"/relay?lang={other}") if switch else "",
            "consent": web.url("/relay/consent"),
            "decline": web.url("/relay/decline"),
            "withdraw": web.url("/relay/withdraw"),
            "unsubscribe": web.url("/relay/unsubscribe"),
            "privacy": web.config.company.privacy_policy_url,
        },
    }


def _page(web: ConsentWeb, name: str, language: str, status: int = 200,
          **context: Any) -> HTMLResponse:
    body = web.pages.render(name, language, {**_base_context(web, language,
                                                             context.pop("switch", True)),
                                             **context})
    return HTMLResponse(body, status_code=status)


def _error(web: ConsentWeb, kind: str, language: str | None = None) -> HTMLResponse:
    lang = _lang(language, web.config.company.locale)
    return _page(web, "error", lang, STATUS_CODES.get(kind, 400), kind=kind, switch=False)


# --- state of a session ----------------------------------------------------------------------
@dataclass
class View:
    invitation: tokens.Invitation
    case: RelayCase
    status: RelayStatus


def _load(conn: Connection, session: RelaySession) -> View | None:
    found = consents.invitation_view(conn, session.invitation_id)
    if found is None or found[0].purpose != session.purpose:
        return None
    return View(*found)


def _enter(web: ConsentWeb, invitation: tokens.Invitation, lang: str | None) -> Response:
    target = "/relay" + (f"?lang={lang}" if lang in LANGUAGES else "")
    response = RedirectResponse(web.url(target), status_code=303)
    response.set_cookie(COOKIE, web.signer.issue(invitation.id, invitation.purpose),
                        max_age=MAX_AGE_SECONDS, path=web.cookie_path, httponly=True,
                        secure=web.secure, samesite="strict")
    return response


async def _open_link(request: Request, token: str, purpose: str, lang: str | None
                     ) -> Response:
    # Async, on the event loop: a few indexed reads on a connection (WAL: never waiting on a
    # writer) cost less than the hop to a worker thread and back.
    web = await _web_async(request)
    now = utcnow()
    with web.store.engine.connect() as conn:   # read only: a scanner's GET changes nothing
        try:
            invitation = tokens.verify(conn, web.key, token, purpose, now, allow_expired=True)
        except TokenWrongPurpose:
            return _error(web, "wrong_purpose", lang)
        except TokenError:
            return _error(web, "tampered", lang)
        status, language = consents.status_and_language(conn, invitation.case_id)
    # A consent link past its expiry still leads to the page of a consent given with it, so the
    # candidate can withdraw from the same link; a withdrawal link never expires in practice.
    if (purpose == "consent" and invitation.expires_at <= now
            and status not in (RelayStatus.CONSENTED, RelayStatus.WITHDRAWN)):
        return _error(web, "expired", lang or language)
    return _enter(web, invitation, lang)


@router.api_route("/r/{token}", methods=["GET", "HEAD"])
async def open_invitation(token: str, request: Request, lang: str | None = None) -> Response:
    return await _open_link(request, token, "consent", lang)


@router.api_route("/w/{token}", methods=["GET", "HEAD"])
async def open_withdrawal(token: str, request: Request, lang: str | None = None) -> Response:
    return await _open_link(request, token, "withdraw", lang)


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
async def open_unsubscribe(token: str, request: Request, lang: str | None = None) -> Response:
    return await _open_link(request, token, optout.PURPOSE, lang)


@router.api_route("/relay/static/relay.css", methods=["GET", "HEAD"])
async def stylesheet(request: Request) -> Response:
    return Response((await _web_async(request)).stylesheet, media_type="text/css")


@router.api_route("/relay", methods=["GET", "HEAD"])
async def relay_page(request: Request, lang: str | None = None, s: str | None = None) -> Response:
    web = await _web_async(request)
    session = web.signer.read(request.cookies.get(COOKIE))
    if session is None:
        if s is None:
            # A SameSite=Strict cookie is withheld when the redirect chain began on another
            # site (a webmail link); one same-site hop from this page brings it along.
            again = web.url("/relay?s=1" + (f"&lang={lang}" if lang in LANGUAGES else ""))
            return _page(web, "continue", _lang(lang, web.config.company.locale),
                         next_url=again, switch=False)
        return _error(web, "session", lang)
    with web.store.engine.connect() as conn:
        view = _load(conn, session)
        # Only a decided case has a consent record to show (an open one has none to read).
        consent = (consent_for_case(conn, view.case.id)
                   if view and view.status not in (RelayStatus.OPEN, RelayStatus.EXPIRED)
                   else None)
    if view is None:
        return _error(web, "session", lang)
    language = _lang(lang, view.case.language)
    if view.status == RelayStatus.CONSENTED:
        # The redirect agencies' form links are made (written) on first view: a transaction,
        # which may wait for the write lock, so not on the event loop.
        return await run_in_threadpool(_render_view, web, session, view, consent, language)
    return _render_view(web, session, view, consent, language)


def _render_view(web: ConsentWeb, session: RelaySession, view: View,
                 consent: ConsentRecord | None, language: str, *, error: str = "",
                 prefs: dict[str, str] | None = None, status_code: int = 200) -> Response:
    csrf = web.signer.csrf_token(session)
    if session.purpose == optout.PURPOSE:
        return _page(web, "unsubscribe", language, status=status_code, csrf=csrf,
                     done=view.invitation.used_at is not None)
    if view.status in (RelayStatus.CONSENTED, RelayStatus.WITHDRAWN, RelayStatus.DECLINED):
        agencies = _chosen(web, consent, language)
        if view.status == RelayStatus.CONSENTED:
            # Redirect agencies receive nothing from us: the candidate registers on their form.
            from relay_core.records.handoff.deliver import redirect_links

            forms = dict(redirect_links(web.store, web.config, view.case.id))
            for agency in agencies:
                agency["register_url"] = forms.get(agency["legal_name"], "")
                agency["redirect"] = agency["redirect"] or bool(agency["register_url"])
        return _page(web, "status", language, status=status_code, status_name=view.status.value,
                     agencies=agencies, csrf=csrf,
                     consented_at=format_day(consent.consented_at.astimezone(
                         web.config.company.tz), language) if consent else "")
    if session.purpose == "withdraw":
        return _error(web, "no_consent", language)
    if view.status == RelayStatus.EXPIRED or view.invitation.expires_at <= utcnow():
        return _error(web, "expired", language)
    agencies = offered_agencies(web.config)
    text = web.pages.consent_text(language, agencies)
    offered = disclosure_context(web.config, language, agencies)["agencies"]
    expires = format_day(view.invitation.expires_at.astimezone(web.config.company.tz), language)
    return _page(web, "consent", language, status=status_code, disclosure=text.html,
                 text_sha256=text.sha256, agencies=offered, csrf=csrf, error=error,
                 prefs=prefs or dict.fromkeys(PREFERENCE_FIELDS, ""), expires=expires,
                 limits=PREFERENCE_LIMITS)


def _chosen(web: ConsentWeb, consent: ConsentRecord | None, language: str
            ) -> list[dict[str, Any]]:
    """The agencies of a consent as it was given (legal name and items from the consent
    record), with the deletion contact configured now."""
    if not consent:
        return []
    configured = {a.id: a for a in web.config.agencies}
    chosen = []
    for a in consent.agencies:
        agency = configured.get(a.agency_id)
        chosen.append({"legal_name": a.legal_name,
                       "redirect": agency is not None and agency.channel == "redirect",
                       "deletion_contact": agency.deletion_contact if agency else "",
                       "data_items": [field_label(f, language) for f in a.fields]})
    return chosen


# --- posts -----------------------------------------------------------------------------------
def _origin_ok(web: ConsentWeb, request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin != "null":
        return origin.lower().rstrip("/") == web.origin
    fetch_site = request.headers.get("sec-fetch-site")
    return fetch_site is None or fetch_site == "same-origin"


def _guard(request: Request, csrf: str, lang: str | None
           ) -> tuple[ConsentWeb, RelaySession | None, Response | None]:
    web = _web(request)
    if not _origin_ok(web, request):
        log.warning("relay POST %s refused: foreign or missing Origin", request.url.path)
        return web, None, _error(web, "origin", lang)
    session = web.signer.read(request.cookies.get(COOKIE))
    if session is None:
        return web, None, _error(web, "session", lang)
    if not web.signer.csrf_ok(session, csrf):
        log.warning("relay POST %s refused: CSRF token missing or wrong", request.url.path)
        return web, None, _error(web, "csrf", lang)
    return web, session, None


def _after_post(web: ConsentWeb, language: str) -> Response:
    return RedirectResponse(web.url(f"/relay?lang={language}"), status_code=303)


@router.post("/relay/consent")
def post_consent(request: Request, csrf: str = Form(""), text_sha256: str = Form(""),
                 lang: str = Form(""), agency: list[str] = Form([]),  # noqa: B008
                 desired_role: str = Form(""), location: str = Form(""),
                 start_period: str = Form(""), message: str = Form("")) -> Response:
    web, session, refused = _guard(request, csrf, lang)
    if refused is not None:
        return refused
    form = {"desired_role": desired_role, "location": location, "start_period": start_period,
            "message": message}
    now = utcnow()
    prefs = None
    try:
        # Too long is refused, never cut: the relay does not edit what the candidate wrote.
        prefs = clean_preferences(form)
        # Everything that needs no write lock happens before the transaction: reading the
        # session's invitation and case, the text check, and building the confirmation email
        # (most of this request's work). The transaction then only claims the invitation
        # (single use, atomic) and inserts; the invitation's case, purpose and expiry and the
        # case's address are not changed by anything that could race it.
        with web.store.connect() as conn:
            view = _load(conn, session)
        if view is None:
            raise ConsentRefused("session", "the session names no invitation")
        language = _lang(lang, view.case.language)
        offered = offered_agencies(web.config)
        text = web.pages.consent_text(language, offered)
        if text_sha256 != text.sha256:
            # The text changed (a config reload, an agency no longer offered) between
            # showing and ticking: what the candidate read is not what we would record.
            # Show the current text again.
            raise ConsentRefused("changed", "the consent text changed since it was shown")
        confirmation = _prepare_confirmation(web, view, offered, agency, now)
        with web.store.begin() as conn:
            consent_id = record_consent(web.store, conn, web.config, invitation=view.invitation,
                                        case=view.case, agency_ids=agency, text=text,
                                        preferences=prefs, now=now, offered=offered)
            _confirm(web, conn, view.case, consent_id, confirmation, now)
    except ConsentRefused as exc:
        return _refused(web, session, exc, lang, prefs or {
            k: str(v)[:PREFERENCE_LIMITS[k]] for k, v in form.items()})
    return _after_post(web, language)


@dataclass
class Confirmation:
    """The confirmation email built before the consent's transaction, and the withdrawal
    token row that makes its link valid (inserted in that transaction)."""

    mail: QueuedMail | None
    token_row: dict[str, Any]
    problem: str = ""

    def __repr__(self) -> str:
        return f"Confirmation(built={self.mail is not None}, {self.problem or 'ok'})"


def _prepare_confirmation(web: ConsentWeb, view: View, offered: list[Any], ticked: list[str],
                          now: datetime) -> Confirmation | None:
    """Built for the agencies as `record_consent` will record them (sorted ids, the offered
    legal names); None when the choice will be refused anyway."""
    by_id = {a.id: a for a in offered}
    chosen = sorted(set(ticked))
    if not chosen or any(a not in by_id for a in chosen):
        return None
    token, row = new_withdraw_token(web.key, view.case.id, now)
    try:
        mail = prepare_confirmation(web.config, web.emails, view.case,
                                    [by_id[a].legal_name for a in chosen],
                                    web.url(f"/w/{token}"), now)
    except (FatalError, RelayError) as exc:
        return Confirmation(None, row, type(exc).__name__)
    return Confirmation(mail, row)


def _confirm(web: ConsentWeb, conn: Connection, case: RelayCase, consent_id: int,
             confirmation: Confirmation | None, now: datetime) -> None:
    queued = False
    if confirmation is not None and confirmation.mail is not None:
        try:
            with conn.begin_nested():
                consents.add_invitation(conn, **confirmation.token_row)
                queue_prepared(conn, confirmation.mail, now)
            queued = True
        except (FatalError, RelayError) as exc:
            # The consent stands; the candidate can still withdraw from the invitation link.
            confirmation.problem = type(exc).__name__
    if confirmation is not None and confirmation.problem:
        log.warning("case %s: confirmation email not queued (%s)", case.id,
                    confirmation.problem)
    if not queued:
        web.store.audit(conn, case.id, "consent", "confirmation_missing",
                        reason=f"consent {consent_id}: no confirmation email could be queued")


def _refused(web: ConsentWeb, session: RelaySession, exc: ConsentRefused, lang: str | None,
             prefs: dict[str, str] | None = None) -> Response:
    if exc.kind in ("none", "changed", "too_long"):
        with web.store.engine.connect() as conn:
            view = _load(conn, session)
            consent = consent_for_case(conn, view.case.id) if view else None
        if view is not None:
            return _render_view(web, session, view, consent,
                                _lang(lang, view.case.language), error=exc.kind,
                                prefs=prefs, status_code=STATUS_CODES[exc.kind])
    return _error(web, exc.kind, lang)


@router.post("/relay/decline")
def post_decline(request: Request, csrf: str = Form(""), lang: str = Form("")) -> Response:
    web, session, refused = _guard(request, csrf, lang)
    if refused is not None:
        return refused
    try:
        with web.store.begin() as conn:
            view = _load(conn, session)
            if view is None:
                raise ConsentRefused("session", "the session names no invitation")
            record_decline(web.store, conn, invitation=view.invitation, case=view.case)
    except ConsentRefused as exc:
        return _refused(web, session, exc, lang)
    return _after_post(web, _lang(lang, view.case.language))


@router.post("/relay/withdraw")
def post_withdraw(request: Request, csrf: str = Form(""), lang: str = Form("")) -> Response:
    web, session, refused = _guard(request, csrf, lang)
    if refused is not None:
        return refused
    now = utcnow()
    try:
        with web.store.begin() as conn:
            view = _load(conn, session)
            if view is None:
                raise ConsentRefused("session", "the session names no invitation")
            withdraw(web.store, conn, view.case.id, now=now)
            if view.invitation.purpose == "withdraw":
                tokens.use(conn, view.invitation.id, now)
    except ConsentRefused as exc:
        return _refused(web, session, exc, lang)
    return _after_post(web, _lang(lang, view.case.language))


@router.post("/relay/unsubscribe")
def post_unsubscribe(request: Request, csrf: str = Form(""), lang: str = Form("")) -> Response:
    web, session, refused = _guard(request, csrf, lang)
    if refused is not None:
        return refused
    if session.purpose != optout.PURPOSE:
        return _error(web, "tampered", lang)
    with web.store.begin() as conn:
        view = _load(conn, session)
        if view is None:
            return _error(web, "session", lang)
        if view.invitation.used_at is None:
            optout.unsubscribe(web.store, conn, view.invitation, view.case)
    return _after_post(web, _lang(lang, view.case.language))
