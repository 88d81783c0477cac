"""Engine, migrations, and the Store: transactions, the run lock, source cursors and inbound
webhook deliveries. The SQL of each aggregate is in its own module beside this one
(cases.py, outbox.py, consents.py, handoffs.py, ledger.py, retention.py; reports.py and
console.py for read-only pages), as functions of the caller's Connection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command

try:
    import fcntl
except ImportError:     # not POSIX: SQLite's own busy handler is the only queue
    fcntl = None  # type: ignore[assignment]
from alembic.config import Config as AlembicConfig
from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.errors import ConfigError
from relay_core.models import RelayCase
from relay_core.store import cases, lease
from relay_core.store import tables as t
from relay_core.store.tables import utcnow

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # A server connection can go stale between runs; a SQLite file cannot, and a ping per
    # transaction was a tenth of the sending run's time.
    options: dict[str, Any] = {"pool_pre_ping": not url.startswith("sqlite")}
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        # A file cannot drop a connection, so no ping per checkout; and the pool holds as
        # many as the web server's threads (40), so none is opened (with its pragmas) and
        # closed again for each request under load: both showed in the consent pages' profile.
        options = {"pool_pre_ping": False, "pool_size": 40, "max_overflow": 10}
    try:
        engine = create_engine(url, future=True, **options)
    except Exception as exc:  # bad URL or missing driver: a config problem
        raise ConfigError("store.url", f"cannot use this database URL ({type(exc).__name__})",
                          "Use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            # First: the pragmas below may need the file's lock, and without a timeout a new
            # connection made while another process writes failed at once ("database is
            # locked").
            cur.execute("PRAGMA busy_timeout=10000")    # two runs wait instead of failing
            # Before the first table: a new file gives freed pages back (Store.reclaim).
            # On an older file it takes effect at its first VACUUM (reclaim(convert=True)).
            # Setting it takes the file's write lock even when nothing changes, so it is
            # skipped when already set: every new connection waited behind the writers.
            if cur.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")      # readers never block the sender
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    return engine


def alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


_MIGRATING = threading.Lock()   # alembic keeps module-level state: one migration at a time


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`. Concurrent starters are serialised: threads by a
    lock, processes by an advisory lock (PostgreSQL) or a lock file next to the database."""
    lock_file = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock_file = FileLock(f"{engine.url.database}.migrate.lock")
    with _MIGRATING, (lock_file or nullcontext()), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two instances starting together must not both run the DDL.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        command.upgrade(alembic_config(conn), revision)


def open_store(url: str, *, upgrade: bool = True) -> Store:
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    if upgrade:
        migrate(engine)
    return Store(engine)


