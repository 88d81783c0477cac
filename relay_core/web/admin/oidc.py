"""Optional console sign-in through the company's identity provider: OpenID Connect
authorization code flow with PKCE (S256), a `state` and a `nonce`.

    GET /admin/oidc/start      discovery (ISSUER/.well-known/openid-configuration, cached),
                               a signed state cookie (SameSite=Lax: it must come back with the
                               provider's redirect), then 302 to the authorization endpoint
    GET /admin/oidc/callback   state checked against the cookie; the code exchanged at the
                               token endpoint (Authlib's OAuth2Session, client_secret_basic or
                               a public client); the ID token verified with the provider's JWKS
                               (joserfc): signature (RS/PS/ES only), iss, aud, exp, nonce; then
                               the *verified* email must belong to a console account

The redirect URI is `relay.public_base_url` + /admin/oidc/callback; register exactly that with
the provider. The provider never decides who may use the console: HR ops do, with
`career-relay admin add NAME --email ADDRESS`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from relay_core.config import AdminOidc
from relay_core.errors import ConfigError, RelayError
from relay_core.inbound import same_token

STATE_COOKIE = "cr_admin_oidc"
STATE_MAX_AGE = 10 * 60
DISCOVERY_TTL = 60 * 60
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512"]
TIMEOUT = 10


class OidcError(RelayError):
    """The provider's answer cannot be trusted or used; the message is safe to log."""


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str

    def __repr__(self) -> str:
        return f"Identity(sub={self.subject!r})"


class OidcClient:
    def __init__(self, settings: AdminOidc, redirect_uri: str, key: bytes,
                 session: requests.Session | None = None):
        self.settings = settings
        self.redirect_uri = redirect_uri
        self.http = session or requests.Session()
        self._signer = URLSafeTimedSerializer(key, salt="admin-oidc-state")
        self._metadata: dict[str, Any] | None = None
        self._fetched = 0.0
        self._keys: KeySet | None = None

    # --- provider metadata -------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._fetched > DISCOVERY_TTL:
            url = self.settings.issuer + "/.well-known/openid-configuration"
            meta = self._get_json(url)
            if meta.get("issuer", "").rstrip("/") != self.settings.issuer:
                raise OidcError("the discovery document names another issuer; check "
                                "admin.oidc.issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(meta.get(key), str):
                    raise OidcError(f"the discovery document has no {key}")
            self._metadata, self._fetched, self._keys = meta, time.monotonic(), None
        return self._metadata

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(f"cannot read {url} ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise OidcError(f"{url} did not answer with a JSON object")
        return data

    def _client(self) -> OAuth2Session:
        secret = (self.settings.client_secret.resolve().get_secret_value()
                  if self.settings.client_secret is not None else None)
        session = OAuth2Session(
            self.settings.client_id, secret, scope=" ".join(self.settings.scopes),
            redirect_uri=self.redirect_uri, code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if secret else "none")
        session.timeout = TIMEOUT
        return session

    # --- the flow ----------------------------------------------------------------------------
    def start(self, next_path: str) -> tuple[str, str]:
        """(authorization URL, value of the state cookie)."""
        meta = self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        url, _ = self._client().create_authorization_url(
            meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier)
        return url, self._signer.dumps([state, nonce, verifier, next_path])

    def finish(self, cookie: str | None, state: str | None, code: str | None
               ) -> tuple[Identity, str]:
        """The verified identity and the page to go to; OidcError when anything is off."""
        try:
            expected, nonce, verifier, next_path = self._signer.loads(
                cookie or "", max_age=STATE_MAX_AGE)
        except (BadSignature, ValueError, TypeError):
            raise OidcError("the sign-in took too long or was started in another browser; "
                            "start again") from None
        if not state or not same_token(str(expected), state) or not code:
            raise OidcError("the provider's answer does not belong to this sign-in")
        meta = self.metadata()
        try:
            token = self._client().fetch_token(meta["token_endpoint"], code=code,
                                               code_verifier=verifier)
        except ConfigError:
            raise
        except Exception as exc:    # Authlib raises its own OAuth errors and requests' ones
            raise OidcError(f"the token endpoint refused the code ({type(exc).__name__})"
                            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the token endpoint sent no ID token (is \"openid\" in scopes?)")
        claims = self._verify(id_token, nonce)
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise OidcError("the ID token carries no email address (add the \"email\" scope)")
        if claims.get("email_verified") is False:
            raise OidcError("the provider has not verified this email address")
        return Identity(str(claims["sub"]), email), next_path

    def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        for attempt in (1, 2):     # a key rotated since we fetched the set: fetch it once more
            if self._keys is None or attempt == 2:
                self._keys = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))
            try:
                decoded = jwt.decode(id_token, self._keys, algorithms=ALGORITHMS)
                break
            except JoseError as exc:
                if attempt == 2:
                    raise OidcError(f"the ID token's signature does not verify ({exc.error})"
                                    ) from None
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True}, exp={"essential": True},
            nonce={"essential": True, "value": nonce})
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
            raise OidcError(f"the ID token is not valid for this sign-in ({detail})") from None
        audience = decoded.claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and (
                decoded.claims.get("azp") != self.settings.client_id):
            raise OidcError("the ID token was issued to another client (azp)")
        return decoded.claims
