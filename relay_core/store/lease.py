"""The run lock as a lease that dies with its holder.

One row in `locks` per lock name. Its `holder` says who holds it (host, pid, the process's
start time, when it took the lock, a random token) and `expires_at` how long the lease lasts
without renewal: `TTL`, two minutes. While the run works, a heartbeat thread renews it every
TTL/4 on its own connection. Another run takes the lock over when

- the holder is on this host and its process is gone (`os.kill(pid, 0)`, and the start time
  in /proc tells a reused pid from the holder): at once, so a SIGKILLed or restarted run never
  blocks the next one;
- the holder is on another host and its lease has expired: within TTL of its death.

Times come from the database's clock on PostgreSQL, so hosts with skewed clocks agree on when
a lease expires. Every change of holder is a compare-and-set on the old holder, so of two runs
taking over a dead holder's lock at once, one wins.

Why not a PostgreSQL advisory lock: it lives in one server session, which a connection pooler
in transaction mode (PgBouncer) does not keep, and a session orphaned by a vanished machine
lingers until TCP keepalive notices; the lease row works the same on SQLite and PostgreSQL,
through poolers, and `status` can show who holds it.

If renewal fails (the database is unreachable, or another run took the lease because this
one stalled past TTL), the lease is *lost*: `Lease.lost` is set and `Lease.ensure()` raises
LockedError. The sender asks before every message (cycle/control.py), so a run that lost its
lease hands over nothing more.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from relay_core.errors import LockedError
from relay_core.store import tables as t
from relay_core.store.tables import utcnow

log = logging.getLogger("career_relay.lock")

TTL = timedelta(minutes=2)
HOST_LEN = 64         # `holder` is 128 wide: pid, start, since and token take at most 49
LONG_HOLD = timedelta(hours=1)   # a live holder this old is reported as possibly hung


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), '' for a
    zombie (dead but not yet reaped), None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except FileNotFoundError:
        return ""
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()   # the name in () may hold spaces
    if not fields or fields[0] in ("Z", "X"):
        return ""
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start: str) -> bool:
    """Whether process `pid` still exists and is the one that started at `start`."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass   # exists, another user's
    now_start = process_start(pid)
    if now_start == "":
        return False
    return not (start and now_start and now_start != start)


def host_id() -> str:
    """This machine as the lock sees it: the host name plus the pid namespace, so two
    containers that share a host name still never judge each other's pids."""
    try:
        ns = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        ns = ""
    return (f"{socket.gethostname()}/{ns}" if ns else socket.gethostname())[:HOST_LEN]


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    start: str            # clock ticks since boot, "" when unknown
    since: datetime | None
    token: str

    @classmethod
    def me(cls, now: datetime) -> Holder:
        return cls(host_id(), os.getpid(), process_start(os.getpid()) or "",
                   now.replace(microsecond=0), secrets.token_hex(4))

    def encode(self) -> str:
        since = int(self.since.timestamp()) if self.since else 0
        return f"{self.pid}:{self.start}:{since}:{self.token}@{self.host}"

    @classmethod
    def parse(cls, text: str) -> Holder:
        """Also reads the older `host:pid:object-id` holders, so an upgrade takes over a
        lock left by the previous version's crashed run."""
        head, at, host = text.partition("@")
        parts = head.split(":")
        if at and len(parts) == 4 and parts[0].isdigit():
            since = (datetime.fromtimestamp(int(parts[2]), UTC)
                     if parts[2].isdigit() and int(parts[2]) else None)
            return cls(host, int(parts[0]), parts[1], since, parts[3])
        old = text.split(":")
        if len(old) == 3 and old[1].isdigit():
            return cls(old[0], int(old[1]), "", None, old[2])
        return cls(text, 0, "", None, "")

    def gone(self) -> bool:
        """Known to be dead: on this host and its process no longer exists."""
        here = host_id() if "/" in self.host else socket.gethostname()  # older holders
        return self.host == here and not pid_alive(self.pid, self.start)

    @property
    def host_name(self) -> str:
        """The host without its pid namespace."""
        return self.host.split("/")[0]

    def describe(self) -> str:
        since = f" since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"host {self.host_name}, pid {self.pid}{since}"

    def stale(self, expires_at: datetime, now: datetime) -> str:
        """Why this holder's lock may be taken over ("" while it holds): the one judgement of
        `acquire` and `lock_view`."""
        if self.gone():
            return "its process is gone"
        return "its lease expired" if expires_at < now else ""


def db_now(conn) -> datetime:
    """The database's clock on PostgreSQL (one clock for every host), ours on SQLite."""
    if conn.dialect.name == "postgresql":
        return conn.exec_driver_sql("SELECT now()").scalar_one().astimezone(UTC)
    return utcnow()


