"""The webhook inbox (issue 14): a delivery is committed before its 200, many concurrent
deliveries share commits and are all kept, processing after the ack is crash-safe and
idempotent, and the inbox keeps no body once a delivery is processed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from test_greenhouse_webhooks import URL, delivery, headers, process
from test_greenhouse_webhooks import setup as gh_setup

from relay_core.cycle.webhooks import process_inbox
from relay_core.models import CaseState
from relay_core.store import inbox
from relay_core.store import tables as t

setup = gh_setup       # the Greenhouse app fixture of test_greenhouse_webhooks.py


def person(app_id: int, **kwargs) -> bytes:
    """A rejection of its own candidate (one address each: no once-per-person skip)."""
    return delivery(app_id=app_id, **kwargs).replace(b"hector.porter@",
                                                     f"p{app_id}@".encode())


def rows(store) -> list:
    with store.connect() as conn:     # a connection of its own: what is committed
        return list(conn.execute(select(t.webhook_inbox).order_by(t.webhook_inbox.c.id)))


def test_acknowledged_delivery_is_committed_before_the_200_and_body_dropped_after(setup,
                                                                                   store):
    client, _ = setup()
    body = delivery()
    assert client.post(URL, content=body, headers=headers(body, "evt-d")).status_code == 200
    [row] = rows(store)
    assert row.body == body and row.processed_at is None and row.source == "gh"
    assert "signature" in row.headers.lower() and "evt-d" in row.headers
    assert process(client).new_cases == 1
    [row] = rows(store)
    assert row.body is None and row.headers is None and row.outcome == "stored"
    assert (row.event_id, row.kind) == ("evt-d", "reject_candidate")
    assert "Hector" not in repr(inbox.pending)      # the row type hides body and headers
    assert "Hector" not in repr(inbox.InboxRow(1, "gh", row.received_at, 0, {}, body))


def test_crash_before_processing_is_processed_at_next_start(setup, store):
    """The first app stores and is never processed (killed); a fresh one processes it once."""
    first, _ = setup()
    for n, app_id in enumerate((1001, 1002, 1003)):
        body = person(app_id)
        assert first.post(URL, content=body, headers=headers(body, f"evt-{n}")).status_code \
            == 200
    assert store.counts_by_state() == {}
    restarted, _ = setup()
    processor = restarted.app.state.relay.inbox_processor
    processor.start()                       # what `serve` does at start
    try:
        for _ in range(200):
            if store.counts_by_state().get(CaseState.SCHEDULED.value) == 3:
                break
            processor.wake.wait(0.05)
    finally:
        processor.stop()
    assert store.counts_by_state() == {CaseState.SCHEDULED.value: 3}
    assert process(first).processed == 0    # claimed once: nothing left for anyone else
    assert {r.outcome for r in rows(store)} == {"stored"}


def test_a_row_claimed_by_another_processor_is_not_ingested_twice(setup, store):
    client, _ = setup()
    body = delivery()
    client.post(URL, content=body, headers=headers(body, "evt-c"))
    with store.connect() as conn:
        [row] = inbox.pending(conn, rows(store)[0].received_at.replace(year=2100))
    with store.begin() as conn:
        assert inbox.claim(conn, row.id, row.received_at, "stored")
        assert not inbox.claim(conn, row.id, row.received_at, "stored")
    assert process(client).processed == 0 and store.counts_by_state() == {}


def test_concurrent_deliveries_are_all_stored_in_group_commits(setup, store):
    client, _ = setup()
    app = client.app
    n = 300

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            bodies = [person(5000 + i) for i in range(n)]
            replies = await asyncio.gather(*(
                http.post(URL, content=b, headers=headers(b, f"evt-burst-{i}"))
                for i, b in enumerate(bodies)))
        return [r.status_code for r in replies]

    assert asyncio.run(burst()) == [200] * n
    stored = rows(store)
    assert len(stored) == n and len({r.event_id for r in stored}) == 1   # not yet processed
    writer = app.state.relay.inbox_writer
    assert 1 <= writer.commits < n          # grouped: fewer commits than deliveries
    report = process(client)
    assert (report.processed, report.new_cases) == (n, n)
    assert store.counts_by_state() == {CaseState.SCHEDULED.value: n}


def test_processing_the_same_deliveries_gives_the_same_cases_as_ingesting_them(setup, store):
    """What the old in-request path did (parse_webhook, then ingest) vs the inbox."""
    from relay_core.cycle.ingest import ingest
    from relay_core.store import cases, utcnow
    client, connector = setup()
    bodies = [person(7001), person(7002, type_name="They rejected us")]
    direct = [connector.parse_webhook(headers(b), b).events[0] for b in bodies]
    with store.connect() as conn:    # the old path, in a transaction that is rolled back
        transaction = conn.begin()
        ingest(store, client.app.state.relay.config, direct, now=utcnow(), actor="webhook:gh",
               conn=conn)
        old = [cases.by_key(conn, "gh", a) for a in ("7001", "7002")]
        transaction.rollback()
    for i, b in enumerate(bodies):
        client.post(URL, content=b, headers=headers(b, f"evt-s{i}"))
    process(client)
    via_inbox = [store.case_by_key("gh", a) for a in ("7001", "7002")]
    for new, before in zip(via_inbox, old, strict=True):
        assert (new.state, new.reason, new.email, new.job_title, new.language) == (
            before.state, before.reason, before.email, before.job_title, before.language)


def test_an_unavailable_ats_is_retried_later(setup, store):
    from relay_core.errors import RetriableError
    client, connector = setup()
    body = delivery()
    client.post(URL, content=body, headers=headers(body, "evt-r"))

    def down(*_a, **_k):
        raise RetriableError("greenhouse: 503")
    connector.translate_webhook = down
    report = process(client)
    assert (report.retry_later, report.processed) == (1, 0)
    [row] = rows(store)
    assert row.attempts == 1 and row.next_attempt_at is not None and row.body == body
    del connector.translate_webhook
    later = row.next_attempt_at
    from relay_core.cycle.webhooks import process_inbox as run
    relay = client.app.state.relay
    assert run(relay.store, relay.config, relay.connectors, now=later).new_cases == 1


def test_purge_deletes_processed_rows_and_blanks_stale_ones(setup, store):
    client, _ = setup()
    for i in range(2):
        body = person(8000 + i)
        client.post(URL, content=body, headers=headers(body, f"evt-p{i}"))
    relay = client.app.state.relay
    process_inbox(relay.store, relay.config, relay.connectors, limit=1)
    [done, waiting] = rows(store)
    with store.begin() as conn:
        assert inbox.purge(conn, done.processed_at.replace(year=2100),
                           waiting.received_at) == (1, 0)
    with store.begin() as conn:
        assert inbox.purge(conn, done.processed_at, waiting.received_at.replace(year=2100)) \
            == (0, 1)
    [row] = rows(store)
    assert row.body is None and row.outcome == "purged unprocessed"


@pytest.mark.parametrize("n", [1])
def test_poll_only_connector_rows_are_not_processed(n, setup, store):
    """A row whose source is no longer configured is closed, not retried forever."""
    client, _ = setup()
    body = delivery()
    client.post(URL, content=body, headers=headers(body, "evt-x"))
    relay = client.app.state.relay
    report = process_inbox(relay.store, relay.config, {})
    assert (report.processed, report.unusable) == (n, n)
    assert rows(store)[0].outcome == "no such source"


def test_processing_takes_small_batches_while_deliveries_keep_coming(setup, store,
                                                                     monkeypatch):
    """Acks go first (issue 14 item 3): during a burst a processing transaction holds the
    write lock for a few rows only; once the deliveries stop it takes full batches."""
    from relay_core.cycle import webhooks
    from relay_core.web import inbox as web_inbox
    client, _ = setup()
    for i in range(12):
        body = person(8100 + i)
        client.post(URL, content=body, headers=headers(body, f"evt-p{i}"))
    processor = client.app.state.relay.inbox_processor
    sizes: list[int] = []
    real_batch = webhooks._process_batch
    monkeypatch.setattr(webhooks, "_process_batch",
                        lambda st, cf, cn, batch, *a: (sizes.append(len(batch)),
                                                       real_batch(st, cf, cn, batch, *a)))
    processor.writer.last_append = web_inbox.time.monotonic()     # a delivery just came
    assert processor.drain().processed == 12
    assert sizes == [web_inbox.DURING_BURST] * 3
    for i in range(12):
        body = person(8200 + i)
        client.post(URL, content=body, headers=headers(body, f"evt-q{i}"))
    sizes.clear()
    processor.writer.last_append -= web_inbox.QUIET + 1           # and then none for a while
    assert processor.drain().processed == 12
    assert sizes == [12]


def test_an_ack_waits_for_a_writer_holding_the_lock_and_is_then_stored(setup, store):
    """The group commit queues on the store's write lock with every other writer: a delivery
    arriving while a long transaction writes is stored once that ends, not refused."""
    import threading
    import time
    client, _ = setup()
    held, release = threading.Event(), threading.Event()

    def long_transaction():
        with store.begin() as conn:
            conn.execute(select(t.webhook_inbox.c.id)).all()
            inbox.append(conn, [])
            held.set()
            release.wait(5)

    thread = threading.Thread(target=long_transaction)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    body = person(8301)
    started = time.monotonic()
    assert client.post(URL, content=body, headers=headers(body, "evt-w")).status_code == 200
    thread.join()
    assert time.monotonic() - started >= 0.25 or store.engine.dialect.name != "sqlite"
    assert [r.event_id for r in rows(store)] == [None] and rows(store)[0].body == body
