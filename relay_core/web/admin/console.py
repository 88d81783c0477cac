"""What the console keeps per app, and how it draws a page.

Pages are rendered from templates/admin/ through the one environment factory
(`template_environment(config, html_only=True)`): sandboxed, autoescaped, a user's
`mail.templates_dir` may override them like every other template. Links are path-absolute
under the console's root (`/admin`, below the path of `relay.public_base_url`), never built
from the request's Host.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse

from relay_core.config import Config
from relay_core.records.consent import tokens
from relay_core.rendering.emails import Renderer
from relay_core.rendering.environment import TemplateEnvironment, template_environment
from relay_core.store import Store
from relay_core.web.admin.i18n import LANGUAGES, MESSAGES
from relay_core.web.deps import AppState, built_once

LANG_COOKIE = "cr_admin_lang"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


@dataclass
class ConsoleWeb:
    config: Config
    store: Store
    env: TemplateEnvironment
    key: bytes                        # signs the sign-in form and the OIDC state cookie
    emails: Renderer                  # previews of emails not sent yet

    @property
    def root(self) -> str:
        return urlsplit(self.config.relay.public_base_url).path.rstrip("/") + "/admin"

    def url(self, path: str = "/", **query: Any) -> str:
        clean = {k: v for k, v in query.items() if v not in (None, "")}
        return self.root + path + (f"?{urlencode(clean)}" if clean else "")

    def secure(self, request: Request) -> bool:
        return (request.url.scheme == "https"
                or self.config.relay.public_base_url.startswith("https://"))

    def language(self, request: Request) -> str:
        chosen = request.cookies.get(LANG_COOKIE)
        if chosen in LANGUAGES:
            return chosen
        return self.config.company.locale if self.config.company.locale in LANGUAGES else "ja"

    def local(self, moment: datetime | None, with_time: bool = True) -> str:
        if moment is None:
            return "—"
        local = moment.astimezone(self.config.company.tz)
        return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    def page(self, request: Request, template: str, context: dict[str, Any], *,
             status: int = 200, admin: Any = None, active: str = "") -> HTMLResponse:
        lang = self.language(request)
        other = "en" if lang == "ja" else "ja"
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        base = {
            "t": MESSAGES[lang], "lang": lang, "other_lang": other,
            "company_name": self.config.company.name, "admin": admin, "active": active,
            "root": self.root, "url": self.url, "local": self.local,
            "switch_url": self.url("/language", to=other, next=here),
            "csrf": admin.csrf_token if admin is not None else "",
            "notice": "",
        }
        html = self.env.render_file(f"admin/{template}", {**base, **context})
        return HTMLResponse(html, status_code=status)


def console(request: Request) -> ConsoleWeb:
    return built_once(request, "console_web", _build_console)


def _build_console(app: AppState) -> ConsoleWeb:
    with app.store.begin() as conn:
        instance_key = tokens.signing_key(app.config, conn)
    key = hmac.new(instance_key, b"career-relay console v1", hashlib.sha256).digest()
    return ConsoleWeb(app.config, app.store, template_environment(app.config, html_only=True),
                      key, Renderer(app.config))
