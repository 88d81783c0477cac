"""The HR console's queries: the dashboard's counts, case search, one case with everything
that happened to it, the approval queue, agencies, and putting a dead letter back in the queue.

Unlike the CLI's tables, these rows carry the candidate's name and address: the console is for
signed-in HR staff. They are for pages only, never for logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from relay_core.models import CaseState, RelayCase
from relay_core.store import cases
from relay_core.store import tables as t
from relay_core.store.db import Store

c = t.relay_cases.c
WAITING = (CaseState.SCHEDULED.value, CaseState.SENDING.value, CaseState.HELD.value)
SEARCH_SCAN = 2000       # rows a text search looks at; the page says when there were more


@dataclass
class CaseRow:
    id: int
    source: str
    application_id: str
    state: str
    reason: str
    name: str
    email: str | None
    job_title: str
    language: str
    rejected_at: datetime
    send_at: datetime | None
    sent_at: datetime | None
    deadline_at: datetime | None
    late: bool
    invite: bool

    def __repr__(self) -> str:
        return f"CaseRow({self.id}, {self.state})"


@dataclass
class CaseList:
    rows: list[CaseRow]
    total: int
    truncated: bool = False     # a text search stopped after SEARCH_SCAN rows


@dataclass
class CaseDetail:
    case: RelayCase
    name: str
    outbox: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    handoffs: list[dict[str, Any]]
    deletion_notices: list[dict[str, Any]]
    agency_events: list[dict[str, Any]]
    credits: list[dict[str, Any]] = field(default_factory=list)


def _name(person_json: str | None) -> str:
    person = json.loads(person_json or "{}")
    return person.get("full_name") or " ".join(
        p for p in (person.get("last_name"), person.get("first_name")) if p)


def _case_row(r: Any) -> CaseRow:
    return CaseRow(r.id, r.source, r.application_id, r.state, r.reason, _name(r.person_json),
                   r.email, r.job_title, r.language, r.rejected_at, r.send_at, r.sent_at,
                   r.deadline_at, bool(r.late), bool(r.invite))


# --- dashboard -------------------------------------------------------------------------------
def dashboard_counts(conn: Connection, *, now: datetime, end_of_today: datetime
                     ) -> dict[str, Any]:
    by_state = dict(conn.execute(select(c.state, func.count()).group_by(c.state)).all())
    due_today = conn.execute(select(func.count()).where(
        c.state == CaseState.SCHEDULED.value, c.send_at < end_of_today)).scalar_one()
    late = conn.execute(select(func.count()).where(
        c.state.in_(WAITING), (c.late.is_(True)) | (c.deadline_at < now))).scalar_one()
    dead_handoffs = conn.execute(select(func.count()).where(
        t.handoffs.c.state == "dead")).scalar_one()
    dead_notices = conn.execute(select(func.count()).where(
        t.deletion_notices.c.state == "dead")).scalar_one()
    return {"by_state": by_state, "due_today": due_today, "late": late,
            "held": by_state.get(CaseState.HELD.value, 0),
            "failed": by_state.get(CaseState.FAILED.value, 0),
            # handed to the mail server, answer unknown: HR checks the server's log
            "ambiguous": by_state.get(CaseState.AMBIGUOUS.value, 0),
            "dead_handoffs": dead_handoffs + dead_notices}


# --- cases -----------------------------------------------------------------------------------
def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(row: Any, text: str) -> bool:
    """The text is in the name, the address or the application id (not in a JSON key)."""
    needle = text.lower()
    person = json.loads(row.person_json or "{}")
    values = [str(v) for v in person.values()] + [row.email or "", row.application_id,
                                                   row.candidate_id]
    return any(needle in v.lower() for v in values)


def search_cases(conn: Connection, *, text: str = "", state: str = "", source: str = "",
                 since: datetime | None = None, until: datetime | None = None,
                 limit: int = 50, offset: int = 0) -> CaseList:
    """Newest first. `since`/`until` bound the rejection time; `text` searches the name, the
    email address and the application id."""
    where = []
    if state:
        where.append(c.state == state)
    if source:
        where.append(c.source == source)
    if since is not None:
        where.append(c.rejected_at >= since)
    if until is not None:
        where.append(c.rejected_at < until)
    query = select(t.relay_cases).where(*where).order_by(c.id.desc())
    text = text.strip()
    if not text:
        total = conn.execute(select(func.count()).select_from(t.relay_cases)
                             .where(*where)).scalar_one()
        rows = conn.execute(query.limit(limit).offset(offset)).all()
        return CaseList([_case_row(r) for r in rows], total)
    pattern = _like(text)
    candidates = conn.execute(query.where(or_(
        func.lower(c.person_json).like(pattern, escape="\\"),
        func.lower(c.email).like(pattern, escape="\\"),
        func.lower(c.application_id).like(pattern, escape="\\"),
        func.lower(c.candidate_id).like(pattern, escape="\\"))).limit(SEARCH_SCAN + 1)).all()
    truncated = len(candidates) > SEARCH_SCAN
    found = [r for r in candidates[:SEARCH_SCAN] if _matches(r, text)]
    return CaseList([_case_row(r) for r in found[offset:offset + limit]], len(found), truncated)


def held_cases(conn: Connection, limit: int = 100) -> list[CaseRow]:
    rows = conn.execute(select(t.relay_cases).where(c.state == CaseState.HELD.value)
                        .order_by(c.send_at, c.id).limit(limit)).all()
    return [_case_row(r) for r in rows]


def existing_case_ids(conn: Connection, ids: list[int]) -> dict[int, str]:
    """{case id: state} for those of `ids` that exist."""
    found: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        found.update(conn.execute(select(c.id, c.state).where(c.id.in_(ids[i:i + 500]))).all())
    return found


def case_detail(conn: Connection, case_id: int) -> CaseDetail | None:
    case = cases.get(conn, case_id)
    if case is None:
        return None

    def rows(table: Any, *where: Any, order: Any = None) -> list[dict[str, Any]]:
        query = select(table).where(*where).order_by(order if order is not None
                                                     else table.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]

    return CaseDetail(
        case=case, name=case.person.display_name if case.person else "",
        outbox=rows(t.outbox, t.outbox.c.case_id == case_id),
        audit=rows(t.audit_log, t.audit_log.c.case_id == case_id),
        handoffs=rows(t.handoffs, t.handoffs.c.case_id == case_id),
        deletion_notices=rows(t.deletion_notices, t.deletion_notices.c.case_id == case_id),
        agency_events=rows(t.agency_events, t.agency_events.c.case_id == case_id),
        credits=[dict(r._mapping) for r in conn.execute(
            select(t.credit_entries).join(t.agency_events, t.agency_events.c.id
                                          == t.credit_entries.c.event_row_id)
            .where(t.agency_events.c.case_id == case_id).order_by(t.credit_entries.c.id))])


def sources_with_cases(conn: Connection) -> list[str]:
    return list(conn.scalars(select(c.source).distinct().order_by(c.source)))


# --- agencies --------------------------------------------------------------------------------
def agency_overview(conn: Connection, event_limit: int = 50) -> dict[str, Any]:
    """Per agency: handoffs and deletion notices by state, the dead ones, recent events."""
    handoffs: dict[str, dict[str, int]] = {}
    for agency_id, state, n in conn.execute(
            select(t.handoffs.c.agency_id, t.handoffs.c.state, func.count())
            .group_by(t.handoffs.c.agency_id, t.handoffs.c.state)):
        handoffs.setdefault(agency_id, {})[state] = n
    notices: dict[str, dict[str, int]] = {}
    for agency_id, state, n in conn.execute(
            select(t.deletion_notices.c.agency_id, t.deletion_notices.c.state, func.count())
            .group_by(t.deletion_notices.c.agency_id, t.deletion_notices.c.state)):
        notices.setdefault(agency_id, {})[state] = n
    dead = [{"kind": "handoff", **dict(r._mapping)} for r in conn.execute(
        select(t.handoffs.c.id, t.handoffs.c.case_id, t.handoffs.c.agency_id,
               t.handoffs.c.attempts, t.handoffs.c.last_error, t.handoffs.c.updated_at)
        .where(t.handoffs.c.state == "dead").order_by(t.handoffs.c.id.desc()).limit(100))]
    dead += [{"kind": "deletion_notice", **dict(r._mapping)} for r in conn.execute(
        select(t.deletion_notices.c.id, t.deletion_notices.c.case_id,
               t.deletion_notices.c.agency_id, t.deletion_notices.c.attempts,
               t.deletion_notices.c.last_error, t.deletion_notices.c.updated_at)
        .where(t.deletion_notices.c.state == "dead")
        .order_by(t.deletion_notices.c.id.desc()).limit(100))]
    events = [dict(r._mapping) for r in conn.execute(
        select(t.agency_events).order_by(t.agency_events.c.id.desc()).limit(event_limit))]
    return {"handoffs": handoffs, "deletion_notices": notices, "dead": dead, "events": events}


def requeue_dead(store: Store, conn: Connection, kind: str, row_id: int, *, actor: str,
                 now: datetime) -> bool:
    """A dead handoff or deletion notice back to `retrying`, due now, with a fresh attempt
    budget (the operator fixed the cause). False when it is not dead (any more)."""
    table = {"handoff": t.handoffs, "deletion_notice": t.deletion_notices}[kind]
    row = conn.execute(select(table.c.case_id, table.c.agency_id).where(
        table.c.id == row_id)).first()
    changed = conn.execute(update(table).where(and_(table.c.id == row_id,
                                                    table.c.state == "dead")).values(
        state="retrying", attempts=0, next_attempt_at=now, updated_at=now)).rowcount == 1
    if changed:
        store.audit(conn, row.case_id, actor, f"{kind}_requeued", from_state="dead",
                    to_state="retrying", at=now,
                    reason=f"agency {row.agency_id}: {kind.replace('_', ' ')} {row_id} "
                           "put back in the queue from the console")
    return changed
