"""HERP Hire API v1 connector, replayed from hand-written cassettes (record_mode "none") in
cassettes/test_herp/ — see the README there for the documentation each follows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from contract import HttpConnectorContract, ManualClock, Reply, attach, pinned
from relay_core.connectors.herp import Herp, categorize
from relay_core.connectors.http import RateLimiter

from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.eligibility import assess
from relay_core.errors import RetriableError
from relay_core.models import Category

CASSETTES = Path(__file__).parent / "cassettes" / "test_herp"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)      # 12:00 JST
CURSOR = "2026-09-01"                              # minus the 1-day overlap: 2026-08-31
API_KEY = "test-herp-api-key"
SETTINGS = {"api_key": "env:HERP_TEST_KEY"}


def cid(n: int) -> str:
    return f"459ba99c-8f28-4744-bac1-3686940{n:05d}"


@pytest.fixture(autouse=True)
def _secrets_in_env(monkeypatch):
    monkeypatch.setenv("HERP_TEST_KEY", API_KEY)


@pytest.fixture
def build(make_config):
    def make(**overrides) -> tuple[Herp, ManualClock]:
        config = make_config({"sources": [{"name": "herp", "type": "herp",
                                           **SETTINGS, **overrides}]})
        connector = Herp(config.sources[0], config, 0)
        return connector, pinned(connector, NOW)

    return make


@pytest.mark.vcr("poll_two_pages.yaml")
def test_poll_two_pages_every_mapping(build, make_config, vcr_cassette):
    connector, _ = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played and connector.request_count == 3
    assert [p.cursor for p in pages] == [None, None, "2026-09-01"]
    problems = [str(p) for page in pages for p in page.problems]
    assert problems == [f"herp candidacy {cid(8)}: terminatedAt is missing or not a timestamp"]
    events = {e.application_id: e for p in pages for e in p.events}

    taro = events[cid(1)]
    assert taro.category is Category.WE_REJECTED
    assert (taro.person.full_name, taro.person.emails) == ("山田 太郎",
                                                           ["taro.yamada@example.com"])
    assert (taro.job_title, taro.stage, taro.reason_id) == ("法人営業", "一次面接", "rejected")
    assert taro.rejected_at == datetime(2026, 9, 1, 1, 30, tzinfo=UTC)
    assert "email" not in taro.raw and "name" not in taro.raw
    assert events[cid(2)].flags.agency_sourced                       # channel.type agent
    assert events[cid(3)].category is Category.CANDIDATE_WITHDREW    # refusedByCandidate
    assert events[cid(4)].category is Category.HIRED
    assert events[cid(4)].job_title == "バックエンドエンジニア"
    assert events[cid(5)].category is Category.OTHER                 # notEligible
    assert events[cid(6)].category is Category.OTHER and events[cid(6)].raw
    assert events[cid(7)].person.emails == [] and events[cid(7)].stage == "書類選考"
    assert "\n" not in events[cid(9)].person.full_name

    config = make_config()
    decisions = {k: assess(e, config, NOW) for k, e in events.items()}
    assert decisions[cid(1)].eligible and decisions[cid(1)].email == "taro.yamada@example.com"
    assert "agency" in decisions[cid(2)].reason
    assert "withdrew" in decisions[cid(3)].reason and "hired" in decisions[cid(4)].reason
    assert not decisions[cid(5)].eligible and not decisions[cid(6)].eligible
    assert "no valid email" in decisions[cid(7)].reason


@pytest.mark.vcr("poll_429_then_success.yaml")
def test_429_waits_for_x_reset_at(build, vcr_cassette):
    connector, clock = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played and pages[-1].cursor == "2026-09-01"
    assert 60 in [round(s) for s in clock.sleeps]    # x-reset-at 12:01 JST, now 12:00 JST


@pytest.mark.vcr("poll_5xx_exhausted.yaml")
def test_5xx_exhausted_leaves_the_cursor(build, vcr_cassette):
    connector, _ = build()
    with pytest.raises(RetriableError, match="HTTP 500"):
        list(connector.poll(CURSOR))
    assert vcr_cassette.play_count == 3


def test_first_poll_looks_back_max_age_days_only(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(200, {"candidacies": [], "hasNextPage": False}))
    list(connector.poll(None))
    request = adapter.api_requests()[0]
    assert "stepUpdatedAtFrom=2026-08-17" in request.url       # 14 days + 1 day overlap, JST
    assert "limit" not in request.url and "per_page" not in request.url
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_limiter_reads_herps_headers():
    """x-remaining-request at 0 blocks until x-reset-at, an ISO time (connectors/http.py)."""
    clock = ManualClock()
    limiter = RateLimiter(Herp.rate_limit, sleep=clock.sleep, clock=clock, wall=NOW.timestamp)
    response = requests.Response()
    response.status_code = 200
    response.headers.update({"x-remaining-request": "0",
                             "x-reset-at": (NOW + timedelta(seconds=42)).isoformat()})
    limiter.observe(response)
    limiter.acquire()
    assert clock.sleeps == [42]


@pytest.mark.vcr("recheck.yaml")
def test_recheck(build, vcr_cassette):
    connector, _ = build()
    assert connector.recheck([cid(1), cid(2), cid(3)]) == {
        cid(1): ApplicationStatus.of(Category.WE_REJECTED),
        cid(2): ApplicationStatus.of(Category.OTHER),   # back in process
        cid(3): ApplicationStatus.NOT_REJECTED}         # deleted
    assert vcr_cassette.all_played


def test_recheck_without_status_is_unknown(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(200, {"id": cid(1), "name": "x"}))
    assert connector.recheck([cid(1)]) == {cid(1): ApplicationStatus.UNKNOWN}


@pytest.mark.vcr("check.yaml")
def test_check(build):
    connector, _ = build()
    (result,) = connector.check()
    assert result.ok and "99 of 100" in result.detail


def test_check_names_the_credential_problem(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(401, {"message": "Unauthorized"}))
    (result,) = connector.check()
    assert not result.ok and "APIキー" in result.detail and API_KEY not in result.detail


@pytest.mark.parametrize("status,reason,expected", [
    ("terminated", "rejected", Category.WE_REJECTED),
    ("terminated", "refusedByCandidate", Category.CANDIDATE_WITHDREW),
    ("terminated", "hired", Category.HIRED),
    ("terminated", "notEligible", Category.OTHER),
    ("terminated", "brandNew", Category.OTHER),
    ("terminated", None, Category.OTHER),
    ("active", None, Category.OTHER),
    ("active", "rejected", Category.OTHER),
])
def test_termination_categories(status, reason, expected):
    assert categorize(status, reason) is expected


def test_cassettes_hold_no_credentials():
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?im)^\s*authorization:", text), path.name
        assert API_KEY not in text and "Bearer " not in text, path.name


class TestHerpContract(HttpConnectorContract):
    connector_class = Herp
    secret_keys = ["api_key"]
    invalid_settings = [({"base_url": "public-api.herp.cloud"}, "base_url"),
                        ({"overlap_days": 0}, "overlap_days"),
                        ({"apikey": "env:X"}, "apikey")]

    def settings(self):
        return dict(SETTINGS)

    def empty_listing(self):
        return Reply(200, {"candidacies": [], "hasNextPage": False})

    def listing_pages(self, count):
        return [Reply(200, {"candidacies": [], "hasNextPage": i < count - 1})
                for i in range(count)]

    def event_with_unknown_status(self, connector):
        connector._requisitions.fill({})
        return connector._event({"id": "x", "status": "archivedSomehow", "name": "A",
                                 "terminatedAt": "2026-09-01T10:00:00+09:00"})

    def secret_values(self):
        return [API_KEY]
