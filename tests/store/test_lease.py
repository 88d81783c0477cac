"""The run lock dies with its holder (issue 13, point 3): a SIGKILLed holder's lock is taken
over at once on the same host, a foreign host's when its lease expires; a live holder's is
not, and the refusal names it; the heartbeat renews the lease; a lost lease stops the run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from relay_core.errors import LockedError
from relay_core.store import open_store, utcnow
from relay_core.store import tables as t
from relay_core.store.lease import Holder, host_id, pid_alive, process_start

HOLD = """
import sys, time
from relay_core.store import open_store
lock = open_store(sys.argv[1]).lock()
lock.__enter__()
print("held", flush=True)
time.sleep(120)
"""


def holder_row(store) -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(select(t.locks.c.holder)).scalar_one_or_none()


def test_a_sigkilled_holder_on_this_host_is_taken_over_at_once(store_url):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, store_url], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == "held"
        store = open_store(store_url)
        with pytest.raises(LockedError) as caught:     # alive: refused, and named
            with store.lock():
                pass
        assert f"pid {proc.pid}" in str(caught.value) and "since" in str(caught.value)
        assert caught.value.long_held is False
        proc.kill()
        proc.wait(10)
        started = time.monotonic()
        with store.lock() as lease:                     # gone: taken at once
            assert holder_row(store) == lease.holder.encode()
        assert time.monotonic() - started < 2
        assert holder_row(store) is None                # and released
    finally:
        proc.kill()
        proc.wait(10)


def test_a_zombie_or_reused_pid_is_not_a_live_holder():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)   # exited but not reaped: a zombie, which os.kill(pid, 0) still finds
    assert not pid_alive(child.pid, "")
    child.wait()
    me = os.getpid()
    assert pid_alive(me, process_start(me) or "")
    assert not pid_alive(me, "1")   # the same pid, started at another time: pid reuse


def test_a_foreign_holder_is_waited_for_until_its_lease_expires(store):
    now = utcnow()
    other = Holder("elsewhere/1", 4242, "99", now, "abcd").encode()
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(name="run", holder=other,
                                            expires_at=now + timedelta(minutes=2)))
    with pytest.raises(LockedError, match="host elsewhere, pid 4242 since"):
        with store.lock():
            pass
    with store.begin() as conn:
        conn.execute(update(t.locks).values(expires_at=now - timedelta(seconds=1)))
    with store.lock():
        assert holder_row(store) != other


def test_a_live_holder_of_over_an_hour_is_reported_as_possibly_hung(store):
    now = utcnow()
    other = Holder("elsewhere/1", 4242, "99", now - timedelta(hours=2), "abcd").encode()
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(name="run", holder=other,
                                            expires_at=now + timedelta(minutes=2)))
    with pytest.raises(LockedError, match="over an hour") as caught:
        with store.lock():
            pass
    assert caught.value.long_held


def test_an_older_versions_holder_of_a_dead_process_is_taken_over(store):
    """The previous version wrote host:pid:object-id with a one-hour lease."""
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(
            name="run", holder=f"{socket.gethostname()}:{dead.pid}:140234",
            expires_at=utcnow() + timedelta(hours=1)))
    with store.lock():
        pass


def test_the_heartbeat_renews_the_lease(store, store_url):
    ttl = timedelta(seconds=2)
    with store.lock(ttl=ttl) as lease:
        with store.engine.connect() as conn:
            first = conn.execute(select(t.locks.c.expires_at)).scalar_one()
        time.sleep(2.6)      # beats every 0.5 s; past the first TTL
        with store.engine.connect() as conn:
            later = conn.execute(select(t.locks.c.expires_at)).scalar_one()
        assert later > first
        assert later > utcnow()
        lease.ensure()       # still ours
        other = open_store(store_url)
        with pytest.raises(LockedError):   # a live holder past its first TTL keeps it
            with other.lock():
                pass


def test_a_lost_lease_stops_the_run(store):
    with store.lock(ttl=timedelta(seconds=2)) as lease:
        with store.begin() as conn:   # another run took it (this one stalled past TTL)
            conn.execute(update(t.locks).values(holder="1:2:3:feed@elsewhere/1"))
        assert lease.lost.wait(3)
        with pytest.raises(LockedError, match="lost the run lock"):
            lease.ensure()
    assert holder_row(store) == "1:2:3:feed@elsewhere/1"   # not ours to delete


def test_a_stalled_heartbeat_counts_as_lost(store):
    with store.lock(ttl=timedelta(seconds=2)) as lease:
        lease._stop.set()          # the heartbeat stops renewing (a stall)
        lease._thread.join()
        time.sleep(1.6)            # past 3/4 of the TTL: another run may take it any moment
        with pytest.raises(LockedError, match="lost"):
            lease.ensure()


def test_the_holder_fits_the_column_and_reads_back():
    holder = Holder.me(utcnow())
    text = holder.encode()
    assert len(text) <= 128
    back = Holder.parse(text)
    assert (back.host, back.pid, back.start, back.token) == (
        host_id(), os.getpid(), holder.start, holder.token)
    assert back.since == holder.since


def test_two_threads_racing_for_a_dead_holders_lock_one_wins(store_url):
    store = open_store(store_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(
            name="run", holder=Holder(host_id(), dead.pid, "", utcnow(), "dead").encode(),
            expires_at=utcnow() + timedelta(minutes=2)))
    stores = [open_store(store_url) for _ in range(4)]
    barrier, release = threading.Barrier(4), threading.Event()
    won, lost = [], []

    def attempt(s):
        barrier.wait()
        try:
            with s.lock():
                won.append(s)
                release.wait(10)
        except LockedError:
            lost.append(s)

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 10
    while len(lost) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    for th in threads:
        th.join()
    assert len(won) == 1 and len(lost) == 3
