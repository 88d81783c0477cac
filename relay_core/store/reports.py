"""Read-only queries behind `career-relay status` and `career-relay report`: identifiers,
states and counts only, never personal data. The commands turn these rows into tables."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, func, select

from relay_core.models import CaseState
from relay_core.store import tables as t

c = t.relay_cases.c


class LateCase(NamedTuple):
    id: int
    source: str
    deadline_at: datetime | None


class FailedCase(NamedTuple):
    id: int
    source: str
    reason: str


class CaseStatus(NamedTuple):
    by_state: dict[str, int]
    due_now: int
    late: list[LateCase]          # the first 50, oldest first
    failed: list[FailedCase]      # the latest 50
    skipped: list[tuple[str, int]]   # (reason, cases)
    sent_late: int = 0            # sent after their deadline
    held: list[tuple[str, int]] = []     # (reason, cases) of the held ones
    no_invitation: list[tuple[str, int]] = []   # (note, cases) planned or sent without it


def case_status(conn: Connection, now: datetime) -> CaseStatus:
    by_state = dict(conn.execute(select(c.state, func.count()).group_by(c.state)).all())
    due = conn.execute(select(func.count()).where(
        c.state == CaseState.SCHEDULED.value, c.send_at <= now)).scalar_one()
    waiting = [CaseState.SCHEDULED.value, CaseState.SENDING.value, CaseState.HELD.value]
    late = conn.execute(select(c.id, c.source, c.deadline_at).where(
        c.state.in_(waiting), (c.late.is_(True)) | (c.deadline_at < now))
        .order_by(c.id).limit(50)).all()
    failed = conn.execute(select(c.id, c.source, c.reason).where(
        c.state == CaseState.FAILED.value).order_by(c.id.desc()).limit(50)).all()
    skipped = conn.execute(select(c.reason, func.count()).where(
        c.state == CaseState.SKIPPED.value).group_by(c.reason)).all()
    sent_late = conn.execute(select(func.count()).where(
        c.state == CaseState.SENT.value, c.deadline_at.is_not(None),
        c.sent_at > c.deadline_at)).scalar_one()
    held = conn.execute(select(c.reason, func.count()).where(
        c.state == CaseState.HELD.value).group_by(c.reason)).all()
    bare = conn.execute(select(c.invite_note, func.count()).where(
        c.invite_note != "", c.state.in_(waiting + [CaseState.SENT.value]))
        .group_by(c.invite_note)).all()
    return CaseStatus(by_state, due, [LateCase(*r) for r in late],
                      [FailedCase(*r) for r in failed], [(r[0], r[1]) for r in skipped],
                      sent_late, [(r[0], r[1]) for r in held], [(r[0], r[1]) for r in bare])


class FunnelCase(NamedTuple):
    id: int
    source: str
    state: str
    rejected_at: datetime
    sent_at: datetime | None = None
    deadline_at: datetime | None = None

    @property
    def sent_late(self) -> bool:
        return bool(self.sent_at and self.deadline_at and self.sent_at > self.deadline_at)


class DeliveredHandoff(NamedTuple):
    id: int
    case_id: int
    agency_id: str
    state: str


class AgencyEvent(NamedTuple):
    handoff_id: int
    kind: str
    occurred_at: datetime


class Credit(NamedTuple):
    agency_id: str
    credits: int
    yen: int
    occurred_at: datetime


class FunnelRows(NamedTuple):
    cases: list[FunnelCase]
    consented: set[int]                 # case ids with a consent (even if withdrawn later)
    chosen: list[tuple[int, str]]       # (case id, agency id) the candidate ticked
    handoffs: list[DeliveredHandoff]
    events: list[AgencyEvent]           # in the order they were recorded
    credits: list[Credit]


def funnel_rows(conn: Connection, handoff_states: tuple[str, ...] = ("delivered",)
                ) -> FunnelRows:
    """`handoff_states`: the handoffs that count (records/report.py: delivered, possibly
    delivered, sent to the agency's form)."""
    cases = conn.execute(select(c.id, c.source, c.state, c.rejected_at, c.sent_at,
                                c.deadline_at)).all()
    consented = set(conn.execute(select(t.consents.c.case_id)).scalars())
    chosen = conn.execute(select(t.consents.c.case_id, t.consent_agencies.c.agency_id).join(
        t.consent_agencies, t.consent_agencies.c.consent_id == t.consents.c.id)).all()
    handoffs = conn.execute(select(t.handoffs.c.id, t.handoffs.c.case_id, t.handoffs.c.agency_id,
                                   t.handoffs.c.state)
                            .where(t.handoffs.c.state.in_(handoff_states))).all()
    events = conn.execute(select(t.agency_events.c.handoff_id, t.agency_events.c.kind,
                                 t.agency_events.c.occurred_at)
                          .order_by(t.agency_events.c.id)).all()
    credits = conn.execute(select(t.credit_entries.c.agency_id, t.credit_entries.c.credits,
                                  t.credit_entries.c.yen,
                                  t.credit_entries.c.occurred_at)).all()
    return FunnelRows([FunnelCase(*r) for r in cases], consented,
                      [(r[0], r[1]) for r in chosen], [DeliveredHandoff(*r) for r in handoffs],
                      [AgencyEvent(*r) for r in events], [Credit(*r) for r in credits])
