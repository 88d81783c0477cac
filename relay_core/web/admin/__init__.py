"""The HR console at /admin/ in `career-relay serve`: server-rendered pages (templates/admin/,
Japanese and English) for cases, the approval queue, agencies and the report, behind a
sign-in (auth.py). Approve, hold and cancel go through cycle/approval.py, the functions the CLI
uses, and every action is audited.

    routes.py   sign-in and out, OpenID Connect, language, dashboard, agencies, report, static
    cases.py    case search, one case (its email, timeline, consent, handoffs), the actions,
                the approval queue
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from relay_core.web.admin import cases, routes
from relay_core.web.admin.auth import Forbidden, SignInRequired
from relay_core.web.admin.console import CSP, console
from relay_core.web.admin.i18n import MESSAGES

PREFIX = "/admin"
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


class ConsoleHeaders:
    """Pure ASGI middleware: the console's security headers on every /admin response, unless
    the route set its own (the email frame may be framed by the console itself)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    app.include_router(routes.router)
    app.include_router(cases.router)
    app.add_middleware(ConsoleHeaders)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        web = console(request)
        if request.method in ("GET", "HEAD"):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(web.url("/sign-in", next=here), status_code=303)
        t = MESSAGES[web.language(request)]
        return web.page(request, "message.html", {
            "title": t["sign_in"], "text": t["session_expired"],
            "link": web.url("/sign-in"), "link_text": t["sign_in"]}, status=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        web = console(request)
        t = MESSAGES[web.language(request)]
        return web.page(request, "message.html", {"title": t["forbidden"],
                                                  "text": t["forbidden_csrf"]}, status=403)
