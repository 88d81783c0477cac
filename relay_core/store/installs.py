"""When this installation first polled each source, and the backfill that opts older
rejections in.

The first successful poll of a source records its start as the source's installation moment
(cycle/ingest.py): rejections made before it are skipped with a reason, so a new installation
never mails the ATS's backlog on its own. `career-relay backfill --since DATE` reopens exactly
those cases, by a conditional update from `skipped` that only matches that reason, with an
audit row each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from relay_core.models import CaseState
from relay_core.store import tables as t
from relay_core.store.cases import audit_many

c = t.relay_cases.c


def installed_at(conn: Connection, source: str) -> datetime | None:
    return conn.execute(select(t.source_installs.c.installed_at).where(
        t.source_installs.c.source == source)).scalar_one_or_none()


def record_installed(conn: Connection, source: str, at: datetime) -> None:
    """Keep the first moment only: a later poll (or a racing process) changes nothing."""
    dialect_insert = {"sqlite": sqlite_insert, "postgresql": pg_insert}[conn.dialect.name]
    conn.execute(dialect_insert(t.source_installs).values(source=source, installed_at=at)
                 .on_conflict_do_nothing(index_elements=["source"]))


def installations(conn: Connection) -> dict[str, datetime]:
    return dict(conn.execute(select(t.source_installs.c.source,
                                    t.source_installs.c.installed_at)).all())


def skipped_before(conn: Connection, *, reason: str, since: datetime,
                   sources: list[str] | None = None) -> list[tuple[int, str, str | None]]:
    """(case id, source, stored event JSON) of the cases skipped with `reason` that were
    rejected at or after `since`, oldest first. The event is None once retention purged it."""
    query = (select(c.id, c.source, c.event_json)
             .where(c.state == CaseState.SKIPPED.value, c.reason == reason,
                    c.rejected_at >= since)
             .order_by(c.rejected_at, c.id))
    if sources:
        query = query.where(c.source.in_(sources))
    return [(r.id, r.source, r.event_json) for r in conn.execute(query)]


def reopen(conn: Connection, changes: list[dict[str, Any]], to: CaseState, *, reason: str,
           actor: str, now: datetime) -> set[int]:
    """skipped → `to` (scheduled or held) for cases still skipped with `reason`; each change
    carries the case's plan (send_at, deadline_at, late, invite, invite_note and its new
    reason). Returns the ids that moved; anything else is left alone."""
    if not changes or to not in (CaseState.SCHEDULED, CaseState.HELD):
        return set()
    moved: set[int] = set()
    for change in changes:
        values = {k: v for k, v in change.items() if k != "id"}
        if conn.execute(update(t.relay_cases).where(
                c.id == change["id"], c.state == CaseState.SKIPPED.value, c.reason == reason)
                .values(state=to.value, updated_at=now, **values)).rowcount == 1:
            moved.add(change["id"])
    audit_many(conn, [dict(case_id=ch["id"], actor=actor, action="state",
                           reason=ch.get("reason") or "opted in by backfill",
                           from_state=CaseState.SKIPPED.value, to_state=to.value, at=now)
                      for ch in changes if ch["id"] in moved])
    return moved


__all__ = ["installations", "installed_at", "record_installed", "reopen", "skipped_before"]