class Lease:
    """A held run lock. `lost` is set when renewing it failed; `ensure()` raises then."""

    def __init__(self, engine: Engine, name: str, holder: Holder, ttl: timedelta):
        self.engine, self.name, self.holder, self.ttl = engine, name, holder, ttl
        self.lost = threading.Event()
        self._encoded = holder.encode()
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, {self.holder.describe()}, lost={self.lost.is_set()})"

    def ensure(self) -> None:
        """Raise LockedError unless the lease is certainly still ours: the heartbeat has not
        failed, and the last renewal is recent enough that nobody may have taken it over."""
        if not self.lost.is_set() and time.monotonic() - self._renewed > (
                self.ttl.total_seconds() * 0.75):
            self.lost.set()   # the heartbeat stalled: another run may take the lock any moment
        if self.lost.is_set():
            raise LockedError(f"this run lost the {self.name} lock (it could not renew it in "
                              "time); it stops before handing over anything more")

    def renew(self) -> bool:
        """Extend the lease; False (and `lost`) when it is no longer ours."""
        try:
            with self.engine.begin() as conn:
                now = db_now(conn)
                ours = conn.execute(update(t.locks).where(
                    t.locks.c.name == self.name, t.locks.c.holder == self._encoded)
                    .values(expires_at=now + self.ttl)).rowcount == 1
        except SQLAlchemyError as exc:
            log.warning("could not renew the %s lock (%s)", self.name, type(exc).__name__)
            ours = time.monotonic() - self._renewed < self.ttl.total_seconds() * 0.75
            if ours:
                return True   # try again at the next beat while the lease still holds
        if ours:
            self._renewed = time.monotonic()
        else:
            log.error("lost the %s lock; stopping before sending more", self.name)
            self.lost.set()
        return ours

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        every = self.ttl.total_seconds() / 4
        while not self._stop.wait(every):
            if not self.renew():
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self.engine.begin() as conn:
                conn.execute(t.locks.delete().where(t.locks.c.name == self.name,
                                                    t.locks.c.holder == self._encoded))
        except SQLAlchemyError as exc:   # the lease lapses by itself within TTL
            log.warning("could not release the %s lock (%s); it lapses within %d s",
                        self.name, type(exc).__name__, self.ttl.total_seconds())


def acquire(engine: Engine, name: str, ttl: timedelta = TTL) -> Lease:
    """Take the lock or raise LockedError naming the live holder and since when."""
    for _ in range(3):   # a row deleted between our insert and our look: try again
        with engine.begin() as conn:
            now = db_now(conn)
            holder = Holder.me(now)
            mine = holder.encode()
            try:
                with conn.begin_nested():
                    conn.execute(insert(t.locks).values(name=name, holder=mine,
                                                        expires_at=now + ttl))
                return _started(Lease(engine, name, holder, ttl))
            except IntegrityError:
                pass
            row = conn.execute(select(t.locks.c.holder, t.locks.c.expires_at).where(
                t.locks.c.name == name)).first()
            if row is None:
                continue
            other = Holder.parse(row.holder)
            why = other.stale(row.expires_at, now)
            if not why:
                raise _held(name, other, now)
            taken = conn.execute(update(t.locks).where(
                t.locks.c.name == name, t.locks.c.holder == row.holder)
                .values(holder=mine, expires_at=now + ttl)).rowcount == 1
            if taken:
                log.warning("took over the %s lock from %s (%s)", name, other.describe(), why)
                return _started(Lease(engine, name, holder, ttl))
    raise LockedError(f"the {name} lock changes hands too fast to take; try again")


@dataclass(frozen=True)
class LockView:
    """Who holds a lock, for `status`: never the holder's token (whoever knows the exact holder
    text could release or renew the lease as if it were that run)."""
    host: str                  # without the pid namespace
    pid: int
    since: datetime | None
    lease_until: datetime
    stale: str                 # "" while the holder runs; else why the next run takes it over


def lock_view(conn: Connection, name: str = "run") -> LockView | None:
    """The lock's holder as `acquire` would judge it now, or None when nobody holds it."""
    row = conn.execute(select(t.locks.c.holder, t.locks.c.expires_at).where(
        t.locks.c.name == name)).first()
    if row is None:
        return None
    holder = Holder.parse(row.holder)
    return LockView(holder.host_name, holder.pid, holder.since, row.expires_at,
                    holder.stale(row.expires_at, db_now(conn)))


def _started(lease: Lease) -> Lease:
    lease.start_heartbeat()
    return lease


def _held(name: str, other: Holder, now: datetime) -> LockedError:
    long = other.since is not None and now - other.since > LONG_HOLD
    hint = ("; it has held it for over an hour: if that run is hung, stop it (its lock goes "
            "with it)" if long else "; this run stops (the next one will try again)")
    return LockedError(f"another career-relay run holds the {name} lock ({other.describe()}, "
                       f"alive){hint}", long_held=long)
