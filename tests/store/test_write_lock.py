"""SQLite writers from several processes (`serve --workers`) and threads: a transaction that
reads before it writes must never fail with "database is locked" (it was an HTTP 500 on the
consent POST), and opening a connection does not wait for the writer."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from relay_core.store import open_store

ROUNDS = 150


def _writer(url: str, name: str, rounds: int, out: multiprocessing.Queue) -> None:
    store = open_store(url, upgrade=False)
    try:
        for i in range(rounds):
            with store.begin() as conn:
                # A read first, then the write: a deferred transaction's snapshot goes stale
                # when the other process commits in between, and SQLite refuses the upgrade.
                store.get_cursor(name)
                store.set_cursor(conn, "shared", f"{name}-{i}")
                store.set_cursor(conn, name, str(i))
        out.put("ok")
    except Exception as exc:   # the test reports what went wrong
        import traceback
        out.put(f"{type(exc).__name__}: {exc}" + traceback.format_exc()[-1500:])


def test_processes_never_see_database_locked(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    open_store(url).engine.dispose()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, f"p{i}", ROUNDS, out)) for i in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == ["ok"] * 3
    store = open_store(url, upgrade=False)
    assert [store.get_cursor(f"p{i}") for i in range(3)] == [str(ROUNDS - 1)] * 3


def test_threads_and_nested_transactions(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    store, other = open_store(url), open_store(url, upgrade=False)
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                with store.begin() as conn:
                    store.get_cursor("t")
                    store.set_cursor(conn, f"t{n}", str(i))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [store.get_cursor(f"t{n}") for n in range(4)] == ["49"] * 4
    # A read on another Store of the same file inside a transaction, in one thread, and a
    # new connection made meanwhile (its pragmas must not wait for the write lock).
    with store.begin() as outer:
        store.set_cursor(outer, "outer", "1")
        assert other.get_cursor("t0") == "49"
    assert other.get_cursor("outer") == "1"


pytestmark = pytest.mark.skipif(
    __import__("os").environ.get("CR_TEST_DATABASE", "sqlite") != "sqlite",
    reason="SQLite's write lock (PostgreSQL has row locks)")
