"""Lever Data API v1 connector, replayed from hand-written cassettes (record_mode "none") in
cassettes/test_lever/ — see the README there for the documentation each follows. The HTTP path
of webhooks (through the FastAPI app) is in test_lever_webhooks.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract import HttpConnectorContract, ManualClock, Reply, attach, pinned
from relay_core.connectors.lever import DEFAULT_WITHDRAWAL_REASONS, Lever, categorize

from relay_core.contract.base import ApplicationStatus, Standing
from relay_core.cycle.eligibility import assess
from relay_core.errors import ConfigError, RetriableError, SignatureError
from relay_core.models import Category

CASSETTES = Path(__file__).parent / "cassettes" / "test_lever"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
CURSOR = "2026-09-01T00:00:00Z"            # minus 2 minutes: archived_at_start=1788220680000
API_KEY = "test-lever-api-key"
SIGNATURE_TOKEN = "test-lever-signature-token"
SETTINGS = {"api_key": "env:LEVER_TEST_KEY", "webhook_signature_token": "env:LEVER_TEST_TOKEN"}
WITHDRAWALS = {w.casefold() for w in DEFAULT_WITHDRAWAL_REASONS}


def oid(n: int) -> str:
    return f"250d8f03-738a-4bba-a671-8a3d7347{n:04d}"


@pytest.fixture(autouse=True)
def _secrets_in_env(monkeypatch):
    monkeypatch.setenv("LEVER_TEST_KEY", API_KEY)
    monkeypatch.setenv("LEVER_TEST_TOKEN", SIGNATURE_TOKEN)


@pytest.fixture
def build(make_config):
    def make(**overrides) -> tuple[Lever, ManualClock]:
        config = make_config({"sources": [{"name": "lever", "type": "lever",
                                           **SETTINGS, **overrides}]})
        connector = Lever(config.sources[0], config, 0)
        return connector, pinned(connector, NOW)

    return make


def sign(token: str, triggered_at: int, key: str = SIGNATURE_TOKEN) -> str:
    return hmac.new(key.encode(), f"{token}{triggered_at}".encode(), hashlib.sha256).hexdigest()


# --- polling ----------------------------------------------------------------------------------
@pytest.mark.vcr("poll_two_pages.yaml")
def test_poll_two_pages_every_mapping(build, make_config, vcr_cassette):
    connector, _ = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played
    # 2 listing pages + reasons + postings; whether a person is still active elsewhere is
    # asked once, at the re-check before sending (test_recheck_is_one_query_per_50_people)
    assert connector.request_count == 4
    assert [p.cursor for p in pages] == [None, "2026-09-01T03:00:00Z"]
    assert not [p for page in pages for p in page.problems]
    events = {e.application_id: e for p in pages for e in p.events}
    assert oid(4) not in events                   # hired: not a rejection, not an event

    taro = events[oid(1)]
    assert taro.category is Category.WE_REJECTED
    assert (taro.person.full_name, taro.person.emails) == (
        "山田 太郎", ["taro@example.com", "taro@work.example"])   # Lever's order kept
    assert (taro.job_title, taro.stage, taro.reason_text) == (
        "法人営業 (Tokyo)", "New applicant", "Underqualified")
    assert taro.candidate_id == "7f23e772-f2cb-4ebb-b33f-54b872990001"
    assert taro.rejected_at == datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
    assert "emails" not in taro.raw and "name" not in taro.raw and "phones" not in taro.raw
    assert events[oid(2)].category is Category.CANDIDATE_WITHDREW      # Withdrew
    assert events[oid(3)].category is Category.CANDIDATE_WITHDREW      # Offer declined
    assert events[oid(3)].job_title == "Backend Engineer"
    assert events[oid(5)].flags.anonymized
    assert not events[oid(6)].flags.can_email                           # contact.allowed false
    assert events[oid(7)].flags.agency_sourced                          # origin agency
    assert events[oid(8)].category is Category.OTHER and events[oid(8)].raw["archived"]
    assert events[oid(9)].category is Category.WE_REJECTED              # inactive reason
    secret = events[oid(10)]                        # a confidential posting: mailed by default
    assert secret.flags.confidential_job and not secret.flags.private
    assert all(e.flags.in_process_elsewhere is None for e in events.values())   # not asked
    bob = events[oid(11)].person.full_name
    assert "\r" not in bob and "\n" not in bob

    config = make_config()
    decisions = {k: assess(e, config, NOW) for k, e in events.items()}
    # whether Taro is still in process for job B is told by the re-check before sending
    assert decisions[oid(1)].eligible and decisions[oid(1)].email == "taro@example.com"
    assert "withdrew" in decisions[oid(2)].reason and "withdrew" in decisions[oid(3)].reason
    assert "anonymized" in decisions[oid(5)].reason
    assert "may not be emailed" in decisions[oid(6)].reason
    assert "agency" in decisions[oid(7)].reason
    assert not decisions[oid(8)].eligible
    assert decisions[oid(10)].eligible and decisions[oid(10)].invite
    skip = make_config({"eligibility": {"confidential_jobs": "skip"}})
    assert "confidential" in assess(secret, skip, NOW).reason
    assert "no valid email" in decisions[oid(12)].reason


@pytest.mark.vcr("poll_429_then_success.yaml")
def test_429_without_retry_after_backs_off_and_succeeds(build, vcr_cassette):
    connector, clock = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played and pages[-1].cursor == "2026-09-01T03:00:00Z"
    assert clock.sleeps                      # Lever documents no Retry-After: jittered backoff


@pytest.mark.vcr("poll_5xx_exhausted.yaml")
def test_5xx_exhausted_leaves_the_cursor(build, vcr_cassette):
    connector, _ = build()
    seen = []
    with pytest.raises(RetriableError, match="HTTP 503"):
        for page in connector.poll(CURSOR):
            seen.append(page.cursor)
    assert seen == [] and vcr_cassette.play_count == 3


def test_first_poll_looks_back_max_age_days_only(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(200, {"data": [], "hasNext": False}))
    list(connector.poll(None))
    url = adapter.api_requests()[0].url
    since = int(datetime(2026, 8, 18, 2, 58, tzinfo=UTC).timestamp() * 1000)
    assert f"archived_at_start={since}" in url and "confidentiality=all" in url
    assert "expand=applications&expand=contact" in url
    assert adapter.api_requests()[0].headers["Authorization"].startswith("Basic ")


def test_request_budget_for_r_rejections_poll_and_recheck(build):
    """Poll plus re-check ≤ ceil(R/100) + ceil(R/50) + 3: the listing pages, archive reasons
    and postings once, then at the re-check one query per 50 people (both states: still
    archived? active on another opportunity?)."""
    import math

    connector, _ = build()
    adapter, _ = attach(connector)
    opp = json.loads((CASSETTES / "poll_two_pages.yaml").read_text(encoding="utf-8").split(
        "string: '", 1)[1].split("'\n", 1)[0].replace("''", "'"))["data"][0]
    records = [dict(opp, id=f"o{i}", contact=dict(opp["contact"], id=f"c{i}"))
               for i in range(250)]
    empty = Reply(200, {"data": [], "hasNext": False})
    adapter.script += [Reply(200, {"data": records[:100], "next": "t1", "hasNext": True}),
                       Reply(200, {"data": records[100:200], "next": "t2", "hasNext": True}),
                       Reply(200, {"data": records[200:], "hasNext": False}),
                       Reply(200, {"data": [{"id": opp["archived"]["reason"],
                                             "text": "Underqualified",
                                             "type": "non-hired"}], "hasNext": False}),
                       empty]                                       # postings
    events = [e for p in connector.poll(CURSOR) for e in p.events]
    assert len(events) == 250 and not adapter.script
    assert connector.request_count == 5
    # the re-check: every opportunity of 50 people per query
    adapter.script += [Reply(200, {"data": records[i:i + 50], "hasNext": False})
                       for i in range(0, 250, 50)]
    states = connector.recheck_cases({e.application_id: e.candidate_id for e in events})
    assert {s.standing for s in states.values()} == {Standing.REJECTED} and not adapter.script
    budget = math.ceil(250 / 100) + math.ceil(250 / 50) + 3
    assert connector.request_count == 10 <= budget


# --- re-check, write-back, check -------------------------------------------------------------
EXPECTED_RECHECK = {     # each with the category and name of its archive reason now
    oid(1): ApplicationStatus.of(Category.WE_REJECTED, "Underqualified"),
    oid(2): ApplicationStatus.NOT_REJECTED,     # unarchived: back in process
    oid(3): ApplicationStatus.NOT_REJECTED,     # deleted
    # rejected, still active for another job
    oid(6): ApplicationStatus.of(Category.WE_REJECTED, "Timing").elsewhere(),
}


@pytest.mark.vcr("recheck.yaml")
def test_recheck_is_one_query_per_50_people(build, vcr_cassette):
    connector, _ = build()
    cases = {oid(n): f"7f23e772-f2cb-4ebb-b33f-54b87299{n:04d}" for n in (1, 2, 3, 6)}
    assert connector.recheck_cases(cases) == EXPECTED_RECHECK
    assert vcr_cassette.all_played and connector.request_count == 3   # + reasons, postings


@pytest.mark.vcr("recheck_without_contacts.yaml")
def test_recheck_of_cases_without_a_contact_reads_each_once(build, vcr_cassette):
    connector, _ = build()
    assert connector.recheck([oid(1), oid(2), oid(3), oid(6)]) == EXPECTED_RECHECK
    assert vcr_cassette.all_played


@pytest.mark.vcr("write_back.yaml")
def test_write_back_note_never_twice_and_tag(build, vcr_cassette):
    connector, _ = build(write_back="both")
    text = "Career Relay: rejection email with relay invitation sent"
    assert connector.annotate(oid(1), text)
    assert connector.annotate(oid(1), text)
    assert vcr_cassette.all_played                # one note POST, not two
    posts = [r for r in vcr_cassette.requests if r.method == "POST" and r.uri.endswith("notes")]
    assert len(posts) == 1 and json.loads(posts[0].body) == {"value": text}


def test_write_back_off_by_default(build):
    connector, _ = build()
    assert connector.annotate(oid(1), "x") is False and connector.request_count == 0


@pytest.mark.vcr("check.yaml")
def test_check_warns_about_confidential_access(build):
    connector, _ = build()
    results = {r.what.split(": ", 1)[1]: r for r in connector.check()}
    assert results["archive reasons"].ok and results["opportunities"].ok
    assert results["postings"].ok
    confidential = results["confidential opportunities"]
    assert not confidential.ok and "non-confidential" in confidential.detail
    assert "/webhooks/lever/lever" in results["webhook"].detail


@pytest.mark.vcr("check.yaml")
def test_check_accepts_a_key_without_confidential_access_when_told(build):
    connector, _ = build(confidentiality="non-confidential")
    results = {r.what.split(": ", 1)[1]: r for r in connector.check()}
    assert results["confidential opportunities"].ok
    assert "never polled" in results["confidential opportunities"].detail


# --- webhook signature (the delivery path is in test_lever_webhooks.py) ----------------------
def test_signature_follows_the_documented_recipe(build):
    connector, _ = build(webhook_signature_token="env:LEVER_VECTOR")
    import os
    os.environ["LEVER_VECTOR"] = "example-signature-token"
    try:
        connector.now = lambda: datetime.fromtimestamp(1431458021951 / 1000, UTC)
        body = json.dumps({"triggeredAt": 1431458021951, "event": "candidateHired", "data": {},
                           "token": "657fd5a0759c87d35660b096dbc388d1d31058869f08ce3f",
                           "signature": "43e709ca6589765b350facea43c6e20893c3802d59a62b4a5118c2"
                                        "d6c9a66b33"}).encode()
        assert connector.parse_webhook({}, body).reply == {"status": "ok"}
    finally:
        del os.environ["LEVER_VECTOR"]


def test_stale_or_tampered_deliveries_are_refused(build):
    connector, _ = build()
    at = int(NOW.timestamp() * 1000)
    good = {"event": "candidateArchiveChange", "data": {}, "token": "t" * 48,
            "triggeredAt": at, "signature": sign("t" * 48, at)}
    assert connector.parse_webhook({}, json.dumps(good).encode()).kind
    for bad in ({**good, "triggeredAt": at - 2 * 3600 * 1000,
                 "signature": sign("t" * 48, at - 2 * 3600 * 1000)},    # too old
                {**good, "token": "u" * 48},                             # token swapped
                {**good, "triggeredAt": str(at)},                        # not an integer
                {k: v for k, v in good.items() if k != "signature"}):
        with pytest.raises(SignatureError):
            connector.parse_webhook({}, json.dumps(bad).encode())


# --- translation tables and settings ---------------------------------------------------------
@pytest.mark.parametrize("reason,expected", [
    ({"type": "non-hired", "text": "Underqualified"}, Category.WE_REJECTED),
    ({"type": "non-hired", "text": "Position filled"}, Category.WE_REJECTED),
    ({"type": "non-hired", "text": "Withdrew"}, Category.CANDIDATE_WITHDREW),
    ({"type": "non-hired", "text": "Offer declined"}, Category.CANDIDATE_WITHDREW),
    ({"type": "non-hired", "text": " offer DECLINED "}, Category.CANDIDATE_WITHDREW),
    ({"type": "non-hired", "text": "辞退"}, Category.CANDIDATE_WITHDREW),
    ({"type": "hired", "text": "Hired"}, Category.HIRED),
    ({"type": "something-new", "text": "?"}, Category.OTHER),
    ({}, Category.OTHER),
])
def test_archive_reason_categories(reason, expected):
    assert categorize(reason, WITHDRAWALS) is expected


def test_withdrawal_reasons_are_configurable(build):
    connector, _ = build(withdrawal_reasons=["Went elsewhere", "3274b963-c37c"])
    assert categorize({"type": "non-hired", "text": "Went elsewhere"},
                      connector._withdrawals) is Category.CANDIDATE_WITHDREW
    assert categorize({"type": "non-hired", "text": "Withdrew"},
                      connector._withdrawals) is Category.WE_REJECTED
    assert categorize({"type": "non-hired", "text": "x"}, connector._withdrawals,
                      "3274B963-C37C") is Category.CANDIDATE_WITHDREW


def test_modes(build):
    with pytest.raises(ConfigError, match="webhook_signature_token is required"):
        build(mode="webhook", webhook_signature_token=None)
    connector, _ = build(webhook_signature_token=None)
    assert connector.polls and not connector.receives_webhooks
    connector, _ = build()
    assert connector.polls and connector.receives_webhooks


def test_cassettes_hold_no_credentials():
    for folder in (CASSETTES, CASSETTES.parent / "test_lever_webhooks"):
        for path in folder.glob("*.yaml"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"(?im)^\s*authorization:", text), path.name
            assert API_KEY not in text and SIGNATURE_TOKEN not in text, path.name
            assert "signatureToken" not in text and "Basic " not in text, path.name


# --- the shared contract ----------------------------------------------------------------------
class TestLeverContract(HttpConnectorContract):
    connector_class = Lever
    secret_keys = ["api_key", "webhook_signature_token"]
    invalid_settings = [({"mode": "sometimes"}, "mode"),
                        ({"base_url": "api.lever.co/v1"}, "base_url"),
                        ({"confidentiality": "some"}, "confidentiality"),
                        ({"write_back": "always"}, "write_back"),
                        ({"webhook_tolerance_seconds": 5}, "webhook_tolerance_seconds"),
                        ({"api_keys": "env:X"}, "api_keys")]

    def settings(self):
        return dict(SETTINGS)

    def empty_listing(self):
        return Reply(200, {"data": [], "hasNext": False})

    def listing_pages(self, count):
        return [Reply(200, {"data": [], "next": f"t{i}", "hasNext": True}) if i < count - 1
                else Reply(200, {"data": [], "hasNext": False}) for i in range(count)]

    def event_with_unknown_status(self, connector):
        connector._reasons.fill({"r1": {"text": "Brand new", "type": "on-hold"}})
        connector._postings.fill({})
        return connector._event({"id": "o1", "contact": "c1", "emails": ["a@example.com"],
                                 "archived": {"reason": "r1", "archivedAt": 1788224400000}})

    def webhook_delivery(self, connector, *, valid):
        at = int(time.time() * 1000)
        body = {"triggeredAt": at, "event": "candidateArchiveChange", "data": {},
                "token": "657fd5a0759c87d35660b096dbc388d1d31058869f08ce3f"}
        body["signature"] = sign(body["token"], at, SIGNATURE_TOKEN if valid else "wrong")
        return {"Content-Type": "application/json"}, json.dumps(body).encode()

    def forged_malformed_delivery(self, connector):
        at = int(time.time() * 1000)
        body = {"triggeredAt": at, "event": "candidateArchiveChange", "token": "t" * 48,
                "data": {"opportunityId": {"not": "an id"}}}
        body["signature"] = sign(body["token"], at, "wrong")
        return {"Content-Type": "application/json"}, json.dumps(body).encode()

    def secret_values(self):
        return [API_KEY, SIGNATURE_TOKEN]


def test_no_feedback_field_on_lever_and_the_old_confidential_key_is_harmless(build):
    """Lever keeps free text in profile forms, readable one opportunity at a time only
    (GET /opportunities/:id/forms): a request per candidate, so the key is refused."""
    with pytest.raises(ConfigError, match=r"sources\[0\]\.feedback_field.*one opportunity"):
        build(feedback_field="Candidate feedback")
    connector, _ = build(mail_confidential=False)      # configs from older releases still load
    assert connector.settings.mail_confidential is False
