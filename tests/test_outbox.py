"""Outbox delivery over real SMTP: parallel connections, retries, refusals, interruptions."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from tenacity import wait_none

from relay_core.config import Smtp
from relay_core.cycle.ingest import ingest
from relay_core.cycle.outbox import deliver_outbox, recover_interrupted
from relay_core.cycle.report import CycleReport
from relay_core.cycle.sending import prepare_batch
from relay_core.mail.transports import SmtpTransport
from relay_core.rendering.emails import Renderer
from relay_core.store import tables as t
from tests.fakes import event
from tests.smtp import serving

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)


class Recorder:
    def __init__(self):
        self.messages, self.sessions = [], set()
        self.refuse: set[str] = set()
        self.defer_first = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.defer_first > 0:
            self.defer_first -= 1
            return "451 4.3.0 try again later"
        self.sessions.add(id(session))
        self.messages.append((envelope.rcpt_tos[0], envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    handler = Recorder()
    with serving(handler):
        yield handler


def queue(store, config, n, **kw):
    events = [event(str(i), email=f"p{i}@example.com") for i in range(n)]
    ingest(store, config, events, now=NOW, actor="test")
    report = CycleReport()
    prepare_batch(store, config, Renderer(config), store.due_cases(NOW, limit=1000), NOW,
                  b"k" * 32, report)
    return report


def transport(server, connections=4, retries=0):
    return SmtpTransport(Smtp(host="127.0.0.1", port=server.port, security="none",
                              connections=connections, retries=retries), wait=wait_none())


def test_parallel_connections_deliver_each_message_once(make_config, store, smtp_server):
    config = make_config()
    queue(store, config, 40)
    report = CycleReport()
    deliver_outbox(store, transport(smtp_server, connections=4), now=NOW, report=report)
    assert report.sent == 40
    assert sorted(to for to, _ in smtp_server.messages) == sorted(
        f"p{i}@example.com" for i in range(40))
    assert 1 < len(smtp_server.sessions) <= 4          # reused connections, in parallel
    assert store.counts_by_state() == {"sent": 40}
    with store.engine.connect() as conn:
        assert conn.execute(select(t.outbox.c.message).where(
            t.outbox.c.message.is_not(None))).first() is None   # bytes dropped once sent


def test_deferred_message_waits_and_refused_address_is_suppressed(make_config, store,
                                                                   smtp_server):
    config = make_config()
    queue(store, config, 3)
    smtp_server.refuse = {"p1@example.com"}
    smtp_server.defer_first = 1
    report = CycleReport()
    deliver_outbox(store, transport(smtp_server, connections=1), now=NOW, report=report)
    assert (report.sent, report.retry_later, report.failed) == (1, 1, 1)
    assert store.case_by_key("fake", "1").state == "failed"
    # The deferred one goes out on a later cycle, once its retry time has come.
    later = CycleReport()
    deliver_outbox(store, transport(smtp_server), now=NOW.replace(hour=3), report=later)
    assert later.sent == 1
    # The refused address is never scheduled again.
    again = ingest(store, config, [event("9", email="p1@example.com")], now=NOW, actor="t")
    assert "suppressed" in next(iter(again.skip_reasons))


def test_server_down_keeps_everything_queued(make_config, store):
    config = make_config()
    queue(store, config, 3)
    report = CycleReport()
    dead = SmtpTransport(Smtp(host="127.0.0.1", port=1, security="none", retries=0),
                         wait=wait_none())
    deliver_outbox(store, dead, now=NOW, report=report)
    assert report.sent == 0 and report.retry_later == 3
    assert store.counts_by_state() == {"sending": 3}
    with store.engine.connect() as conn:
        assert set(conn.scalars(select(t.outbox.c.state))) == {"pending"}


def test_a_row_left_sending_by_an_older_version_is_ambiguous_not_resent(make_config, store,
                                                                         smtp_server):
    """A 0006 process's `sending` row may have been anywhere up to the server's answer, and
    its claimer is unknown: ambiguous (never silently resent), shown with how to check."""
    config = make_config()
    queue(store, config, 2)
    with store.begin() as conn:   # as if the process died after claiming
        conn.execute(update(t.outbox).values(state="sending"))
    assert recover_interrupted(store, transport(smtp_server), NOW).ambiguous == 2
    report = CycleReport()
    deliver_outbox(store, transport(smtp_server), now=NOW, report=report)
    assert report.sent == 0 and smtp_server.messages == []
    case = store.case_by_key("fake", "0")
    assert case.state == "ambiguous" and "server's log" in case.reason


def test_point_9_max_per_day_defers_the_excess_to_the_next_day(make_config, store,
                                                              smtp_server):
    """Issue 11, point 9: `mail.smtp.max_per_day` lets at most that many messages out in any
    24 hours; the rest wait, in order, for the next day."""
    from datetime import timedelta

    from relay_core.mail.transports import make_transport
    from relay_core.store import utcnow

    config = make_config({"mail": {"transport": "smtp", "smtp": {
        "host": "127.0.0.1", "port": smtp_server.port, "security": "none", "retries": 0,
        "max_per_day": 2}}})
    assert make_transport(config).max_per_day == 2
    queue(store, config, 5)
    now = utcnow()
    days = []
    for moment in (now, now + timedelta(hours=1), now + timedelta(hours=25),
                   now + timedelta(hours=49)):
        report = CycleReport()
        deliver_outbox(store, make_transport(config), now=moment, report=report)
        days.append((report.sent, report.deferred))
    assert days == [(2, 3), (0, 0), (2, 1), (1, 0)]
    assert sorted(to for to, _ in smtp_server.messages) == sorted(
        f"p{i}@example.com" for i in range(5))
    assert len(smtp_server.messages) == 5           # each once
    with store.engine.connect() as conn:
        attempts = list(conn.scalars(select(t.outbox.c.attempts)))
    assert attempts == [1] * 5                      # a deferral is not an attempt


def test_point_9_the_deferral_is_visible_until_it_goes(make_config, store, smtp_server):
    from relay_core.store import utcnow

    config = make_config()
    queue(store, config, 3)
    limited = SmtpTransport(Smtp(host="127.0.0.1", port=smtp_server.port, security="none",
                                 retries=0, max_per_day=1), wait=wait_none())
    report = CycleReport()
    now = utcnow()
    deliver_outbox(store, limited, now=now, report=report)
    assert (report.sent, report.deferred) == (1, 2)
    with store.engine.connect() as conn:
        waiting = conn.execute(select(t.outbox).where(t.outbox.c.state == "pending")).all()
    assert len(waiting) == 2
    assert all("max_per_day (1) reached" in w.last_error for w in waiting)
    assert all(w.next_attempt_at > now for w in waiting)
    assert store.counts_by_state() == {"sent": 1, "sending": 2}
