"""Issue 14 item 5: the faster sending path keeps its promises. Pages after the first are
built in a helper process while the page before is delivered; what it builds is what would
have been built in place, each mail goes once, and a helper that dies costs nothing."""

from __future__ import annotations

import os
import re
import signal

import pytest

from relay_core.cycle import building, sending
from relay_core.cycle.building import Builder, build_all
from relay_core.cycle.ingest import ingest
from relay_core.cycle.report import CycleReport
from relay_core.cycle.sending import plan_batch, send_due
from relay_core.errors import FatalError
from relay_core.rendering.emails import Renderer
from tests.cycle.test_exactly_once import NOW, Server, outbox_states, smtp_transport, state
from tests.fakes import FakeConnector, event
from tests.smtp import serving

BOUNDARY = re.compile(rb"===============\d+==")


@pytest.fixture
def smtp():
    handler = Server()
    with serving(handler):
        yield handler


def _jobs(store, config, n):
    ingest(store, config, [event(str(i), email=f"p{i}@example.com")
                           for i in range(n)], now=NOW, actor="test")
    return plan_batch(config, store.due_cases(NOW, limit=1000), NOW, b"k" * 32, []).jobs


def test_pages_after_the_first_are_built_ahead_and_each_mail_goes_once(
        make_config, store, smtp, monkeypatch):
    config = make_config()
    ingest(store, config, [event(str(i), email=f"p{i}@example.com") for i in range(7)],
           now=NOW, actor="test")
    monkeypatch.setattr(sending, "SEND_BATCH", 3)
    ahead = []
    submit = Builder.submit

    def spy(self, jobs, now, *, ahead_of):
        ahead.append(ahead_of)
        return submit(self, jobs, now, ahead=ahead_of)

    monkeypatch.setattr(Builder, "submit", lambda self, jobs, now, *, ahead: spy(
        self, jobs, now, ahead_of=ahead))
    report = CycleReport()
    send_due(store, config, {"fake": FakeConnector()}, Renderer(config),
             smtp_transport(smtp, connections=2), now=NOW, report=report)
    assert ahead == [False, True, True]          # the first page in place, then ahead
    assert sorted(smtp.stored) == sorted(f"p{i}@example.com" for i in range(7))
    assert report.sent == 7 and report.failed == 0
    assert set(outbox_states(store).values()) == {"sent"}
    assert [state(store, i) for i in range(7)] == ["sent"] * 7


def test_the_helper_builds_what_would_be_built_in_place(make_config, store):
    config = make_config()
    jobs = _jobs(store, config, 5)
    renderer = Renderer(config)
    with Builder(config, renderer) as builder:
        helper = builder.result(builder.submit(jobs, NOW, ahead=True), jobs, NOW)
        assert builder._helper is not None        # it did go to the helper process
    here = build_all(config, renderer, jobs, NOW)
    assert [(m.case_id, m.recipient, BOUNDARY.sub(b"B", m.data)) for m in helper] == \
        [(m.case_id, m.recipient, BOUNDARY.sub(b"B", m.data)) for m in here]
    assert all(m.data and not m.error for m in helper)


def test_a_helper_that_dies_costs_nothing_but_time(make_config, store):
    config = make_config()
    jobs = _jobs(store, config, 3)
    with Builder(config, Renderer(config)) as builder:
        builder.result(builder.submit(jobs[:1], NOW, ahead=True), jobs[:1], NOW)
        os.kill(builder._helper.pid, signal.SIGKILL)   # the helper is killed (OOM, say)
        builder._helper.wait()
        future = builder.submit(jobs, NOW, ahead=True)
        built = builder.result(future, jobs, NOW)
    assert [m.case_id for m in built] == [j.case.id for j in jobs]
    assert all(m.data and not m.error for m in built)


def test_a_mail_that_cannot_be_built_fails_its_case_and_the_rest_go(make_config, store, smtp,
                                                                     monkeypatch):
    config = make_config()
    ingest(store, config, [event(str(i), email=f"p{i}@example.com") for i in range(3)],
           now=NOW, actor="test")
    real = building.build_case_mail

    def broken(config, renderer, case, *args, **kwargs):
        if case.email == "p1@example.com":
            raise FatalError("to_name contains a line break; refusing to build the message")
        return real(config, renderer, case, *args, **kwargs)

    monkeypatch.setattr(building, "build_case_mail", broken)
    report = CycleReport()
    send_due(store, config, {"fake": FakeConnector()}, Renderer(config),
             smtp_transport(smtp, connections=2), now=NOW, report=report)
    assert sorted(smtp.stored) == ["p0@example.com", "p2@example.com"]
    assert [state(store, i) for i in range(3)] == ["sent", "failed", "sent"]
    assert "could not build the email" in store.case_by_key("fake", "1").reason
