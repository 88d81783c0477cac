"""Fixtures for the HR console: a config holding cases for approval, cases whose email ended
ambiguous or given up, an account, a client that signs in through the real form (its token
read from the page), and a loopback stand-in identity provider for OpenID Connect."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from relay_core.cycle.approval import approve
from relay_core.cycle.run import run_cycle
from relay_core.errors import AmbiguousMailError, RetriableError
from relay_core.mail.transports import FileTransport
from relay_core.store import admin as accounts
from relay_core.store import utcnow
from relay_core.web.admin.passwords import hash_password
from relay_core.web.app import create_app
from tests.consent.conftest import AGENCIES
from tests.fakes import FakeConnector, event

BASE = "https://relay.example.co.jp"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def config(make_config):
    return make_config({"agencies": AGENCIES, "schedule": {"hold_for_approval": True}})


def candidates():
    yesterday = utcnow() - timedelta(days=1)
    return [
        event("A-1", email="hanako.yamada@example.com", rejected_at=yesterday),
        event("A-2", email="taro.suzuki@example.com", rejected_at=yesterday),
        event("A-3", email="alex.morgan@example.com", rejected_at=yesterday, language="en"),
    ]


@pytest.fixture
def connector():
    return FakeConnector(events=candidates())


@pytest.fixture
def held(config, store, connector):
    """Three cases, held for approval (one cycle ran)."""
    run_cycle(config, store, {connector.name: connector},
              transport=FileTransport(config.path(config.mail.outbox_dir)))
    return {e.application_id: store.case_by_key("fake", e.application_id).id
            for e in connector.events}


class Dropping(FileTransport):
    """The connection drops after the message's final "." and before the server's reply, as
    SmtpTransport reports it: the pipeline must record the email as ambiguous."""

    def send(self, mail):
        raise AmbiguousMailError("the connection dropped after DATA, before the reply")


class Busy(FileTransport):
    """Every attempt meets a temporary refusal (451)."""

    def send(self, mail):
        raise RetriableError("the mail server is busy", status=451,
                             reply="451 4.3.0 try again later")


@pytest.fixture
def ambiguous(held, config, store, connector):
    """Case A-1 approved and handed to a server whose answer never came: `ambiguous`."""
    approve(store, [held["A-1"]], actor="test")
    run_cycle(config, store, {connector.name: connector},
              transport=Dropping(config.path(config.mail.outbox_dir)))
    assert store.case(held["A-1"]).state == "ambiguous"
    return held["A-1"]


@pytest.fixture
def gave_up(held, config, store, connector):
    """Case A-2 approved, refused for the time being at each try until past its deadline:
    `failed`, its email `gave_up` (bytes kept)."""
    approve(store, [held["A-2"]], actor="test")
    busy = Busy(config.path(config.mail.outbox_dir))
    run_cycle(config, store, {connector.name: connector}, transport=busy)
    run_cycle(config, store, {connector.name: connector}, transport=busy,
              now=utcnow() + timedelta(days=40))
    assert store.case(held["A-2"]).state == "failed"
    return held["A-2"]


@pytest.fixture
def account(store):
    accounts.create_account(store, "hanako", email="hanako@example.co.jp",
                            password_hash=hash_password(PASSWORD), actor="test", now=utcnow())
    return "hanako"


@pytest.fixture
def app(config, store, connector):
    return create_app(config, store, {connector.name: connector})


@pytest.fixture
def client(app):
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        yield c


def form_token(html: str, name: str = "form_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def sign_in(client, name: str = "hanako", password: str = PASSWORD, next_path: str = ""):
    page = client.get("/admin/sign-in", params={"next": next_path} if next_path else None)
    assert page.status_code == 200, page.text
    return client.post("/admin/sign-in", data={"form_token": form_token(page.text),
                                               "name": name, "password": password,
                                               "next": next_path})


@pytest.fixture
def signed_in(client, account):
    response = sign_in(client)
    assert response.status_code == 303, response.text
    return client


def csrf_of(client, path: str = "/admin/") -> str:
    return form_token(client.get(path).text, "csrf")
