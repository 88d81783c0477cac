"""Engine, migrations, and the Store: transactions, the run lock, source cursors, inbound
webhook deliveries, and the door to the cases, outbox and reporting aggregates.

Convention: the rest of the code holds a Store and calls its methods; the SQL for the cases
(store/cases.py), the outbox (store/outbox.py) and the status and report queries
(store/reports.py) lives in those modules, and the Store's methods delegate to them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.errors import ConfigError, LockedError
from relay_core.models import CaseState, RelayCase
from relay_core.store import cases, outbox, reports
from relay_core.store import tables as t
from relay_core.store.tables import utcnow

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver: a config problem
        raise ConfigError("store.url", f"cannot use this database URL ({type(exc).__name__})",
                          "Use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")      # readers never block the sender
            cur.execute("PRAGMA busy_timeout=10000")    # two runs wait instead of failing
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
    """What the rest of the code holds: transactions, the run lock, and one method per
    operation on the cases, outbox and reporting aggregates. Those methods only delegate: the
    SQL lives in store/cases.py, store/outbox.py and store/reports.py, and nothing outside
    relay_core/store writes SQL for these tables. A method taking `conn` works inside the
    caller's transaction; one without opens its own read connection."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __repr__(self) -> str:
        return f"Store({self.engine.dialect.name})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: everything done through `conn` commits together or not at all."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading: several queries, nothing committed."""
        with self.engine.connect() as conn:
            yield conn

    # --- cases and their audit trail (store/cases.py) --------------------------------------
    audit = staticmethod(cases.audit)
    audit_many = staticmethod(cases.audit_many)
    case_values = staticmethod(cases.case_values)
    insert_cases = staticmethod(cases.insert_cases)
    insert_case = staticmethod(cases.insert_case)
    transition = staticmethod(cases.transition)
    transition_many = staticmethod(cases.transition_many)
    set_message_ids = staticmethod(cases.set_message_ids)
    activate_invitations = staticmethod(cases.activate_invitations)
    case_ids = staticmethod(cases.ids_by_key)
    case_ids_in_state = staticmethod(cases.ids_in_state)
    suppressed_keys = staticmethod(cases.suppressed_keys)
    mailed_keys = staticmethod(cases.mailed_keys)
    is_suppressed = staticmethod(cases.is_suppressed)
    suppress = staticmethod(cases.suppress)

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

    def sent_not_annotated(self, case_ids: list[int]) -> set[int]:
        """Of these cases, the sent ones whose ATS has not been told yet."""
        with self.connect() as conn:
            return (set(cases.ids_in_state(conn, CaseState.SENT, case_ids))
                    - cases.annotated(conn, case_ids))

    def audit_trail(self, case_id: int) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return cases.audit_trail(conn, case_id)

    def counts_by_state(self) -> dict[str, int]:
        with self.connect() as conn:
            return cases.counts_by_state(conn)

    def count_late(self, now: datetime) -> int:
        with self.connect() as conn:
            return cases.count_late(conn, now)

    # --- the outbox (store/outbox.py) ------------------------------------------------------
    enqueue_mail = staticmethod(outbox.enqueue)
    claim_outbox = staticmethod(outbox.claim)
    mark_outbox_sent = staticmethod(outbox.mark_sent)
    mark_outbox_retry = staticmethod(outbox.mark_retry)
    mark_outbox_refused = staticmethod(outbox.mark_refused)
    interrupted_outbox = staticmethod(outbox.interrupted)
    requeue_outbox = staticmethod(outbox.requeue)
    mark_outbox_interrupted = staticmethod(outbox.mark_interrupted)
    outbox_counts = staticmethod(outbox.counts_by_state)

    # --- status and report (store/reports.py) ----------------------------------------------
    case_status = staticmethod(reports.case_status)

    def funnel_rows(self) -> reports.FunnelRows:
        with self.connect() as conn:
            return reports.funnel_rows(conn)

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

    # --- the run lock ----------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str = "run", ttl: timedelta = timedelta(hours=1)) -> Iterator[None]:
        """A lock row in the database itself, so it holds across machines sharing PostgreSQL
        as well as for two cron runs on one SQLite file. An expired lock (a crashed run) is
        taken over."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        now = utcnow()
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(t.locks).values(name=name, holder=holder,
                                                        expires_at=now + ttl))
                taken = True
            except IntegrityError:
                taken = conn.execute(update(t.locks).where(
                    t.locks.c.name == name, t.locks.c.expires_at < now)
                    .values(holder=holder, expires_at=now + ttl)).rowcount == 1
        if not taken:
            raise LockedError("another career-relay run holds the lock; this run stops. If no "
                              "run is active, the lock expires within an hour")
        try:
            yield
        finally:
            with self.engine.begin() as conn:
                conn.execute(t.locks.delete().where(t.locks.c.name == name,
                                                    t.locks.c.holder == holder))
