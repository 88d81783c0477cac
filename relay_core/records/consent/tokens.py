"""Invitation and withdrawal links.

A token is `<random id>.<signature>`: 192 random bits from `secrets`, and an HMAC-SHA256 over
purpose and id with the instance's signing key. The signature lets a tampered or wrong-purpose
link be refused without a database look-up; the stored row (only the token's SHA-256, never
the token) binds it to the case, gives it an expiry and marks single use. No personal data is
in the token. Sources: OWASP Forgot Password cheat sheet, reference/privacy_email.md sec. 4.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from relay_core.config import Config
from relay_core.errors import TokenExpired, TokenTampered, TokenWrongPurpose
from relay_core.inbound import same_token
from relay_core.store import Connection, consents, utcnow
from relay_core.store.consents import Invitation

PURPOSES = ("consent", "withdraw", "unsubscribe")


def signing_key(config: Config, conn: Connection) -> bytes:
    """The configured key, or one this instance generated and keeps in its store."""
    if config.relay.signing_key is not None:
        return config.relay.signing_key.resolve().get_secret_value().encode()
    value = consents.instance_key(conn, "signing_key")
    if value is None:
        value = secrets.token_urlsafe(48)
        consents.add_instance_key(conn, "signing_key", value, utcnow())
    return value.encode()


def _sign(key: bytes, purpose: str, token_id: str) -> str:
    mac = hmac.new(key, f"{purpose}.{token_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(key: bytes, case_id: int, purpose: str, ttl: timedelta,
              now: datetime) -> tuple[str, dict]:
    """A fresh token and the invitations row that makes it valid (insert it to activate)."""
    assert purpose in PURPOSES
    token_id = secrets.token_urlsafe(24)
    token = f"{token_id}.{_sign(key, purpose, token_id)}"
    return token, dict(case_id=case_id, purpose=purpose, token_hash=token_hash(token),
                       created_at=now, expires_at=now + ttl)


def mint(conn: Connection, key: bytes, case_id: int, purpose: str, ttl: timedelta,
         now: datetime | None = None) -> str:
    token, row = new_token(key, case_id, purpose, ttl, now or utcnow())
    consents.add_invitation(conn, **row)
    return token


def verify(conn: Connection, key: bytes, token: str, purpose: str,
           now: datetime | None = None, *, allow_expired: bool = False) -> Invitation:
    """The invitation a token names, or TokenTampered / TokenWrongPurpose / TokenExpired."""
    now = now or utcnow()
    token_id, _, signature = (token or "").partition(".")
    if not token_id or not signature or len(token) > 200:
        raise TokenTampered("this link is incomplete or has been altered")
    if not same_token(_sign(key, purpose, token_id), signature):
        for other in PURPOSES:
            if other != purpose and same_token(_sign(key, other, token_id), signature):
                raise TokenWrongPurpose(f"this link is for {other}, not {purpose}")
        raise TokenTampered("this link is incomplete or has been altered")
    invitation = consents.invitation_by_token_hash(conn, token_hash(token))
    if invitation is None or invitation.purpose != purpose:
        raise TokenTampered("this link is not known here")
    if invitation.expires_at <= now and not allow_expired:
        raise TokenExpired("this link has expired")
    return invitation


def use(conn: Connection, invitation_id: int, now: datetime | None = None) -> bool:
    """Mark single use atomically; False if it was already used."""
    return consents.use_invitation(conn, invitation_id, now or utcnow())
