import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError

from relay_core.errors import LockedError
from relay_core.models import CaseState
from relay_core.store import open_store, utcnow
from relay_core.store import tables as t
from relay_core.store.db import make_engine, migrate
from tests.fakes import event


def test_migrations_build_exactly_the_declared_tables(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert diff == []


def test_upgrading_an_older_database_keeps_its_data(store_url):
    engine = make_engine(store_url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(insert(t.source_cursors).values(source="hrmos", cursor="c1",
                                                     updated_at=utcnow()))
    engine.dispose()
    store = open_store(store_url)           # runs the remaining migrations
    with store.engine.connect() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    from alembic.script import ScriptDirectory

    from relay_core.store.db import alembic_config

    with store.engine.connect() as conn:
        assert head == ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
    assert store.get_cursor("hrmos") == "c1"


def test_one_case_per_application(store):
    now = utcnow()
    with store.begin() as conn:
        first = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                  now=now, actor="test")
        again = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                  now=now, actor="test")
        other_source = store.insert_case(conn, event("1", source="other"), email="a@example.com",
                                         language="ja", now=now, actor="test")
    assert first is not None and again is None and other_source is not None


def test_audit_log_is_append_only(store):
    with store.begin() as conn:
        case_id = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                    now=utcnow(), actor="test")
    for statement in (update(t.audit_log).values(reason="rewritten"), t.audit_log.delete()):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.begin() as conn:
                conn.execute(statement)
    assert [r["action"] for r in store.audit_trail(case_id)] == ["detected"]


def test_transition_is_conditional_and_audited(store):
    with store.begin() as conn:
        case_id = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                    now=utcnow(), actor="test")
        assert store.transition(conn, case_id, CaseState.SCHEDULED, actor="t", send_at=utcnow())
        assert store.transition(conn, case_id, CaseState.SENDING, actor="a",
                                allowed_from=[CaseState.SCHEDULED])
        # A second sender loses the race: nothing changes, no audit row.
        assert not store.transition(conn, case_id, CaseState.SENDING, actor="b",
                                    allowed_from=[CaseState.SCHEDULED])
    trail = store.audit_trail(case_id)
    assert [(r["from_state"], r["to_state"]) for r in trail] == [
        (None, "detected"), ("detected", "scheduled"), ("scheduled", "sending")]


def test_terminal_states_cannot_move(store):
    with store.begin() as conn:
        case_id = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                    now=utcnow(), actor="test")
        assert store.transition(conn, case_id, CaseState.SKIPPED, actor="t", reason="x")
        assert not store.transition(conn, case_id, CaseState.SCHEDULED, actor="t")


def test_run_lock_excludes_a_second_holder_and_is_released(store_url):
    a, b = open_store(store_url), open_store(store_url)
    with a.lock():
        with pytest.raises(LockedError, match="another career-relay run"):
            with b.lock():
                pass
    with b.lock():
        pass


def test_expired_lock_is_taken_over(store):
    from datetime import timedelta

    with store.begin() as conn:
        conn.execute(insert(t.locks).values(name="run", holder="crashed",
                                            expires_at=utcnow() - timedelta(minutes=1)))
    with store.lock():
        with store.engine.connect() as conn:
            holder = conn.execute(select(t.locks.c.holder)).scalar_one()
        assert holder != "crashed"


def test_concurrent_lock_attempts_only_one_wins(store_url):
    stores = [open_store(store_url) for _ in range(4)]
    barrier = threading.Barrier(4)
    winners, losers = [], []
    release = threading.Event()

    def attempt(s):
        barrier.wait()
        try:
            with s.lock():
                winners.append(s)
                release.wait(5)
        except LockedError:
            losers.append(s)

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for _ in range(100):
        if len(winners) + len(losers) == 4 or (winners and len(losers) == 3):
            break
        threading.Event().wait(0.05)
    release.set()
    for th in threads:
        th.join()
    assert len(winners) == 1 and len(losers) == 3
