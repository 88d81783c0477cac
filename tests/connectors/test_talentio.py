"""Talentio API v1 connector, replayed from hand-written cassettes (record_mode "none") in
cassettes/test_talentio/ — see the README there for the documentation each follows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract import HttpConnectorContract, ManualClock, Reply, attach, pinned
from relay_core.connectors.talentio import Talentio, categorize

from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.eligibility import assess
from relay_core.errors import RetriableError
from relay_core.models import Category

CASSETTES = Path(__file__).parent / "cassettes" / "test_talentio"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
CURSOR = "2026-09-01T00:00:00Z"           # minus 1 day overlap, minus 365 days: 2025-08-31
TOKEN = "test-talentio-token"
SETTINGS = {"api_token": "env:TALENTIO_TEST_TOKEN"}


def tid(n: int) -> str:
    return str(5225000 + n)


@pytest.fixture(autouse=True)
def _secrets_in_env(monkeypatch):
    monkeypatch.setenv("TALENTIO_TEST_TOKEN", TOKEN)


@pytest.fixture
def build(make_config):
    def make(**overrides) -> tuple[Talentio, ManualClock]:
        config = make_config({"sources": [{"name": "talentio", "type": "talentio",
                                           **SETTINGS, **overrides}]})
        connector = Talentio(config.sources[0], config, 0)
        return connector, pinned(connector, NOW)

    return make


@pytest.mark.vcr("poll_two_pages.yaml")
def test_poll_two_pages_only_finalized_fails_since_the_cursor(build, make_config,
                                                              vcr_cassette):
    connector, _ = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played and connector.request_count == 2
    assert [p.cursor for p in pages] == [None, None, "2026-09-01T03:00:00Z"]
    problems = [str(p) for page in pages for p in page.problems]
    assert problems == [f"talentio candidate {tid(7)}: neither the failed stage nor the "
                        "candidate has a fixedAt"]
    events = {e.application_id: e for p in pages for e in p.events}
    assert tid(4) not in events and tid(10) not in events     # finalized before the cursor

    taro = events[tid(1)]
    assert taro.category is Category.WE_REJECTED
    assert (taro.person.last_name, taro.person.first_name, taro.person.full_name) == (
        "山田", "太郎", "山田 太郎")
    assert taro.person.emails == ["taro.yamada@example.com"]
    assert (taro.job_title, taro.stage) == ("【12】法人営業", "面接 (2)")
    assert taro.rejected_at == datetime(2026, 8, 31, 15, 0, tzinfo=UTC)   # 00:00 JST
    assert "email" not in taro.raw and "lastName" not in taro.raw
    assert events[tid(2)].flags.agency_sourced                 # channelType agentCompany
    assert events[tid(3)].category is Category.OTHER           # verdict never finalized
    assert events[tid(5)].person.emails == []
    assert events[tid(6)].flags.agency_sourced                 # channelType agent
    assert "\n" not in events[tid(6)].person.full_name

    config = make_config()
    decisions = {k: assess(e, config, NOW) for k, e in events.items()}
    assert decisions[tid(1)].eligible and decisions[tid(1)].email == "taro.yamada@example.com"
    assert "agency" in decisions[tid(2)].reason
    assert not decisions[tid(3)].eligible
    assert "no valid email" in decisions[tid(5)].reason


@pytest.mark.vcr("poll_429_then_success.yaml")
def test_429_and_an_empty_quota_wait_for_x_reset(build, vcr_cassette):
    connector, clock = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played and pages[-1].cursor == "2026-09-01T03:00:00Z"
    assert round(sum(clock.sleeps)) == 1153          # X-Remaining 0, X-Reset 1153 (seconds)


@pytest.mark.vcr("poll_5xx_exhausted.yaml")
def test_5xx_exhausted_leaves_the_cursor(build, vcr_cassette):
    connector, _ = build()
    with pytest.raises(RetriableError, match="HTTP 500"):
        list(connector.poll(CURSOR))
    assert vcr_cassette.play_count == 3


def test_first_poll_and_rate_limit_setting(build):
    connector, _ = build(requests_per_hour=5000)
    assert connector.limiter.limit.requests == 5000
    adapter, _ = attach(connector)
    adapter.script.append(Reply(200, []))
    list(connector.poll(None))
    request = adapter.api_requests()[0]
    assert "status=fail" in request.url and "appliedAtFrom=2025-08-17" in request.url
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.vcr("recheck.yaml")
def test_recheck(build, vcr_cassette):
    connector, _ = build()
    assert connector.recheck([tid(1), tid(8), tid(3), tid(99)]) == {
        tid(1): ApplicationStatus.of(Category.WE_REJECTED),
        tid(8): ApplicationStatus.of(Category.CANDIDATE_WITHDREW),  # reject = 辞退: never mailed
        tid(3): ApplicationStatus.of(Category.OTHER),   # fail not finalized
        tid(99): ApplicationStatus.NOT_REJECTED}        # deleted
    assert vcr_cassette.all_played


@pytest.mark.vcr("check.yaml")
def test_check(build):
    connector, _ = build()
    (result,) = connector.check()
    assert result.ok and "999 requests left" in result.detail


def test_check_403_says_what_to_do(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(403, {"message": "Forbidden"}))
    (result,) = connector.check()
    assert not result.ok and "administrator" in result.detail


@pytest.mark.parametrize("status,finalized,expected", [
    ("fail", True, Category.WE_REJECTED),
    ("fail", False, Category.OTHER),              # an evaluator's verdict, not decided
    ("reject", True, Category.CANDIDATE_WITHDREW),  # 辞退
    ("reject", False, Category.CANDIDATE_WITHDREW),
    ("pass", False, Category.HIRED),
    ("ongoing", False, Category.OTHER),
    ("poolActive", False, Category.OTHER),
    ("poolInactive", False, Category.OTHER),
    ("somethingNew", True, Category.OTHER),
])
def test_status_categories(status, finalized, expected):
    assert categorize(status, finalized) is expected


def test_reject_is_never_mailed(build, make_config):
    connector, _ = build()
    event = connector._event({"id": 1, "status": "reject", "email": "a@example.com",
                              "fixedAt": "2026-09-01T00:00:00+09:00",
                              "stages": [{"type": "interview", "step": 1, "status": "fail",
                                          "fixedAt": "2026-09-01T00:00:00+09:00"}]})
    assert event.category is Category.CANDIDATE_WITHDREW
    assert "withdrew" in assess(event, make_config(), NOW).reason


def test_cassettes_hold_no_credentials():
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?im)^\s*authorization:", text), path.name
        assert TOKEN not in text and "Bearer " not in text, path.name


class TestTalentioContract(HttpConnectorContract):
    connector_class = Talentio
    secret_keys = ["api_token"]
    invalid_settings = [({"base_url": "talentio.com"}, "base_url"),
                        ({"requests_per_hour": 10}, "requests_per_hour"),
                        ({"applied_within_days": 1}, "applied_within_days"),
                        ({"token": "env:X"}, "token")]

    def settings(self):
        return dict(SETTINGS)

    def listing_pages(self, count):
        full = [{"id": i, "status": "fail", "stages": [],
                 "fixedAt": "2020-01-01T00:00:00+09:00"} for i in range(100)]
        return [Reply(200, full, {"X-Total": str(100 * count - 1)}) for _ in range(count - 1)
                ] + [Reply(200, full[:99])]

    def event_with_unknown_status(self, connector):
        return connector._event({"id": 1, "status": "archived", "email": "a@example.com",
                                 "fixedAt": "2026-09-01T00:00:00+09:00", "stages": []})

    def secret_values(self):
        return [TOKEN]
