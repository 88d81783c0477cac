"""Fixtures for the consent flow: a config with two agencies, a case that went through the
real pipeline (its invitation link read back from the .eml), and a client for the app."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.store import utcnow
from relay_core.web.app import create_app
from tests.fakes import FakeConnector, event

BASE = "https://relay.example.co.jp"
AGENCIES = [
    {"id": "agency-a", "legal_name": "株式会社エージェントA", "address": "東京都港区芝公園4-2-8",
     "representative": "代表取締役 佐藤一郎", "country": "JP", "licence_number": "13-ユ-000000",
     "deletion_contact": "privacy@agency-a.example", "purpose": "ご経験に合う求人のご紹介",
     "channel": "email", "email": "intake@agency-a.example", "retention": "ご登録から2年間",
     "fields": ["name", "email", "desired_role", "location", "message"]},
    {"id": "agency-b", "legal_name": "Global Talent Partners Pte. Ltd.",
     "address": "1 Example Street, Singapore", "representative": "Jane Doe, CEO",
     "country": "SG", "deletion_contact": "privacy@agency-b.example",
     "protection_regime": "Personal Data Protection Act 2012 (PDPA), supervised by the PDPC",
     "protection_measures": "Contractual commitment to APPI-equivalent safeguards; ISO 27001",
     "channel": "email", "email": "intake@agency-b.example",
     "retention": "two years after registration", "fields": ["name", "email", "phone"]},
]


@pytest.fixture
def config(make_config):
    return make_config({"agencies": AGENCIES})


def outbox_files(config) -> list[Path]:
    folder = config.path(config.mail.outbox_dir)
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def link_in(path: Path, prefix: str) -> str:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    found = re.search(re.escape(prefix) + r"[A-Za-z0-9_\-.]+", text)
    assert found, f"no {prefix} link in {path.name}"
    return found.group(0)


def rejection(app_id: str = "1", **kwargs):
    """A rejection from yesterday: invitations are minted against the real clock."""
    return event(app_id, rejected_at=utcnow() - timedelta(days=1), **kwargs)


def send_invitations(config, store, *events, now=None):
    connector = FakeConnector(events=list(events) or [rejection("1")])
    report = run_cycle(config, store, {connector.name: connector},
                       transport=FileTransport(config.path(config.mail.outbox_dir)),
                       now=now or utcnow())
    assert report.sent == len(connector.events)
    return report


@pytest.fixture
def invitation(config, store):
    """(token, case_id) of a case whose rejection email went out through the pipeline."""
    send_invitations(config, store)
    link = link_in(outbox_files(config)[0], f"{config.relay.public_base_url}/r/")
    case = store.case_by_key("fake", "1")
    return link.rsplit("/", 1)[1], case.id


@pytest.fixture
def client(config, store):
    app = create_app(config, store, {})
    with TestClient(app, base_url=config.relay.public_base_url,
                    follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def text_hash_of(html: str) -> str:
    return re.search(r'name="text_sha256" value="([0-9a-f]{64})"', html).group(1)


def open_page(client, token: str, lang: str | None = None):
    """Follow the link like a browser: /r/{token} → cookie → /relay."""
    first = client.get(f"/r/{token}" + (f"?lang={lang}" if lang else ""))
    assert first.status_code == 303, first.text
    page = client.get(first.headers["location"])
    assert page.status_code == 200, page.text
    return page


def post(client, path: str, data: dict, origin: str = BASE, **headers):
    hdrs = {"origin": origin, **headers} if origin is not None else dict(headers)
    return client.post(path, data=data, headers=hdrs)
