"""The short-lived session a relay link is exchanged for, and its CSRF token.

The cookie holds only an invitation id, the link's purpose and a random nonce, signed (not
encrypted: nothing in it is personal) with a key derived from the instance's signing key. The
CSRF token is an HMAC of the nonce, so it is bound to this cookie and cannot be replayed with
another; it travels only in the form body, never in a URL (OWASP CSRF cheat sheet).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from relay_core.inbound import same_token
from relay_core.records.consent.tokens import PURPOSES

COOKIE = "cr_relay"
MAX_AGE_SECONDS = 2 * 60 * 60


@dataclass(frozen=True)
class RelaySession:
    invitation_id: int
    purpose: str
    nonce: str

    def __repr__(self) -> str:
        return f"RelaySession(invitation={self.invitation_id}, {self.purpose})"


class SessionSigner:
    def __init__(self, signing_key: bytes):
        derived = hmac.new(signing_key, b"career-relay session v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(signing_key, b"career-relay csrf v1", hashlib.sha256).digest()
        self._serializer = URLSafeTimedSerializer(derived, salt="relay-session")

    def issue(self, invitation_id: int, purpose: str) -> str:
        return self._serializer.dumps([invitation_id, purpose, secrets.token_urlsafe(16)])

    def read(self, value: str | None) -> RelaySession | None:
        if not value or len(value) > 400:
            return None
        try:
            invitation_id, purpose, nonce = self._serializer.loads(value, max_age=MAX_AGE_SECONDS)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(invitation_id, int) or purpose not in PURPOSES:
            return None
        return RelaySession(invitation_id, purpose, str(nonce))

    def csrf_token(self, session: RelaySession) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: RelaySession, submitted: str | None) -> bool:
        return bool(submitted) and same_token(self.csrf_token(session), submitted)
