"""Lever `candidateArchiveChange` webhooks through the real FastAPI app:
POST /webhooks/lever/<source>. The opportunity fetch each delivery triggers is replayed from
cassettes/test_lever_webhooks/ (hand-written; see the README there)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from relay_core.connectors.lever import Lever

from relay_core.models import CaseState
from relay_core.web.app import create_app

CASSETTES = Path(__file__).parent / "cassettes" / "test_lever_webhooks"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
AT = int(NOW.timestamp() * 1000)
TOKEN_KEY = "test-lever-signature-token"
URL = "/webhooks/lever/lever"
OPP = "250d8f03-738a-4bba-a671-8a3d73470001"


@pytest.fixture
def setup(make_config, store, monkeypatch):
    monkeypatch.setenv("LEVER_TEST_KEY", "test-lever-api-key")
    monkeypatch.setenv("LEVER_TEST_TOKEN", TOKEN_KEY)
    monkeypatch.setattr("relay_core.web.webhooks.utcnow", lambda: NOW)
    monkeypatch.setattr("relay_core.cycle.webhooks.utcnow", lambda: NOW)
    config = make_config({"sources": [{
        "name": "lever", "type": "lever", "api_key": "env:LEVER_TEST_KEY",
        "webhook_signature_token": "env:LEVER_TEST_TOKEN"}]})
    connector = Lever(config.sources[0], config, 0)
    connector.now = lambda: NOW
    return TestClient(create_app(config, store, {"lever": connector})), connector


def delivery(token: str, to_archived: bool | None, *, key: str = TOKEN_KEY,
             at: int = AT) -> bytes:
    archived = {"archivedAt": AT - 7_200_000, "reason": "63dd55b2-a99f-4e7b-985f-22c7bf80ab42"}
    data = {} if to_archived is None else {
        "opportunityId": OPP, "candidateId": OPP,
        "contactId": "7f23e772-f2cb-4ebb-b33f-54b872990001",
        "fromArchived": None if to_archived else archived,
        "toArchived": archived if to_archived else None}
    signature = hmac.new(key.encode(), f"{token}{at}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"triggeredAt": at, "event": "candidateArchiveChange", "data": data,
                       "token": token, "signature": signature}).encode()


HEADERS = {"Content-Type": "application/json", "User-Agent": "Lever-Webhooks"}


def process(client: TestClient):
    """The inbox, processed (what `serve`'s processor thread does after each ack)."""
    return client.app.state.relay.inbox_processor.drain()


@pytest.mark.vcr("archive_then_unarchive.yaml")
def test_archive_is_stored_redelivery_deduplicated_unarchive_cancels(setup, store,
                                                                      vcr_cassette):
    client, connector = setup
    archive = delivery("a" * 48, True)
    response = client.post(URL, content=archive, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored"} and connector.request_count == 0
    report = process(client)
    assert (report.new_cases, report.cancelled) == (1, 0)
    case = store.case_by_key("lever", OPP)
    assert case.state == CaseState.SCHEDULED.value and case.email == "taro@example.com"

    again = client.post(URL, content=archive, headers=HEADERS)    # Lever retries a delivery
    assert again.json() == {"status": "stored"} and process(client).duplicates == 1

    client.post(URL, content=delivery("b" * 48, False), headers=HEADERS)
    assert process(client).cancelled == 1
    assert store.case_by_key("lever", OPP).state == CaseState.CANCELLED.value
    assert vcr_cassette.all_played                 # 3 opportunity fetches + reasons + postings


def test_test_ping_is_acknowledged_without_api_calls(setup):
    client, connector = setup
    response = client.post(URL, content=delivery("p" * 48, None), headers=HEADERS)
    assert response.status_code == 200 and response.json() == {"status": "stored"}
    assert process(client).ignored == 1 and connector.request_count == 0


def test_bad_signature_is_401_not_stored_not_logged(setup, store, caplog):
    client, connector = setup
    with caplog.at_level(logging.WARNING):
        wrong = client.post(URL, content=delivery("c" * 48, True, key="wrong"), headers=HEADERS)
        stale = client.post(URL, content=delivery("d" * 48, True, at=AT - 86_400_000),
                            headers=HEADERS)
    assert wrong.status_code == 401 and stale.status_code == 401
    assert process(client).processed == 0
    assert store.case_by_key("lever", OPP) is None and connector.request_count == 0
    assert OPP not in caplog.text and TOKEN_KEY not in caplog.text


def test_not_json_is_400_and_unknown_source_404(setup):
    client, _ = setup
    assert client.post(URL, content=b"not json", headers=HEADERS).status_code == 400
    assert client.post("/webhooks/lever/other", content=delivery("e" * 48, None),
                       headers=HEADERS).status_code == 404
    assert client.post("/webhooks/greenhouse/lever", content=delivery("f" * 48, None),
                       headers=HEADERS).status_code == 404


def test_other_events_are_acknowledged_and_ignored(setup):
    client, connector = setup
    body = json.loads(delivery("g" * 48, True))
    body["event"] = "candidateStageChange"
    response = client.post(URL, content=json.dumps(body).encode(), headers=HEADERS)
    assert response.json() == {"status": "stored"}
    assert process(client).ignored == 1 and connector.request_count == 0


@pytest.mark.vcr("archive_unarchive_archive_again.yaml")
def test_archived_again_after_an_unarchive_reopens_the_case(setup, store, vcr_cassette):
    """State follows the ATS (issue 13): the unarchive cancels the pending email; archiving
    the opportunity again (a later archivedAt) reopens the case with the new rejection time."""
    client, _ = setup
    client.post(URL, content=delivery("a" * 48, True), headers=HEADERS)
    assert process(client).new_cases == 1
    first = store.case_by_key("lever", OPP)
    client.post(URL, content=delivery("b" * 48, False), headers=HEADERS)
    assert process(client).cancelled == 1
    again = client.post(URL, content=delivery("c" * 48, True), headers=HEADERS)
    assert again.json() == {"status": "stored"}
    done = process(client)
    assert (done.new_cases, done.cancelled) == (1, 0)
    case = store.case_by_key("lever", OPP)
    assert case.id == first.id and case.state == CaseState.SCHEDULED.value
    assert case.rejected_at > first.rejected_at
    assert [r["action"] for r in store.audit_trail(case.id)].count("reopened") == 1
    assert vcr_cassette.all_played
