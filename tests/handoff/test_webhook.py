"""The webhook channel against a real HTTP agency on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from relay_core.cycle.report import CycleReport
from relay_core.mail import FileTransport
from relay_core.records.handoff import channels, deliver
from relay_core.records.handoff.deliver import deliver_handoffs, handoff_status
from relay_core.store import tables as t
from tests.handoff.support import SECRET, T0, Agency, agency, consented_case

ROOT = Path(__file__).resolve().parents[2]


def setup(make_config, tmp_path, receiver_url: str, **extra):
    data = {"agencies": [agency("agency-a", url=receiver_url, **extra)]}
    return make_config(data), data


def handoff_row(store, case_id):
    with store.engine.connect() as conn:
        return conn.execute(select(t.handoffs).where(t.handoffs.c.case_id == case_id)).one()


def provision_count(store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(t.provision_records)).all())


def test_signed_delivery_fails_twice_then_is_accepted(store, make_config, tmp_path):
    with Agency(fail_first=2) as agent:
        config, _ = setup(make_config, tmp_path, agent.url)
        case_id = consented_case(store, config, "1", ["agency-a"],
                                 preferences={"desired_role": "営業企画"})
        transport = FileTransport(tmp_path / "outbox")
        first = deliver_handoffs(store, config, transport, now=T0)
        assert first.retrying == 1 and handoff_row(store, case_id).state == "retrying"
        # Not due yet: nothing is sent.
        assert deliver_handoffs(store, config, transport, now=T0).retrying == 0
        assert len(agent.requests) == 1
        deliver_handoffs(store, config, transport, now=T0 + timedelta(minutes=2))
        done = deliver_handoffs(store, config, transport, now=T0 + timedelta(hours=1))
        assert done.delivered == 1
    row = handoff_row(store, case_id)
    assert (row.state, row.attempts) == ("delivered", 3)
    keys = {r["headers"]["Idempotency-Key"] for r in agent.requests}
    bodies = {r["body"] for r in agent.requests}
    assert len(agent.requests) == 3 and len(keys) == 1 and len(bodies) == 1
    doc = next(iter(agent.accepted.values()))
    assert doc["type"] == "candidate.handoff" and doc["version"] == 1
    assert doc["candidate"] == {"name": "山田 太郎", "email": "cand1@example.com",
                                "job_title": "法人営業", "desired_role": "営業企画"}
    manifest = doc["manifest"]
    assert manifest["provider"] == {"legal_name": "株式会社サンプル",
                                    "address": "東京都千代田区丸の内1-1-1",
                                    "representative": "代表取締役 山田太郎"}
    assert "法人営業" in manifest["acquisition"] and manifest["consent_reference"].startswith(
        "consent-")
    assert doc["report_events_to"] == "https://relay.example.co.jp/agency/agency-a/events"
    with store.engine.connect() as conn:
        record = conn.execute(select(t.provision_records)).one()
    assert record.agency_id == "agency-a" and record.recipient_legal_name == "株式会社AGENCY-A"
    # The provenance the manifest carries is recorded as items too (issue 11, point 2).
    assert json.loads(record.items_json) == ["consent_date", "decision_date", "desired_role",
                                             "email", "job_title", "name"]
    assert record.candidate_ref == "fake/1 (candidate c1)"
    assert record.consent_reference == manifest["consent_reference"]
    trail = [r["action"] for r in store.audit_trail(case_id)]
    assert trail.count("handoff_retry") == 2 and trail.count("transfer") == 1


def test_document_matches_the_published_schema(store, make_config, tmp_path):
    schema = json.loads((ROOT / "docs" / "agency-handoff.schema.json").read_text())
    with Agency() as agent:
        config, _ = setup(make_config, tmp_path, agent.url)
        consented_case(store, config, "1", ["agency-a"])
        deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
    doc = next(iter(agent.accepted.values()))
    handoff_schema = schema["$defs"]["handoff"]
    assert set(handoff_schema["required"]) <= set(doc)
    assert set(doc) <= set(handoff_schema["properties"])
    assert set(doc["manifest"]) <= set(schema["$defs"]["manifest"]["properties"])


def test_the_agency_refuses_a_replayed_or_stale_request(store, make_config, tmp_path):
    with Agency() as agent:
        config, _ = setup(make_config, tmp_path, agent.url)
        consented_case(store, config, "1", ["agency-a"])
        deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
        captured = agent.requests[0]
        replay = requests.post(agent.url, data=captured["body"], headers={
            "X-Relay-Signature": captured["headers"]["X-Relay-Signature"],
            "Idempotency-Key": captured["headers"]["Idempotency-Key"]}, timeout=5)
        old = int(time.time()) - 3600
        stale = requests.post(agent.url, data=captured["body"], headers={
            "X-Relay-Signature": channels.sign(SECRET.encode(), captured["body"], old),
            "Idempotency-Key": "x"}, timeout=5)
        forged = requests.post(agent.url, data=captured["body"] + b" ", headers={
            "X-Relay-Signature": captured["headers"]["X-Relay-Signature"],
            "Idempotency-Key": "y"}, timeout=5)
    assert (replay.status_code, stale.status_code, forged.status_code) == (401, 401, 401)
    assert agent.refused == ["replay", "stale timestamp", "bad signature"]
    assert len(agent.accepted) == 1
    # Our own verifier agrees with the agency's.
    with pytest.raises(Exception, match="outside"):
        channels.verify_signature(SECRET.encode(),
                                  channels.sign(SECRET.encode(), b"{}", old), b"{}")
    assert channels.verify_signature(SECRET.encode(), channels.sign(
        SECRET.encode(), b"{}", int(time.time())), b"{}")


RESUME = """
import json, sys
from datetime import datetime
from pathlib import Path
from relay_core.config import parse_config
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.mail import FileTransport
from relay_core.store import open_store
data = json.loads(Path(sys.argv[1]).read_text())
config = parse_config(data, Path(sys.argv[1]).parent)
store = open_store(config.store_url)
out = deliver_handoffs(store, config, FileTransport(Path(sys.argv[1]).parent / "o"),
                       now=datetime.fromisoformat(sys.argv[2]))
