"""Signing in to the console: password or OpenID Connect, sessions, CSRF, lockout, audit.

    session   a random token in the `cr_admin` cookie (HttpOnly, SameSite=Lax, Secure on
              https, path /admin); the store keeps only its SHA-256 (store/admin.py). A
              session ends after `admin.idle_minutes` without a request, after
              `admin.session_hours` in any case, and at sign-out.
    CSRF      every POST carries the session's CSRF token in the form body (synchroniser
              token); the sign-in form, before any session exists, carries an HMAC of a nonce
              kept in a short-lived cookie (signed double submit). A POST whose Fetch metadata
              says `cross-site` is refused as well.
    lockout   `admin.max_failed_sign_ins` wrong passwords in a row lock the account for
              `admin.lockout_minutes` (`career-relay admin unlock NAME` ends it early). The
              page says the same for every failure, so it does not reveal which names exist.
    audit     every sign-in, failure, lock, sign-out and action is a row in the audit log,
              actor `admin:<name>`; a failure with an unknown name is `admin:?` (the typed
              name may be a mistyped password, so it is not recorded).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from relay_core.inbound import same_token
from relay_core.store import admin as accounts
from relay_core.store import utcnow
from relay_core.store.admin import AdminAccount, AdminSession
from relay_core.web.admin.console import ConsoleWeb
from relay_core.web.admin.passwords import hash_password, needs_rehash, verify_password

COOKIE = "cr_admin"
PRE_COOKIE = "cr_admin_pre"
PRE_MAX_AGE = 60 * 60


class SignInRequired(Exception):
    """No live session: GET pages redirect to the sign-in page, POSTs are refused (401)."""


class Forbidden(Exception):
    """A POST without a valid CSRF token, or from another site (403)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor(account: AdminAccount) -> str:
    return f"admin:{account.name}"


# --- sessions --------------------------------------------------------------------------------
def current_session(web: ConsoleWeb, request: Request) -> AdminSession | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    now = utcnow()
    idle = timedelta(minutes=web.config.admin.idle_minutes)
    with web.store.begin() as conn:
        session = accounts.session_by_token(conn, _hash(token), now=now, idle=idle)
        if session is not None:
            accounts.touch_session(conn, _hash(token), now)
    return session


def require_session(web: ConsoleWeb, request: Request) -> AdminSession:
    session = current_session(web, request)
    if session is None:
        raise SignInRequired()
    return session


async def require_post(web: ConsoleWeb, request: Request) -> tuple[AdminSession, dict]:
    """The session of a POST whose CSRF token matches; the form's fields."""
    session = await run_in_threadpool(current_session, web, request)
    if session is None:
        raise SignInRequired()
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden()
    form = await request.form()
    submitted = form.get("csrf")
    if not same_token(session.csrf_token, submitted):
        raise Forbidden()
    return session, form


def start_session(web: ConsoleWeb, response: Response, request: Request,
                  account: AdminAccount, method: str) -> None:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    hours = web.config.admin.session_hours
    with web.store.begin() as conn:
        accounts.create_session(conn, token_hash=_hash(token), account_id=account.id,
                                csrf_token=secrets.token_urlsafe(32), method=method, now=now,
                                expires_at=now + timedelta(hours=hours))
        accounts.record_sign_in(conn, account.id, now)
        web.store.audit(conn, None, actor(account), "admin_signed_in", reason=f"via {method}",
                        at=now)
    response.set_cookie(COOKIE, token, max_age=hours * 3600, path=web.root + "/",
                        httponly=True, samesite="lax", secure=web.secure(request))
    response.delete_cookie(PRE_COOKIE, path=web.root + "/")


def end_session(web: ConsoleWeb, response: Response, request: Request,
                session: AdminSession) -> None:
    token = request.cookies.get(COOKIE, "")
    with web.store.begin() as conn:
        accounts.delete_session(conn, _hash(token))
        web.store.audit(conn, None, actor(session.account), "admin_signed_out")
    response.delete_cookie(COOKIE, path=web.root + "/")


# --- the sign-in form's CSRF (no session yet) ------------------------------------------------
def sign_in_token(web: ConsoleWeb, request: Request) -> tuple[str, str]:
    """(nonce, form token) for the sign-in page; `set_sign_in_cookie` binds them."""
    nonce = request.cookies.get(PRE_COOKIE)
    if not nonce or len(nonce) > 100:
        nonce = secrets.token_urlsafe(24)
    return nonce, _pre_token(web, nonce)


def set_sign_in_cookie(web: ConsoleWeb, request: Request, response: Response,
                       nonce: str) -> None:
    response.set_cookie(PRE_COOKIE, nonce, max_age=PRE_MAX_AGE, path=web.root + "/",
                        httponly=True, samesite="strict", secure=web.secure(request))


def _pre_token(web: ConsoleWeb, nonce: str) -> str:
    return hmac.new(web.key, b"sign-in\0" + nonce.encode(), hashlib.sha256).hexdigest()


def sign_in_token_ok(web: ConsoleWeb, request: Request, submitted: object) -> bool:
    nonce = request.cookies.get(PRE_COOKIE)
    if (not nonce or not isinstance(submitted, str)
            or request.headers.get("sec-fetch-site") == "cross-site"):
        return False
    return same_token(_pre_token(web, nonce), submitted)


# --- password sign-in ------------------------------------------------------------------------
def check_password(web: ConsoleWeb, name: str, password: str) -> AdminAccount | None:
    """The account when the name and password are right and it is not locked; every outcome
    is audited. Slow on purpose (argon2id), so run it in a worker thread."""
    name = name.strip()[:40]
    with web.store.engine.connect() as conn:
        account = accounts.account_by_name(conn, name) if name else None
    matches = verify_password(account.password_hash if account else None, password)
    now = utcnow()
    settings = web.config.admin
    with web.store.begin() as conn:
        if account is None:
            web.store.audit(conn, None, "admin:?", "admin_sign_in_failed",
                            reason="unknown account name", at=now)
            return None
        account = accounts.account_by_name(conn, name)   # the lock may have changed meanwhile
        if account is None or account.locked(now):
            web.store.audit(conn, None, f"admin:{name}", "admin_sign_in_refused",
                            reason="account locked after repeated failures", at=now)
            return None
        if not matches:
            locked = accounts.record_failed_sign_in(
                conn, account.id, now=now, max_failures=settings.max_failed_sign_ins,
                lockout=timedelta(minutes=settings.lockout_minutes))
            web.store.audit(conn, None, actor(account), "admin_sign_in_failed",
                            reason="wrong password" if account.password_hash
                            else "this account signs in through the identity provider", at=now)
            if locked:
                web.store.audit(conn, None, actor(account), "admin_locked", at=now,
                                reason=f"{settings.max_failed_sign_ins} failed sign-ins in a "
                                       f"row; locked for {settings.lockout_minutes} minutes")
            return None
        if needs_rehash(account.password_hash):
            accounts.update_password_hash(conn, account.id, hash_password(password))
    return account