class Store:
    """The database handle: transactions (`begin`), read connections (`connect`), the run lock,
    source cursors and inbound webhook deliveries. Everything else is a function of a
    Connection in the aggregate modules (`cases.transition(conn, ...)`,
    `outbox.claim(conn, now)`), so a caller's several writes share one transaction.

    A few case operations stay here as methods for the code and tests written against them:
    `case`, `case_by_key`, `due_cases`, `audit_trail` and `counts_by_state` open their own read
    connection; `audit`, `insert_case` and `transition` are the functions of store/cases.py."""

    def __init__(self, engine: Engine):
        self.engine = engine
        # SQLite has one write lock per file: writers queue on WriteLock first.
        self._writers = _write_lock(engine) if engine.dialect.name == "sqlite" else None

    def __repr__(self) -> str:
        return f"Store({self.engine.dialect.name})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: everything done through `conn` commits together or not at all.

        On SQLite it starts with BEGIN IMMEDIATE, taking the file's write lock at once (waiting
        up to busy_timeout). A deferred transaction that reads first and then writes fails at
        once with "database is locked" when another process (`serve --workers`) wrote since
        its read: busy_timeout cannot help it, and that was an HTTP 500. A transaction opened
        while this thread already holds one stays deferred, as before."""
        if self._writers is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._writers as outermost, self.engine.begin() as conn:
            if outermost:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def writing(self) -> WriteLock | nullcontext:
        """The file's write lock, for a writer that commits on its own connection (the webhook
        inbox's group commit): it queues with `begin`'s writers and is woken the moment the
        lock is free, instead of sleeping in SQLite's busy handler. Nothing on PostgreSQL."""
        return self._writers if self._writers is not None else nullcontext()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading: several queries, nothing committed."""
        with self.engine.connect() as conn:
            yield conn

    # --- one-shot reads of cases (store/cases.py) ------------------------------------------
    def case(self, case_id: int) -> RelayCase | None:
        with self.connect() as conn:
            return cases.get(conn, case_id)

    def case_by_key(self, source: str, application_id: str) -> RelayCase | None:
        with self.connect() as conn:
            return cases.by_key(conn, source, application_id)

    def due_cases(self, now: datetime, limit: int = 1000, after_id: int = 0
                  ) -> list[RelayCase]:
        """Scheduled cases whose time has come, in id order (keyset pages via `after_id`)."""
        with self.connect() as conn:
            return cases.due(conn, now, limit, after_id)

    def audit_trail(self, case_id: int) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return cases.audit_trail(conn, case_id)

    def counts_by_state(self) -> dict[str, int]:
        with self.connect() as conn:
            return cases.counts_by_state(conn)

    audit = staticmethod(cases.audit)
    insert_case = staticmethod(cases.insert_case)
    transition = staticmethod(cases.transition)

    # --- cursors ---------------------------------------------------------------------------
    def get_cursor(self, source: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.source_cursors.c.cursor).where(
                t.source_cursors.c.source == source)).scalar_one_or_none()

    def set_cursor(self, conn: Connection, source: str, cursor: str) -> None:
        exists = conn.execute(select(t.source_cursors.c.source).where(
            t.source_cursors.c.source == source)).first()
        if exists:
            conn.execute(update(t.source_cursors).where(t.source_cursors.c.source == source)
                         .values(cursor=cursor, updated_at=utcnow()))
        else:
            conn.execute(insert(t.source_cursors).values(source=source, cursor=cursor,
                                                         updated_at=utcnow()))

    # --- inbound webhook deliveries --------------------------------------------------------
    def record_inbound(self, conn: Connection, source: str, event_id: str, kind: str) -> bool:
        """Remember a webhook delivery; False if it was seen before (a redelivery)."""
        try:
            with conn.begin_nested():
                conn.execute(insert(t.inbound_events).values(
                    source=source, event_id=event_id, kind=kind, received_at=utcnow()))
        except IntegrityError:
            return False
        return True

    # --- space -----------------------------------------------------------------------------
    def reclaim(self, *, convert: bool = False) -> int:
        """Give the space of deleted rows and dropped message bytes back to the file system,
        so a SQLite file stays proportional to its live data; returns the pages freed.
        `convert`: a file created before auto_vacuum was set is rewritten once (VACUUM, which
        needs as much free disk as the file and locks it for its duration: the daily purge
        asks for it). PostgreSQL's autovacuum does this job itself."""
        if self.engine.dialect.name != "sqlite":
            return 0
        with self.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            conn.rollback()
            if mode != 2 and not convert:
                return 0
            raw = conn.connection.dbapi_connection
            # executescript steps the pragma to its end (one `execute` frees a single page);
            # a VACUUM also makes the file incremental (the pragma set at connect).
            raw.executescript("PRAGMA incremental_vacuum;" if mode == 2 else "VACUUM;")
            # WAL mode: the file shrinks when the log is copied back into it.
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return free

    # --- the run lock (store/lease.py) ---------------------------------------------------
    @contextmanager
    def lock(self, name: str = "run", ttl: timedelta = lease.TTL) -> Iterator[lease.Lease]:
        """A lease in the database itself, so it holds across machines sharing PostgreSQL as
        well as for two cron runs on one SQLite file; it dies with its holder (store/lease.py).
        Yields the `Lease`: `lease.ensure()` raises LockedError once it is lost."""
        held = lease.acquire(self.engine, name, ttl)
        try:
            yield held
        finally:
            held.release()


_WRITE_LOCKS: dict[str, WriteLock] = {}
_REGISTRY = threading.Lock()


class WriteLock:
    """Who may write to one SQLite file next: the threads of this process queue on an RLock,
    in order (a thread that finds SQLite's lock taken polls it with growing sleeps), and the
    processes of `serve --workers` on an flock of `<file>.write.lock`, which the kernel hands
    to the next waiter the moment it is released (SQLite's busy handler has each waiting
    process sleep up to 100 ms a try: consent POSTs starved across processes). One per file
    and process, shared by every Store on the file, so a thread nesting two transactions
    re-enters it instead of waiting for itself. Entering returns True for the outermost."""

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> bool:
        self._lock.acquire()
        try:
            if self._depth == 0 and self.path is not None and fcntl is not None:
                if self._pid != os.getpid():     # a forked worker opens its own file
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1
        return self._depth == 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()


def _write_lock(engine: Engine) -> WriteLock:
    database = engine.url.database
    if database in (None, "", ":memory:"):
        return WriteLock(None)
    path = os.path.realpath(database) + ".write.lock"
    with _REGISTRY:
        return _WRITE_LOCKS.setdefault(path, WriteLock(path))