print(json.dumps({"delivered": out.delivered, "retrying": out.retrying}))
"""


def test_a_restart_mid_retry_resumes_without_a_duplicate(store, make_config, tmp_path,
                                                          store_url):
    with Agency(fail_first=1) as agent:
        config, data = setup(make_config, tmp_path, agent.url)
        case_id = consented_case(store, config, "1", ["agency-a"])
        assert deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                                now=T0).retrying == 1
        store.engine.dispose()     # this process is done with the database
        spec = tmp_path / "config.json"
        spec.write_text(json.dumps({**data, "store": {"url": store_url},
                                    "company": config.company.model_dump()}))
        later = (T0 + timedelta(hours=1)).isoformat()
        run = subprocess.run([sys.executable, "-c", RESUME, str(spec), later], cwd=ROOT,
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout.strip().splitlines()[-1]) == {"delivered": 1,
                                                                   "retrying": 0}
        # And once more in yet another "process": nothing left to send.
        again = deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                                 now=T0 + timedelta(hours=2))
    assert again.delivered == 0
    assert len(agent.requests) == 2 and len(agent.accepted) == 1
    assert handoff_row(store, case_id).state == "delivered"
    assert provision_count(store) == 1


def test_a_crash_after_the_agency_accepted_resends_the_same_key(store, make_config, tmp_path,
                                                                 monkeypatch):
    with Agency() as agent:
        config, _ = setup(make_config, tmp_path, agent.url)
        case_id = consented_case(store, config, "1", ["agency-a"])
        real = deliver._record_delivery

        def crash(*args, **kwargs):
            raise KeyboardInterrupt("power cut after the agency answered 200")

        monkeypatch.setattr(deliver, "_record_delivery", crash)
        with pytest.raises(KeyboardInterrupt):
            deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
        assert handoff_row(store, case_id).state == "sending"
        assert provision_count(store) == 0
        monkeypatch.setattr(deliver, "_record_delivery", real)
        out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                               now=T0 + timedelta(minutes=1))
    assert out.delivered == 1
    assert len(agent.requests) == 2 and len(agent.accepted) == 1
    assert agent.requests[0]["headers"]["Idempotency-Key"] == \
        agent.requests[1]["headers"]["Idempotency-Key"]
    assert provision_count(store) == 1
    assert "handoff_resumed" in [r["action"] for r in store.audit_trail(case_id)]


def test_a_4xx_is_not_retried_and_shows_in_status(store, make_config, tmp_path):
    with Agency(fail_first=5, status=422) as agent:
        config, _ = setup(make_config, tmp_path, agent.url)
        case_id = consented_case(store, config, "1", ["agency-a"])
        report = CycleReport()
        out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0,
                               report=report)
        deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                         now=T0 + timedelta(days=1))
    assert out.dead == 1 and len(agent.requests) == 1
    assert handoff_row(store, case_id).state == "dead"
    assert "HTTP 422" in report.errors[0] and "cand1" not in report.errors[0]
    with store.engine.connect() as conn:
        status = handoff_status(conn)
    assert status["handoffs"] == {"dead": 1}
    assert status["dead"][0]["agency"] == "agency-a"
    assert provision_count(store) == 0


def test_5xx_until_the_limit_then_dead(store, make_config, tmp_path):
    with Agency(fail_first=10, status=500) as agent:
        config, _ = setup(make_config, tmp_path, agent.url, max_attempts=3)
        case_id = consented_case(store, config, "1", ["agency-a"])
        moment = T0
        for _ in range(5):
            deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=moment)
            moment += timedelta(hours=7)
    assert len(agent.requests) == 3
    assert handoff_row(store, case_id).state == "dead"


def test_network_errors_and_429_are_retried_with_backoff(store, make_config, tmp_path):
    config, _ = setup(make_config, tmp_path, "http://127.0.0.1:9/closed")
    case_id = consented_case(store, config, "1", ["agency-a"])
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
    row = handoff_row(store, case_id)
    assert out.retrying == 1 and row.state == "retrying"
    assert row.next_attempt_at == T0 + timedelta(minutes=1)
    assert "network error" in row.last_error
    assert channels.classify(429, {"Retry-After": "120"}).retry_after == timedelta(seconds=120)
    assert channels.next_attempt(T0, 20, None) == T0 + channels.BACKOFF_CAP
