"""Requests per poll against the loopback stand-ins of bench/connectors.py (counts, not
timings: the stand-ins' rate limits are off here), the expired-cursor restart, private
candidates, and applications the core already holds (issue 13 item 7, issue 14 items 1-2)."""

from __future__ import annotations

import importlib.util
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from contract import Reply, attach, pinned
from relay_core.connectors.lever import Lever

from relay_core.cycle.ingest import poll_source
from relay_core.cycle.report import SourceReport
from relay_core.errors import FatalError

_spec = importlib.util.spec_from_file_location(
    "bench_connectors", Path(__file__).resolve().parents[2] / "bench" / "connectors.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

BURST = timedelta(minutes=5)     # before the first poll: outside the 2-minute overlap


def greenhouse(api: bench.HarvestV3, base: str) -> bench.Greenhouse:
    connector = bench.greenhouse_connector(base)
    connector.limiter.limit = None
    return connector


def poll(connector, cursor=None):
    return bench._poll(connector, cursor)


@pytest.mark.parametrize("r", [1, 50, 499, 1200])
def test_greenhouse_first_poll_within_budget_with_private_candidates(r):
    api = bench.HarvestV3(limit=None)
    api.load(r, 0.1, rejected_at=datetime.now(UTC) - BURST, seed=r)
    with bench.serving(bench.harvest_handler(api)) as base:
        events, problems, _ = poll(greenhouse(api, base))
    assert len(events) == r and not problems
    assert api.requests <= math.ceil(r / 500) + 2 * math.ceil(r / 50) + 3
    private = {e.candidate_id for e in events if e.flags.private}
    assert private == {str(c) for c in api.private}
    assert all(not e.person.emails for e in events if e.flags.private)


def test_a_private_candidate_costs_no_more_than_one_extra_request():
    counts = {}
    for share in (0.0, 0.2):
        api = bench.HarvestV3(limit=None)
        api.load(1000, share, rejected_at=datetime.now(UTC) - BURST)
        with bench.serving(bench.harvest_handler(api)) as base:
            poll(greenhouse(api, base))
        counts[share] = (api.requests, len(api.private), api.forbidden)
    (plain, _, _), (with_private, private, forbidden) = counts[0.0], counts[0.2]
    assert private > 100 and with_private - plain <= private
    assert with_private <= plain and forbidden == 0      # asked with private=false: no 403


def test_a_server_that_refuses_private_batches_anyway_is_still_read_correctly():
    """If v3 answered 403 whatever the filter (UNCONFIRMED), the batch is split: more
    requests, the same events."""
    api = bench.HarvestV3(limit=None)
    api.load(100, 0.02, rejected_at=datetime.now(UTC) - BURST, seed=3)
    handler = bench.harvest_handler(api)
    original = handler.do_GET

    def refuse_whatever_the_filter(self):
        self.path = self.path.replace("private=false", "private=any")
        original(self)

    handler.do_GET = refuse_whatever_the_filter
    with bench.serving(handler) as base:
        events, problems, _ = poll(greenhouse(api, base))
    assert len(events) == 100 and not problems and api.forbidden > 0
    assert {e.candidate_id for e in events if e.flags.private} == {str(c) for c in api.private}


def test_a_poll_with_nothing_new_costs_at_most_three_requests_after_a_burst():
    api = bench.HarvestV3(limit=None)
    api.load(1200, 0.05, rejected_at=datetime.now(UTC) - BURST)
    held = bench.Held()
    with bench.serving(bench.harvest_handler(api)) as base:
        first = greenhouse(api, base)
        first.known = held.known
        events, _, cursor = poll(first)
        held.add(events)
        api.calls.clear()
        second = greenhouse(api, base)          # a new process: token and reasons again
        second.known = held.known
        again, _, _ = poll(second, cursor)
    assert again == [] and api.requests <= 3


def test_known_applications_are_not_looked_up_again_but_a_rerejection_is():
    api = bench.HarvestV3(limit=None)
    api.load(600, 0.0, rejected_at=datetime.now(UTC) - timedelta(seconds=30))   # in overlap
    held = bench.Held()
    with bench.serving(bench.harvest_handler(api)) as base:
        connector = greenhouse(api, base)
        connector.known = held.known
        events, _, cursor = poll(connector)
        held.add(events)
        rerejected = api.apps[7]
        rerejected["rejected_at"] = rerejected["updated_at"] = (
            datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        api.calls.clear()
        again, _, _ = poll(connector, cursor)
    assert api.calls["/v3/applications"] >= 2             # the overlap is listed again ...
    assert [e.application_id for e in again] == [str(rerejected["id"])]   # ... one looked up
    assert api.calls["/v3/candidates"] == 1 and connector.skipped_known == 599


def test_an_expired_cursor_lists_the_window_again_once_and_says_so(caplog):
    api = bench.HarvestV3(limit=None, expire_first=True)
    api.load(1200, 0.0, rejected_at=datetime.now(UTC) - BURST)
    with bench.serving(bench.harvest_handler(api)) as base:
        events, problems, cursor = poll(greenhouse(api, base))
    assert len(events) == 1200 and api.expired == 1 and cursor
    assert len(problems) == 1 and "listed again from its first page" in problems[0]
    assert "HTTP 422" in problems[0] and "@example.com" not in problems[0]
    assert "listing the window again" in caplog.text


def test_a_cursor_that_expires_again_ends_the_poll_without_a_cursor():
    api = bench.HarvestV3(limit=None, cursor_ttl=-1.0)     # every next-page link is stale
    api.load(1200, 0.0, rejected_at=datetime.now(UTC) - BURST)
    pages = []
    with bench.serving(bench.harvest_handler(api)) as base, \
            pytest.raises(FatalError, match="expired again"):
        pages.extend(greenhouse(api, base).poll(None))
    assert pages == [] and api.expired == 2 and api.calls["/v3/candidates"] == 0


@pytest.mark.parametrize("r", [1, 100, 101, 250])
def test_lever_poll_and_recheck_within_budget(r):
    api = bench.LeverV1(per_second=None)
    api.load(r, datetime.now(UTC) - BURST)
    with bench.serving(bench.lever_handler(api)) as base:
        connector = bench.lever_connector(base)
        connector.limiter.limit = None
        events, _, _ = poll(connector)
        states = connector.recheck_cases({e.application_id: e.candidate_id for e in events})
    assert len(events) == len(states) == r
    assert api.requests <= math.ceil(r / 100) + math.ceil(r / 50) + 3
    assert api.calls["/v1/opportunities/:id"] == 0


def test_lever_invalid_offset_token_lists_the_window_again(make_config, monkeypatch):
    monkeypatch.setenv("LEVER_TEST_KEY", "x")
    config = make_config({"sources": [{"name": "lever", "type": "lever",
                                       "api_key": "env:LEVER_TEST_KEY"}]})
    connector = Lever(config.sources[0], config, 0)
    pinned(connector, datetime(2026, 9, 1, 3, 0, tzinfo=UTC))
    adapter, _ = attach(connector)
    page1 = Reply(200, {"data": [], "next": "0.1.a", "hasNext": True})
    adapter.script += [page1, Reply(400, {"code": "BadRequest", "message":
                                          "Invalid offset token: Offset token is invalid "
                                          "for sort"}),
                       page1, Reply(200, {"data": [], "hasNext": False})]
    pages = list(connector.poll("2026-09-01T00:00:00Z"))
    assert not adapter.script and "HTTP 400" in str(pages[0].problems[0])
    assert pages[-1].cursor == "2026-09-01T03:00:00Z"


def test_ingest_tells_the_connector_what_it_holds(store, make_config, monkeypatch):
    """poll_source wires `Connector.known` to the store: a second poll over the same burst
    looks nothing up again."""
    monkeypatch.setenv("BENCH_GH_SECRET", "x")
    api = bench.HarvestV3(limit=None)
    api.load(120, 0.0, rejected_at=datetime.now(UTC) - timedelta(seconds=30))
    with bench.serving(bench.harvest_handler(api)) as base:
        config = make_config({"sources": [{
            "name": "gh", "type": "greenhouse", "mode": "poll", "client_id": "bench",
            "client_secret": "env:BENCH_GH_SECRET", "user_id": 1, "base_url": base,
            "auth_url": base}]})
        connector = bench.Greenhouse(config.sources[0], config, 0)
        connector.limiter.limit = None
        now = datetime.now(UTC)
        first = SourceReport("gh")
        poll_source(store, config, connector, now=now, report=first)
        api.calls.clear()
        second = SourceReport("gh")
        poll_source(store, config, connector, now=now, report=second)
    assert first.detected == 120 and second.detected == 0
    assert api.calls["/v3/candidates"] == 0 and connector.skipped_known == 120
