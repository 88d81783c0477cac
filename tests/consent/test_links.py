"""Invitation links: tampering, expiry, purpose, forged Host, scanners' GETs, page hygiene."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select, update

from relay_core.errors import TokenWrongPurpose
from relay_core.records.consent import tokens
from relay_core.store import tables as t
from relay_core.store import utcnow
from tests.consent.conftest import BASE, csrf_of, open_page, post, text_hash_of

HYGIENE = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_hygiene(response) -> None:
    for name, value in HYGIENE.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def counts(store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("consents", t.consents), ("status", t.relay_status),
                                    ("handoffs", t.handoffs), ("audit", t.audit_log),
                                    ("outbox", t.outbox))}


def expire_now(store, case_id: int) -> None:
    with store.begin() as conn:
        conn.execute(update(t.invitations).where(t.invitations.c.case_id == case_id)
                     .values(expires_at=utcnow() - timedelta(minutes=1)))


def tamper(token: str) -> str:
    i = len(token) - 3
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


@pytest.mark.parametrize("mangle", [tamper, lambda s: s[:-5], lambda s: s.split(".")[0],
                                    # another first character (a random token may start with x)
                                    lambda s: ("x" if s[0] != "x" else "y") + s[1:],
                                    lambda s: s + "." + "y" * 300])
def test_tampered_link_shows_400_page(client, invitation, mangle):
    token, _ = invitation
    response = client.get(f"/r/{mangle(token)}")
    assert response.status_code == 400
    assert "無効" in response.text and "set-cookie" not in response.headers
    assert_hygiene(response)


def test_expired_link_shows_a_kind_410_page(client, invitation, store):
    token, case_id = invitation
    expire_now(store, case_id)
    response = client.get(f"/r/{token}")
    assert response.status_code == 410
    assert "有効期限" in response.text and "影響することはありません" in response.text
    assert "set-cookie" not in response.headers
    assert_hygiene(response)
    english = client.get(f"/r/{token}?lang=en")
    assert english.status_code == 410 and "has expired" in english.text


def test_expired_while_the_page_was_open_refuses_the_post(client, invitation, store):
    token, case_id = invitation
    html = open_page(client, token).text
    expire_now(store, case_id)
    response = post(client, "/relay/consent", {"csrf": csrf_of(html), "lang": "ja",
                                               "text_sha256": text_hash_of(html),
                                               "agency": ["agency-a"]})
    assert response.status_code == 410
    assert counts(store)["consents"] == 0


def test_wrong_purpose_is_refused(client, invitation, store, config):
    token, case_id = invitation
    with store.begin() as conn:
        key = tokens.signing_key(config, conn)
        withdraw_token = tokens.mint(conn, key, case_id, "withdraw", timedelta(days=1))
    assert client.get(f"/r/{withdraw_token}").status_code == 400
    assert client.get(f"/w/{token}").status_code == 400
    with store.engine.connect() as conn:
        with pytest.raises(TokenWrongPurpose):
            tokens.verify(conn, key, withdraw_token, "consent")


def test_link_exchanges_token_for_a_strict_httponly_cookie_and_a_token_less_url(
        client, invitation):
    token, _ = invitation
    response = client.get(f"/r/{token}")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == f"{BASE}/relay" and token not in location
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" in cookie and token not in cookie
    assert_hygiene(response)


def test_plain_http_base_gets_no_secure_flag(make_config, store):
    from fastapi.testclient import TestClient

    from relay_core.web.app import create_app
    from tests.consent.conftest import AGENCIES, link_in, outbox_files, send_invitations

    config = make_config({"agencies": AGENCIES,
                          "relay": {"public_base_url": "http://127.0.0.1:8080"}})
    send_invitations(config, store)
    link = link_in(outbox_files(config)[0], "http://127.0.0.1:8080/r/")
    with TestClient(create_app(config, store, {}), base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as client:
        cookie = client.get(link).headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" not in cookie


def test_forged_host_header_never_reaches_a_link(client, invitation, store):
    token, case_id = invitation
    evil = {"host": "evil.example", "x-forwarded-host": "evil.example"}
    response = client.get(f"/r/{token}", headers=evil)
    assert response.headers["location"].startswith(BASE + "/")
    page = client.get("/relay", headers=evil)
    assert page.status_code == 200 and "evil.example" not in page.text
    for url in re.findall(r'(?:href|action)="([^"]+)"', page.text):
        assert url.startswith(BASE) or url == "https://example.co.jp/privacy", url
    html = page.text
    consent = post(client, "/relay/consent", {"csrf": csrf_of(html), "lang": "ja",
                                              "text_sha256": text_hash_of(html),
                                              "agency": ["agency-a"]}, **evil)
    assert consent.status_code == 303 and consent.headers["location"].startswith(BASE + "/")
    with store.engine.connect() as conn:
        data = conn.execute(select(t.outbox.c.message).where(
            t.outbox.c.kind == "confirmation")).scalar_one()
    from email import message_from_bytes, policy

    text = message_from_bytes(data, policy=policy.default).get_body(("plain",)).get_content()
    assert f"{BASE}/w/" in text and "evil.example" not in text


def test_ten_gets_and_heads_record_nothing_and_keep_the_token(client, invitation, store,
                                                              config):
    token, case_id = invitation
    before = counts(store)
    for _ in range(10):
        for method in ("GET", "HEAD"):
            assert client.request(method, f"/r/{token}").status_code == 303
            assert client.request(method, "/relay").status_code == 200
            assert client.request(method, "/relay?lang=en").status_code == 200
    assert counts(store) == before and before["consents"] == 0
    with store.engine.connect() as conn:
        key = tokens.signing_key(config, conn)
        invitation_row = tokens.verify(conn, key, token, "consent")
    assert invitation_row.used_at is None
    # ... and the candidate can still use it.
    html = open_page(client, token).text
    response = post(client, "/relay/consent", {"csrf": csrf_of(html), "lang": "ja",
                                               "text_sha256": text_hash_of(html),
                                               "agency": ["agency-a"]})
    assert response.status_code == 303 and counts(store)["consents"] == 1


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.checked = False
        self.inline_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.checked |= "checked" in attrs
        self.inline_style |= tag == "style" or "style" in attrs
        for name in ("src", "href", "action"):
            if name in attrs:
                self.refs.append((tag, name, attrs[name]))


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_page_loads_nothing_from_elsewhere_and_nothing_is_ticked(client, invitation, lang):
    token, _ = invitation
    page = open_page(client, token, lang)
    assert_hygiene(page)
    parser = _Refs()
    parser.feed(page.text)
    assert not parser.checked and not parser.inline_style
    assert "<script" not in page.text
    for tag, _name, url in parser.refs:
        if not url.startswith(BASE + "/"):
            # Only a plain link (navigation, not a loaded resource) to the privacy policy.
            assert tag == "a" and url == "https://example.co.jp/privacy", (tag, url)
    css = client.get("/relay/static/relay.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text and "@import" not in css.text
    assert_hygiene(css)


def test_page_has_labels_for_every_input(client, invitation):
    token, _ = invitation
    html = open_page(client, token).text
    ids = re.findall(r'<(?:input|textarea)[^>]*\sid="([^"]+)"', html)
    assert len(ids) == 6          # two agencies, four preferences
    for element_id in ids:
        assert f'<label for="{element_id}">' in html


def test_missing_cookie_gets_one_same_site_hop_then_a_kind_page(client):
    first = client.get("/relay")
    assert first.status_code == 200
    assert 'http-equiv="refresh"' in first.text and f"{BASE}/relay?s=1" in first.text
    second = client.get("/relay?s=1")
    assert second.status_code == 401 and "もう一度" in second.text
    assert_hygiene(second)


def test_oversized_or_undeclared_form_bodies_are_refused(client, invitation):
    token, _ = invitation
    open_page(client, token)
    big = client.post("/relay/consent", content=b"a=" + b"x" * 70_000,
                      headers={"origin": BASE, "content-type":
                               "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    assert_hygiene(big)

    def chunks():
        yield b"csrf=x"

    chunked = client.post("/relay/consent", content=chunks(), headers={"origin": BASE})
    assert chunked.status_code == 411
