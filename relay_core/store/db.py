"""Engine, migrations and the operations the core performs on the store.

Every state change is a conditional UPDATE (`WHERE state IN (...)`) plus an audit row in the same
transaction: two processes racing for the same case cannot both win, so a case is sent at most
once even if the run lock were bypassed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from filelock import FileLock
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from relay_core.errors import ConfigError, LockedError
from relay_core.models import TRANSITIONS, CaseState, RejectionEvent
from relay_core.store import tables as t
from relay_core.store.tables import utcnow

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def person_key(email: str) -> str:
    """A stable, non-reversible key for 'the same person' (cooldown, suppression)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


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
    def __init__(self, engine: Engine):
        self.engine = engine

    def __repr__(self) -> str:
        return f"Store({self.engine.dialect.name})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # --- audit -----------------------------------------------------------------------------
    @staticmethod
    def audit(conn: Connection, case_id: int | None, actor: str, action: str, reason: str = "",
              from_state: str | None = None, to_state: str | None = None,
              at: datetime | None = None) -> None:
        conn.execute(insert(t.audit_log).values(
            case_id=case_id, at=at or utcnow(), actor=actor, action=action,
            from_state=from_state, to_state=to_state, reason=reason))

    def audit_trail(self, case_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.audit_log).where(t.audit_log.c.case_id == case_id)
                                .order_by(t.audit_log.c.id))
            return [dict(r._mapping) for r in rows]

    # --- cases -----------------------------------------------------------------------------
    @staticmethod
    def case_values(event: RejectionEvent, *, email: str | None, language: str,
                    now: datetime) -> dict[str, Any]:
        person = event.person
        return dict(
            source=event.source, application_id=event.application_id, ats=event.ats,
            candidate_id=event.candidate_id, state=CaseState.DETECTED.value, reason="",
            category=event.category.value, language=language, invite=True,
            email=email, person_key=person_key(email) if email else None,
            person_json=json.dumps({"first_name": person.first_name,
                                    "last_name": person.last_name,
                                    "full_name": person.full_name}, ensure_ascii=False),
            event_json=event.model_dump_json(), job_title=event.job_title,
            rejected_at=event.rejected_at, detected_at=now, late=False, updated_at=now)

    def insert_cases(self, conn: Connection, rows: list[dict[str, Any]], *, actor: str,
                     now: datetime) -> dict[str, int]:
        """Insert detected cases in one statement; returns {application id: case id} for the
        new ones (an application already known is left alone)."""
        if not rows:
            return {}
        dialect_insert = {"sqlite": sqlite_insert, "postgresql": pg_insert}[conn.dialect.name]
        c = t.relay_cases.c
        created = dict(conn.execute(
            dialect_insert(t.relay_cases).values(rows)
            .on_conflict_do_nothing(index_elements=["source", "application_id"])
            .returning(c.application_id, c.id)).all())
        self.audit_many(conn, [dict(case_id=case_id, actor=actor, action="detected", reason="",
                                    from_state=None, to_state=CaseState.DETECTED.value, at=now)
                               for case_id in created.values()])
        return created

    @staticmethod
    def audit_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(insert(t.audit_log), rows)

    def transition_many(self, conn: Connection, changes: list[dict[str, Any]], to: CaseState,
                        *, from_state: CaseState, actor: str, now: datetime) -> set[int]:
        """Move many cases from one state to another, each with its own reason and values
        (`changes` = [{"id":…, "reason":…, other columns…}], the same keys in every item).
        Returns the ids that moved; a case another process moved first is left out."""
        assert to in TRANSITIONS[from_state]
        if not changes:
            return set()
        ids = [ch["id"] for ch in changes]
        c = t.relay_cases.c
        moved: set[int] = set()
        for i in range(0, len(ids), 500):
            moved.update(conn.scalars(
                update(t.relay_cases)
                .where(c.id.in_(ids[i:i + 500]), c.state == from_state.value)
                .values(state=to.value, updated_at=now).returning(c.id)))
        columns = [k for k in changes[0] if k != "id"]
        per_case = [{**{k: ch[k] for k in columns}, "b_id": ch["id"]}
                    for ch in changes if ch["id"] in moved]
        if columns and per_case:
            conn.execute(update(t.relay_cases).where(c.id == bindparam("b_id"))
                         .values({k: bindparam(k) for k in columns}), per_case)
        self.audit_many(conn, [dict(case_id=ch["id"], actor=actor, action="state",
                                    reason=ch.get("reason", ""), from_state=from_state.value,
                                    to_state=to.value, at=now)
                               for ch in changes if ch["id"] in moved])
        return moved

    def insert_case(self, conn: Connection, event: RejectionEvent, *, email: str | None,
                    language: str, now: datetime, actor: str) -> int | None:
        """Insert one detected case; None if (source, application id) is already known."""
        created = self.insert_cases(
            conn, [self.case_values(event, email=email, language=language, now=now)],
            actor=actor, now=now)
        return created.get(event.application_id)

    def transition(self, conn: Connection, case_id: int, to: CaseState, *, actor: str,
                   reason: str = "", allowed_from: Iterable[CaseState] | None = None,
                   now: datetime | None = None, **values: Any) -> bool:
        """Move a case to `to` if it is in one of the states allowed to go there. Returns
        False (and changes nothing) if another process moved it first."""
        sources = [s for s in (allowed_from or TRANSITIONS) if to in TRANSITIONS[s]]
        now = now or utcnow()
        if len(sources) == 1:   # the audit's from-state is known without asking
            current = sources[0].value
        else:
            current = conn.execute(select(t.relay_cases.c.state).where(
                t.relay_cases.c.id == case_id)).scalar_one_or_none()
        result = conn.execute(
            update(t.relay_cases)
            .where(t.relay_cases.c.id == case_id,
                   t.relay_cases.c.state.in_([s.value for s in sources]))
            .values(state=to.value, reason=reason, updated_at=now, **values))
        if result.rowcount != 1:
            return False
        self.audit(conn, case_id, actor, "state", reason=reason, from_state=current,
                   to_state=to.value, at=now)
        return True

    def case(self, case_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.relay_cases).where(t.relay_cases.c.id == case_id)).first()
            return dict(row._mapping) if row else None

    def case_by_key(self, source: str, application_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.relay_cases).where(
                t.relay_cases.c.source == source,
                t.relay_cases.c.application_id == application_id)).first()
            return dict(row._mapping) if row else None

    def due_cases(self, now: datetime, limit: int = 1000, after_id: int = 0
                  ) -> list[dict[str, Any]]:
        """Scheduled cases whose time has come, in id order (keyset pages via `after_id`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.relay_cases)
                .where(t.relay_cases.c.state == CaseState.SCHEDULED.value,
                       t.relay_cases.c.send_at <= now, t.relay_cases.c.id > after_id)
                .order_by(t.relay_cases.c.id).limit(limit))
            return [dict(r._mapping) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.relay_cases.c.state, func.count())
                                .group_by(t.relay_cases.c.state))
            return {state: n for state, n in rows}

    # --- suppressions ----------------------------------------------------------------------
    def suppressed_keys(self, conn: Connection, keys: Iterable[str]) -> set[str]:
        keys = list(set(keys))
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            found.update(conn.scalars(select(t.suppressions.c.address_hash).where(
                t.suppressions.c.address_hash.in_(keys[i:i + 500]))))
        return found

    def mailed_keys(self, conn: Connection, keys: Iterable[str], since: datetime,
                    exclude: Iterable[int]) -> set[str]:
        """Of these people, those already mailed since `since`, or about to be."""
        keys, exclude = list(set(keys)), list(exclude)
        c = t.relay_cases.c
        busy = [CaseState.SCHEDULED.value, CaseState.HELD.value, CaseState.SENDING.value]
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            q = select(c.person_key).where(
                c.person_key.in_(keys[i:i + 500]),
                c.state.in_(busy) | ((c.state == CaseState.SENT.value) & (c.sent_at >= since)))
            if exclude:
                q = q.where(c.id.not_in(exclude))
            found.update(conn.scalars(q))
        return found

    def is_suppressed(self, conn: Connection, key: str) -> bool:
        return conn.execute(select(t.suppressions.c.address_hash).where(
            t.suppressions.c.address_hash == key)).first() is not None

    def suppress(self, conn: Connection, key: str, reason: str) -> None:
        if not self.is_suppressed(conn, key):
            conn.execute(insert(t.suppressions).values(address_hash=key, reason=reason,
                                                       at=utcnow()))

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
