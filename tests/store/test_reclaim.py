"""Issue 14 item 6: a SQLite file stays proportional to its live data. New files are created
with auto_vacuum=INCREMENTAL and give the space of dropped bytes and deleted rows back; an older
file is converted by the daily purge's one VACUUM."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from relay_core.records.retention import purge
from relay_core.store import inbox, open_store, utcnow


def fill_inbox(store, n: int = 300, size: int = 64_000) -> None:
    now = utcnow() - timedelta(days=3)
    with store.begin() as conn:
        inbox.append(conn, [inbox.row_values("gh", {"signature": "x"}, bytes([i % 251]) * size,
                                             now) for i in range(n)])


def processed_all(store) -> None:
    when = utcnow() - timedelta(days=2)
    with store.begin() as conn:
        for row in inbox.pending(conn, utcnow(), limit=10_000):
            assert inbox.claim(conn, row.id, when, "stored")


def size(path) -> int:
    return path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size
                                  if path.with_name(path.name + "-wal").exists() else 0)


def test_a_new_file_shrinks_after_bodies_are_dropped_and_rows_purged(tmp_path, make_config):
    path = tmp_path / "relay.db"
    store = open_store(f"sqlite:///{path}")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2   # incremental
    fill_inbox(store)
    store.reclaim()
    full = size(path)
    assert full > 15_000_000
    processed_all(store)                   # processing drops each body
    assert store.reclaim() > 3000          # pages given back
    assert size(path) < full / 4
    report = purge(store, make_config(), now=utcnow())
    assert report.inbox_deleted == 300
    with store.connect() as conn:
        assert inbox.counts(conn) == {}
    assert size(path) < 2_000_000


def test_an_older_file_is_converted_by_the_daily_purge(tmp_path, make_config):
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)          # as a version before this one created it
    raw.execute("PRAGMA auto_vacuum=NONE")
    raw.execute("CREATE TABLE before_this_version (x INTEGER)")
    raw.commit()
    raw.close()
    store = open_store(f"sqlite:///{path}")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 0
    fill_inbox(store)
    processed_all(store)
    full = size(path)
    assert store.reclaim() == 0 and size(path) == full      # a cycle does not rewrite it
    purge(store, make_config(), now=utcnow())               # the daily purge does, once
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2
    assert size(path) < full / 4


def test_reclaim_is_a_no_op_on_postgresql(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (CR_TEST_DATABASE=postgresql)")
    assert store.reclaim(convert=True) == 0
