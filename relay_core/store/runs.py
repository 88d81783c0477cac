"""The cycle's history: one row per finished cycle, and each source's last poll. `run` and
`serve` write it (cycle/run.py); the console's dashboard and `serve`'s log read it. Counts and
error messages only: they never hold personal data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from relay_core.store import tables as t
from relay_core.store.db import Store

KEEP = timedelta(days=90)   # a cycle every few minutes: the history stays small


@dataclass(frozen=True)
class CycleRun:
    started_at: datetime
    finished_at: datetime
    ok: bool
    summary: dict[str, Any]


@dataclass(frozen=True)
class SourcePoll:
    source: str
    last_attempt_at: datetime
    last_success_at: datetime | None
    last_error: str


def record_cycle(store: Store, *, started_at: datetime, finished_at: datetime, ok: bool,
                 summary: dict[str, Any], polls: dict[str, str]) -> None:
    """Store a finished cycle; `polls` maps each polled source to its error ("" = success)."""
    with store.begin() as conn:
        conn.execute(insert(t.cycle_runs).values(
            started_at=started_at, finished_at=finished_at, ok=ok,
            summary_json=json.dumps(summary, ensure_ascii=False)))
        conn.execute(delete(t.cycle_runs).where(t.cycle_runs.c.finished_at < finished_at - KEEP))
        for source, error in polls.items():
            values: dict[str, Any] = {"last_attempt_at": finished_at, "last_error": error[:500]}
            if not error:
                values["last_success_at"] = finished_at
            changed = conn.execute(update(t.source_polls).where(
                t.source_polls.c.source == source).values(values)).rowcount
            if not changed:
                conn.execute(insert(t.source_polls).values(source=source, **values))


def last_cycle(conn: Connection) -> CycleRun | None:
    row = conn.execute(select(t.cycle_runs).order_by(t.cycle_runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return CycleRun(row.started_at, row.finished_at, row.ok, json.loads(row.summary_json))


def last_ok_cycle(conn: Connection) -> CycleRun | None:
    """The last cycle that finished without a problem (what `/healthz` judges by)."""
    row = conn.execute(select(t.cycle_runs).where(t.cycle_runs.c.ok.is_(True))
                       .order_by(t.cycle_runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return CycleRun(row.started_at, row.finished_at, row.ok, json.loads(row.summary_json))


def source_polls(conn: Connection) -> dict[str, SourcePoll]:
    return {r.source: SourcePoll(r.source, r.last_attempt_at, r.last_success_at, r.last_error)
            for r in conn.execute(select(t.source_polls))}
