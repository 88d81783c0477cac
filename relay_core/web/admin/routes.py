"""Console pages that are not about one case: sign-in and out (password, OpenID Connect), the
language switch, the dashboard, agencies (with dead-letter retry) and the report."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from relay_core.errors import ConfigError
from relay_core.records.consent.requirements import relay_problems
from relay_core.records.ledger import balances
from relay_core.records.report import build_report, to_csv
from relay_core.rendering.environment import template_folders
from relay_core.store import admin as accounts
from relay_core.store import utcnow
from relay_core.store.console import agency_overview, dashboard_counts, requeue_dead
from relay_core.store.outbox import count_stuck, stuck_cases
from relay_core.store.runs import last_cycle, source_polls
from relay_core.web.admin import auth
from relay_core.web.admin.console import LANG_COOKIE, ConsoleWeb, console
from relay_core.web.admin.i18n import LANGUAGES, MESSAGES
from relay_core.web.admin.oidc import STATE_COOKIE, OidcClient, OidcError
from relay_core.web.deps import state

router = APIRouter(prefix="/admin")
log = logging.getLogger("career_relay.console")
CHART_LEFT, CHART_STEP, CHART_HEIGHT, CHART_BASE = 8, 64, 140, 150   # the monthly columns
STUCK_SHOWN = 20     # per kind on the dashboard; the cases page filtered by state lists all
STATIC = {"admin.css": "text/css; charset=utf-8", "admin.js": "text/javascript; charset=utf-8"}


def safe_next(web: ConsoleWeb, value: str | None) -> str:
    """Only a path inside the console: never another site (no open redirect)."""
    if (value and value.startswith(web.root + "/") and not value.startswith("//")
            and "\\" not in value and "://" not in value):
        return value
    return web.url("/")


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sign-in ---------------------------------------------------------------------------------
def _sign_in_page(web: ConsoleWeb, request: Request, *, error: str = "", status: int = 200,
                  notice: str = "", next_path: str | None = None) -> Response:
    nonce, token = auth.sign_in_token(web, request)
    response = web.page(request, "sign_in.html", {
        "error": error, "notice": notice,
        "next": safe_next(web, next_path or request.query_params.get("next")),
        "oidc": web.config.admin.oidc.enabled, "oidc_label": web.config.admin.oidc.label,
        "form_token": token}, status=status)
    auth.set_sign_in_cookie(web, request, response, nonce)
    return response


def _setup_page(web: ConsoleWeb, request: Request) -> Response:
    return web.page(request, "setup.html", {"oidc": web.config.admin.oidc.enabled})


@router.get("/sign-in")
def sign_in_form(request: Request, out: str = "") -> Response:
    web = console(request)
    if accounts.count_accounts(web.store) == 0:
        return _setup_page(web, request)
    t = MESSAGES[web.language(request)]
    return _sign_in_page(web, request, notice=t["signed_out"] if out else "")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    web = console(request)
    form = await request.form()
    t = MESSAGES[web.language(request)]
    if not auth.sign_in_token_ok(web, request, form.get("form_token")):
        return web.page(request, "message.html", {"title": t["forbidden"],
                                                  "text": t["forbidden_csrf"],
                                                  "link": web.url("/sign-in"),
                                                  "link_text": t["sign_in"]}, status=403)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    account = await run_in_threadpool(auth.check_password, web, name, password[:1024])
    if account is None:
        return _sign_in_page(web, request, error=t["sign_in_failed"], status=401,
                             next_path=str(form.get("next", "")))
    response = see_other(safe_next(web, str(form.get("next", ""))))
    await run_in_threadpool(auth.start_session, web, response, request, account, "password")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    web = console(request)
    session, _ = await auth.require_post(web, request)
    response = see_other(web.url("/sign-in", out="1"))
    await run_in_threadpool(auth.end_session, web, response, request, session)
    return response


@router.get("/language")
def language(request: Request, to: str = "ja", next: str = "") -> Response:
    web = console(request)
    response = see_other(safe_next(web, next))
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, path=web.root + "/",
                            httponly=True, samesite="lax", secure=web.secure(request))
    return response


# --- OpenID Connect --------------------------------------------------------------------------
def _oidc(web: ConsoleWeb, request: Request) -> OidcClient:
    client = getattr(request.app.state, "console_oidc", None)
    if client is None:
        client = OidcClient(web.config.admin.oidc,
                            web.config.relay.public_base_url + "/admin/oidc/callback", web.key)
        request.app.state.console_oidc = client
    return client


@router.get("/oidc/start")
def oidc_start(request: Request, next: str = "") -> Response:
    web = console(request)
    if not web.config.admin.oidc.enabled:
        return see_other(web.url("/sign-in"))
    try:
        url, cookie = _oidc(web, request).start(safe_next(web, next))
    except (OidcError, ConfigError) as exc:
        log.warning("console sign-in through the identity provider: %s", exc)
        t = MESSAGES[web.language(request)]
        return _sign_in_page(web, request, error=t["oidc_failed"], status=502)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(STATE_COOKIE, cookie, max_age=600, path=web.root + "/oidc/",
                        httponly=True, samesite="lax", secure=web.secure(request))
    return response


@router.get("/oidc/callback")
def oidc_callback(request: Request, state: str = "", code: str = "") -> Response:
    web = console(request)
    t = MESSAGES[web.language(request)]
    if not web.config.admin.oidc.enabled:
        return see_other(web.url("/sign-in"))
    try:
        identity, next_path = _oidc(web, request).finish(request.cookies.get(STATE_COOKIE),
                                                         state, code)
    except (OidcError, ConfigError) as exc:
        log.warning("console sign-in through the identity provider refused: %s", exc)
        with web.store.begin() as conn:
            web.store.audit(conn, None, "admin:?", "admin_sign_in_failed",
                            reason=f"identity provider: {exc}"[:500])
        return _sign_in_page(web, request, error=t["oidc_failed"], status=401)
    with web.store.begin() as conn:
        account = accounts.account_by_email(conn, identity.email)
        if account is None:
            web.store.audit(conn, None, "admin:?", "admin_sign_in_failed",
                            reason="identity provider: no console account has this email")
    if account is None:
        return _sign_in_page(web, request, error=t["oidc_no_account"], status=403)
    response = see_other(safe_next(web, next_path))
    response.delete_cookie(STATE_COOKIE, path=web.root + "/oidc/")
    auth.start_session(web, response, request, account, "oidc")
    return response


# --- dashboard -------------------------------------------------------------------------------
@router.get("")
def root(request: Request) -> Response:
    return see_other(console(request).url("/"))


@router.get("/")
def dashboard(request: Request) -> Response:
    web = console(request)
    if accounts.count_accounts(web.store) == 0:
        return _setup_page(web, request)
    session = auth.require_session(web, request)
    now = utcnow()
    local = now.astimezone(web.config.company.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with web.store.engine.connect() as conn:
        counts = dashboard_counts(conn, now=now, end_of_today=midnight)
        cycle = last_cycle(conn)
        polls = source_polls(conn)
        # Emails waiting for a person: ambiguous (may have arrived) and given up.
        stuck = {kind: stuck_cases(conn, kind, limit=STUCK_SHOWN)
                 for kind in ("ambiguous", "gave_up")}
        stuck_total = {kind: count_stuck(conn, kind) if len(rows) == STUCK_SHOWN else len(rows)
                       for kind, rows in stuck.items()}
    connectors = state(request).connectors
    sources = []
    configured = {s.name: s.type for s in web.config.sources}
    for name in [*configured, *(n for n in connectors if n not in configured)]:
        connector = connectors.get(name)
        modes = ([m for m, on in (("poll", connector.polls),
                                  ("webhook", connector.receives_webhooks)) if on]
                 if connector is not None else [])
        poll = polls.get(name)
        sources.append({"name": name, "type": configured.get(name) or connector.type,
                        "enabled": connector is not None, "modes": modes,
                        "polls": connector is not None and connector.polls,
                        "last_success": poll.last_success_at if poll else None,
                        "last_error": poll.last_error if poll else ""})
    relay = web.config.relay
    return web.page(request, "dashboard.html", {
        "counts": counts, "cycle": cycle, "sources": sources, "stuck": stuck,
        "stuck_total": stuck_total,
        "relay_enabled": relay.enabled, "relay_url": relay.public_base_url,
        "relay_problems": relay_problems(web.config) if relay.enabled else [],
        "states": ["detected", "scheduled", "held", "sending", "sent", "ambiguous",
                   "skipped", "cancelled", "failed"],
    }, admin=session, active="dashboard")


# --- agencies --------------------------------------------------------------------------------
@router.get("/agencies")
def agencies(request: Request, done: str = "") -> Response:
    web = console(request)
    session = auth.require_session(web, request)
    with web.store.engine.connect() as conn:
        overview = agency_overview(conn)
        credit = balances(conn)
    ids = [a.id for a in web.config.agencies]
    ids += sorted({*overview["handoffs"], *credit} - set(ids))   # no longer configured
    names = {a.id: a for a in web.config.agencies}
    rows = [{"id": i, "agency": names.get(i), "handoffs": overview["handoffs"].get(i, {}),
             "notices": overview["deletion_notices"].get(i, {}),
             "credits": credit.get(i, {"credits": 0, "yen": 0})} for i in ids]
    return web.page(request, "agencies.html", {
        "agencies": rows, "dead": overview["dead"], "events": overview["events"],
        "done": done}, admin=session, active="agencies")


@router.post("/agencies/retry/{kind}/{row_id}")
async def retry_dead(request: Request, kind: str, row_id: int) -> Response:
    web = console(request)
    session, _ = await auth.require_post(web, request)
    if kind not in ("handoff", "deletion_notice"):
        return Response(status_code=404)

    def requeue() -> bool:
        with web.store.begin() as conn:
            return requeue_dead(web.store, conn, kind, row_id, actor=auth.actor(session.account),
                                now=utcnow())

    changed = await run_in_threadpool(requeue)
    return see_other(web.url("/agencies", done="requeued" if changed else "nothing"))


# --- report ----------------------------------------------------------------------------------
@router.get("/report")
def report(request: Request, format: str = "") -> Response:
    web = console(request)
    session = auth.require_session(web, request)
    built = build_report(web.store, web.config)
    if format == "csv":
        stamp = datetime.now(web.config.company.tz).strftime("%Y%m%d")
        return Response(to_csv(built), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition":
                                 f'attachment; filename="career-relay-report-{stamp}.csv"'})
    return web.page(request, "report.html", {"report": report_view(built.as_dict())},
                    admin=session, active="report")


def report_view(data: dict) -> dict:
    """Bars for the charts: each value with its share of the largest in its group (SVG widths
    are attributes, so the strict CSP needs no inline style)."""
    stages = data["stages"]

    def bars(values: dict[str, int]) -> list[dict]:
        top = max(values.values(), default=0) or 1
        return [{"stage": s, "n": values.get(s, 0),
                 "pct": round(100 * values.get(s, 0) / top, 1)} for s in stages]

    months = list(data["by_month"].items())
    top = max((v["rejected"] for _, v in months), default=0) or 1
    columns = []
    for i, (key, values) in enumerate(months):
        x = CHART_LEFT + i * CHART_STEP
        trio = []
        for j, stage in enumerate(("rejected", "sent", "consented")):
            height = round(CHART_HEIGHT * values[stage] / top, 1)
            trio.append({"stage": stage, "n": values[stage], "x": x + j * 16,
                         "y": round(CHART_BASE - height, 1), "height": height})
        columns.append({"key": key, "label_x": x + 23, "bars": trio})
    agencies = data["by_agency"]
    top_credit = max((abs(v["credits"]) for v in agencies.values()), default=0) or 1
    return {**data, "funnel": bars(data["total"]),
            "months": [{"key": k, "bars": bars(v)} for k, v in data["by_month"].items()],
            "month_chart": {"columns": columns, "base": CHART_BASE,
                            # room for half a year, so one month is not one giant column
                            "width": CHART_LEFT + max(6, len(columns)) * CHART_STEP,
                            "height": CHART_BASE + 24},
            "sources": [{"key": k, "bars": bars(v)} for k, v in data["by_source"].items()],
            "agency_bars": [{"key": k, **v, "pct": round(100 * abs(v["credits"]) / top_credit,
                                                          1)}
                            for k, v in agencies.items()]}


# --- static ----------------------------------------------------------------------------------
@router.get("/static/{name}")
def static(request: Request, name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    web = console(request)
    path = next(p for folder in template_folders(web.config)
                if (p := Path(folder) / "admin" / name).is_file())
    return Response(path.read_bytes(), media_type=STATIC[name],
                    headers={"cache-control": "public, max-age=3600"})
