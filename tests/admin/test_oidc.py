"""Console sign-in through OpenID Connect against a stand-in identity provider on loopback:
discovery, authorization code with PKCE, the token endpoint, an RS256 ID token checked with
the provider's JWKS. No network beyond 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from relay_core.store import admin as accounts
from relay_core.store import tables as t
from relay_core.store import utcnow
from relay_core.web.app import create_app
from tests.admin.conftest import BASE

CLIENT_ID, CLIENT_SECRET = "career-relay", "s3cret-of-the-client"


class StandInProvider:
    """Just enough of an OpenID provider: it signs in whoever `email` says, at once."""

    def __init__(self):
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.email, self.email_verified = "hanako@example.co.jp", True
        self.audience = CLIENT_ID
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, data, status=200):
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json({"issuer": provider.issuer,
                                "authorization_endpoint": provider.issuer + "/authorize",
                                "token_endpoint": provider.issuer + "/token",
                                "jwks_uri": provider.issuer + "/jwks"})
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
                    assert q["code_challenge_method"] == "S256" and "openid" in q["scope"]
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = q
                    self.send_response(302)
                    self.send_header("location", q["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": q["state"]}))
                    self.end_headers()
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self):
                length = int(self.headers["content-length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests.append(form)
                basic = base64.b64decode(self.headers["authorization"].split()[1]).decode()
                q = provider.codes.pop(form.get("code"), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(
                    form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if (q is None or basic != f"{CLIENT_ID}:{CLIENT_SECRET}"
                        or challenge != q["code_challenge"]
                        or form.get("redirect_uri") != q["redirect_uri"]):
                    self._json({"error": "invalid_grant"}, 400)
                    return
                now = int(time.time())
                claims = {"iss": provider.issuer, "aud": provider.audience, "sub": "u-1",
                          "email": provider.email, "email_verified": provider.email_verified,
                          "nonce": q["nonce"], "iat": now, "exp": now + 300}
                token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, provider.key)
                self._json({"access_token": "at", "token_type": "Bearer", "id_token": token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    with StandInProvider() as idp:
        yield idp


@pytest.fixture
def oidc_client(make_config, store, provider, monkeypatch):
    monkeypatch.setenv("CR_TEST_OIDC_SECRET", CLIENT_SECRET)
    config = make_config({"admin": {"oidc": {"issuer": provider.issuer, "client_id": CLIENT_ID,
                                             "client_secret": "env:CR_TEST_OIDC_SECRET",
                                             "label": "社内アカウントでサインイン"}}})
    accounts.create_account(store, "hanako", email="Hanako@example.co.jp", password_hash=None,
                            actor="test", now=utcnow())
    with TestClient(create_app(config, store, {}), base_url=BASE,
                    follow_redirects=False) as client:
        yield client


def through_the_provider(client, next_path="/admin/cases"):
    start = client.get("/admin/oidc/start", params={"next": next_path})
    assert start.status_code == 302
    authorize = start.headers["location"]
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == BASE     # the registered redirect URI
    return client.get(f"{callback.path}?{callback.query}")


def test_sign_in_through_the_identity_provider(oidc_client, provider, store):
    page = oidc_client.get("/admin/sign-in")
    assert "社内アカウントでサインイン" in page.text
    response = through_the_provider(oidc_client)
    assert response.status_code == 303 and response.headers["location"] == "/admin/cases"
    assert oidc_client.get("/admin/cases").status_code == 200
    assert provider.token_requests[0]["grant_type"] == "authorization_code"
    with store.engine.connect() as conn:
        method = conn.execute(select(t.admin_sessions.c.method)).scalar_one()
        audit = conn.execute(select(t.audit_log.c.actor, t.audit_log.c.reason).where(
            t.audit_log.c.action == "admin_signed_in")).one()
    assert method == "oidc" and tuple(audit) == ("admin:hanako", "via oidc")


def test_an_identity_without_a_console_account_is_refused(oidc_client, provider):
    provider.email = "someone.else@example.co.jp"
    response = through_the_provider(oidc_client)
    assert response.status_code == 403
    assert oidc_client.get("/admin/").status_code == 303


def test_an_unverified_email_or_a_token_for_another_client_is_refused(oidc_client, provider):
    provider.email_verified = False
    assert through_the_provider(oidc_client).status_code == 401
    provider.email_verified, provider.audience = True, "another-client"
    assert through_the_provider(oidc_client).status_code == 401
    assert oidc_client.get("/admin/").status_code == 303


def test_a_callback_without_its_state_cookie_is_refused(oidc_client, provider):
    start = oidc_client.get("/admin/oidc/start")
    back = httpx.get(start.headers["location"], follow_redirects=False)
    callback = urlsplit(back.headers["location"])
    oidc_client.cookies.clear()
    assert oidc_client.get(f"{callback.path}?{callback.query}").status_code == 401
    # A forged state with a valid cookie is refused too.
    start = oidc_client.get("/admin/oidc/start")
    back = httpx.get(start.headers["location"], follow_redirects=False)
    query = parse_qs(urlsplit(back.headers["location"]).query)
    response = oidc_client.get("/admin/oidc/callback",
                               params={"code": query["code"][0], "state": "forged"})
    assert response.status_code == 401
