"""Greenhouse webhooks through the real FastAPI app: POST /webhooks/greenhouse/<source>."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from contract import Reply, attach
from fastapi.testclient import TestClient
from relay_core.connectors.greenhouse import Greenhouse

from relay_core.models import CaseState
from relay_core.web.app import create_app

SECRET = "test-webhook-secret"
URL = "/webhooks/greenhouse/gh"


@pytest.fixture
def setup(make_config, store, monkeypatch):
    monkeypatch.setenv("GH_TEST_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("GH_TEST_CLIENT_SECRET", "test-client-secret")
    monkeypatch.setenv("GH_TEST_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GH_VECTOR_SECRET", "1uSUju2H6AohOE7OQVaxeLT3O8Uxxuas")

    def make(secret_ref: str = "env:GH_TEST_WEBHOOK_SECRET", max_body: int = 1_000_000):
        config = make_config({"web": {"max_body_bytes": max_body}, "sources": [{
            "name": "gh", "type": "greenhouse", "mode": "both",
            "client_id": "env:GH_TEST_CLIENT_ID", "client_secret": "env:GH_TEST_CLIENT_SECRET",
            "user_id": 12345, "webhook_secret": secret_ref}]})
        connector = Greenhouse(config.sources[0], config, 0)
        adapter, _ = attach(connector)
        adapter.routes += [
            (lambda r: "auth.greenhouse.io" in r.url,
             lambda r: Reply(200, {"access_token": "<filtered>", "expires_in": 3600})),
            # the job's posts: the public title, once per job (cassettes/test_greenhouse)
            (lambda r: "/v3/job_posts" in r.url,
             lambda r: Reply(200, [{"id": 54321, "job_id": 371417, "title": "Product Designer",
                                    "language": "en", "internal": False, "live": True,
                                    "active": True}]))]
        connector.adapter = adapter
        return TestClient(create_app(config, store, {"gh": connector})), connector

    return make


def delivery(action: str = "reject_candidate", app_id: int = 265293, *,
             type_name: str = "We rejected them", name: str = "Hector") -> bytes:
    rejected_at = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"action": action, "payload": {"application": {
        "id": app_id, "rejected_at": rejected_at, "prospect": False,
        "status": "rejected" if action == "reject_candidate" else "active",
        "applied_at": "2026-08-01T00:00:00Z", "last_activity_at": rejected_at,
        "rejection_reason": {"id": 8, "name": "Lacking skill(s)/qualification(s)",
                             "type": {"id": 1, "name": type_name}},
        "current_stage": {"id": 2708728, "name": "Offer", "interviews": []},
        "candidate": {"id": 265788, "first_name": name, "last_name": "Porter",
                      "is_private": False, "can_email": True,
                      "email_addresses": [{"value": "hector.porter@example.com",
                                           "type": "personal"}]},
        "jobs": [{"id": 371417, "name": "Designer", "confidential": False}]}}},
        ensure_ascii=True).encode()


def headers(body: bytes, event_id: str = "evt-1", secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Signature": f"sha256 {digest}", "Greenhouse-Event-ID": event_id,
            "Content-Type": "application/json"}


def process(client: TestClient):
    """The inbox, processed (what `serve`'s processor thread does after each ack)."""
    return client.app.state.relay.inbox_processor.drain()


def test_valid_signature_is_stored(setup, store):
    client, connector = setup()
    body = delivery()
    response = client.post(URL, content=body, headers=headers(body))
    assert response.status_code == 200
    assert response.json() == {"status": "stored"}
    # acknowledged before any look-up: the ATS is asked only when the inbox is processed
    assert connector.adapter.requests == [] and store.case_by_key("gh", "265293") is None
    assert process(client).new_cases == 1
    case = store.case_by_key("gh", "265293")
    assert case is not None and case.state == CaseState.SCHEDULED.value
    # the payload carried everything but the job's public title: one look-up per job
    assert [r.url.split("?")[0].rsplit("/", 1)[-1] for r in connector.adapter.requests] == [
        "token", "job_posts"]
    assert case.job_title == "Product Designer"


def test_bad_signature_is_401_not_stored_not_logged(setup, store, caplog):
    client, _ = setup()
    body = delivery(name="Secretname")
    with caplog.at_level(logging.WARNING):
        response = client.post(URL, content=body, headers=headers(body, secret="wrong"))
        missing = client.post(URL, content=body, headers={"Greenhouse-Event-ID": "evt-2"})
    assert (response.status_code, missing.status_code) == (401, 401)
    assert process(client).processed == 0        # nothing reached the inbox
    assert store.case_by_key("gh", "265293") is None
    assert "Secretname" not in caplog.text and "hector" not in caplog.text.lower()


def test_signature_over_raw_bytes_not_reserialised_json(setup, store):
    client, _ = setup()
    # Greenhouse escapes HTML as \u003c…; re-serialising would change the bytes [S26a].
    body = delivery(name="<p>Hector</p>").replace(b"<p>", b"\\u003cp\\u003e")
    assert client.post(URL, content=body, headers=headers(body)).status_code == 200
    pretty = json.dumps(json.loads(body)).encode()
    assert client.post(URL, content=pretty, headers=headers(body, "evt-9")).status_code == 401


def test_ping_is_answered(setup):
    client, connector = setup()
    body = json.dumps({"action": "ping", "payload": {"web_hook_id": 1}}).encode()
    response = client.post(URL, content=body, headers=headers(body))
    assert response.status_code == 200 and response.json() == {"status": "stored"}
    report = process(client)
    assert (report.processed, report.ignored, report.new_cases) == (1, 1, 0)
    assert connector.adapter.requests == []


def test_redelivery_with_same_event_id_is_stored_once(setup, store):
    client, _ = setup()
    body = delivery()
    first = client.post(URL, content=body, headers=headers(body, "evt-same"))
    assert process(client).new_cases == 1
    second = client.post(URL, content=body, headers=headers(body, "evt-same"))
    assert first.json() == second.json() == {"status": "stored"}
    report = process(client)
    assert (report.processed, report.duplicates, report.new_cases) == (1, 1, 0)
    assert store.counts_by_state() == {CaseState.SCHEDULED.value: 1}


def test_unreject_cancels_the_scheduled_case(setup, store):
    client, _ = setup()
    body = delivery()
    client.post(URL, content=body, headers=headers(body, "evt-a"))
    undo = delivery("unreject_candidate")
    client.post(URL, content=undo, headers=headers(undo, "evt-b"))
    # both in one batch, in arrival order: the case is created, then cancelled
    report = process(client)
    assert (report.new_cases, report.cancelled) == (1, 1)
    assert store.case_by_key("gh", "265293").state == CaseState.CANCELLED.value


def test_withdrawal_is_stored_as_a_skip(setup, store):
    client, _ = setup()
    body = delivery(type_name="They rejected us")
    client.post(URL, content=body, headers=headers(body))
    process(client)
    case = store.case_by_key("gh", "265293")
    assert case.state == CaseState.SKIPPED.value and "withdrew" in case.reason


def test_oversized_body_is_413(setup, store):
    client, _ = setup(max_body=2000)
    body = delivery() + b" " * 3000
    response = client.post(URL, content=body, headers=headers(body))
    assert response.status_code == 413
    assert process(client).processed == 0


def test_published_signature_test_vector_through_the_app(setup):
    """Body, secret and signature from greenhouse-api-docs issue #276 [S26a]."""
    client, _ = setup(secret_ref="env:GH_VECTOR_SECRET")
    body = (b'{"action":"ping","payload":{"web_hook_id":4001693002,"endpoint_url":'
            b'"https://67e09e60.ngrok.io/webhooks","created_at":"2018-12-20T15:43:12Z",'
            b'"updated_at":"2018-12-27T09:40:14Z","name":"Job Post Create","event":'
            b'"Job Post Created","active":true,"content-type":"application/json"}}')
    sig = "sha256 395b1309fd37f0732d1ed11c15e03edd61b818918df6bf93be7c71bafb09c877"
    response = client.post(URL, content=body, headers={"Signature": sig})
    assert response.status_code == 200
    tampered = body.replace(b"4001693002", b"4001693003")
    assert client.post(URL, content=tampered, headers={"Signature": sig}).status_code == 401


def test_poll_only_source_has_no_webhook_endpoint(make_config, store, monkeypatch):
    monkeypatch.setenv("GH_TEST_CLIENT_SECRET", "x")
    config = make_config({"sources": [{"name": "gh", "type": "greenhouse", "mode": "poll",
                                       "client_id": "id", "user_id": 1,
                                       "client_secret": "env:GH_TEST_CLIENT_SECRET"}]})
    client = TestClient(create_app(config, store, {"gh": Greenhouse(config.sources[0],
                                                                     config, 0)}))
    assert client.post(URL, content=b"{}").status_code == 404


def at(body: bytes, rejected_at: datetime) -> bytes:
    """The delivery with another rejected_at (a later rejection of the same application)."""
    data = json.loads(body)
    data["payload"]["application"]["rejected_at"] = rejected_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(data).encode()


def test_reject_unreject_reject_again_reopens_once(setup, store):
    """State follows the ATS (issue 13): the second `reject_candidate`, with its later
    rejected_at, reopens the case the `unreject_candidate` cancelled; a redelivery of that
    rejection under a new event id (same rejected_at) changes nothing more."""
    client, _ = setup()
    first = at(delivery(), datetime.now(UTC) - timedelta(hours=3))
    client.post(URL, content=first, headers=headers(first, "evt-a"))
    assert process(client).new_cases == 1
    undo = delivery("unreject_candidate")
    client.post(URL, content=undo, headers=headers(undo, "evt-b"))
    assert process(client).cancelled == 1
    again = at(delivery(), datetime.now(UTC) - timedelta(hours=1))
    client.post(URL, content=again, headers=headers(again, "evt-c"))
    assert process(client).new_cases == 1
    case = store.case_by_key("gh", "265293")
    assert case.state == CaseState.SCHEDULED.value
    assert case.rejected_at.strftime("%H:%M:%S") == json.loads(again)["payload"][
        "application"]["rejected_at"][11:19]
    for event_id in ("evt-d", "evt-e"):     # the same rejection, delivered again
        response = client.post(URL, content=again, headers=headers(again, event_id))
        assert response.json() == {"status": "stored"} and process(client).new_cases == 0
    actions = [r["action"] for r in store.audit_trail(case.id)]
    assert actions.count("reopened") == 1


def test_reason_changed_to_a_withdrawal_cancels_the_pending_email(setup, store):
    client, _ = setup()
    body = delivery()
    client.post(URL, content=body, headers=headers(body, "evt-a"))
    assert process(client).new_cases == 1
    withdrew = delivery(type_name="They rejected us")
    client.post(URL, content=withdrew, headers=headers(withdrew, "evt-b"))
    assert process(client).new_cases == 0
    case = store.case_by_key("gh", "265293")
    assert case.state == CaseState.CANCELLED.value and "withdrawal" in case.reason
