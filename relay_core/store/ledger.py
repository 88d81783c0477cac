"""The ledger aggregate in the store: what agencies report back, the credits it earns, and the
legal-review attestations credits were computed under.

The three tables are append-only (database triggers refuse UPDATE and DELETE). An event is stored
once per (agency, event id): a second insert of the same event, even a concurrent one, comes
back as None here rather than as an IntegrityError. Records come out typed (`LedgerEvent`,
`CreditEntry`); every function takes the caller's connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from relay_core.store import tables as t


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A stored agency event (registered / placed / placement_cancelled)."""

    id: int
    agency_id: str
    event_id: str
    kind: str
    reference: str
    handoff_id: int
    case_id: int
    occurred_at: datetime
    received_at: datetime
    via: str


@dataclass(frozen=True, slots=True)
class CreditEntry:
    """One ledger line; a reversal is a negative entry. `id` is None until written."""

    agency_id: str
    event_row_id: int
    rule: str
    credits: int
    yen: int
    reason: str
    occurred_at: datetime
    created_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Attestation:
    """A legal review ([ledger.legal_review]) as first used by the ledger."""

    fingerprint: str
    reviewer: str
    reviewed_on: str
    document: str
    notification_number: str
    rule: str
    first_used_at: datetime


def attestation(conn: Connection, fingerprint: str) -> Attestation | None:
    row = conn.execute(select(t.ledger_attestations).where(
        t.ledger_attestations.c.fingerprint == fingerprint)).first()
    return Attestation(**row._mapping) if row is not None else None


def add_attestation(conn: Connection, entry: Attestation) -> bool:
    """Store it; False when it is stored already (also by a concurrent first use)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(t.ledger_attestations).values(
                fingerprint=entry.fingerprint, reviewer=entry.reviewer,
                reviewed_on=entry.reviewed_on, document=entry.document,
                notification_number=entry.notification_number, rule=entry.rule,
                first_used_at=entry.first_used_at))
    except IntegrityError:
        return False
    return True


def attestations(conn: Connection) -> list[Attestation]:
    return [Attestation(**r._mapping) for r in conn.execute(
        select(t.ledger_attestations).order_by(t.ledger_attestations.c.first_used_at))]


def find_event(conn: Connection, agency_id: str, event_id: str) -> LedgerEvent | None:
    row = conn.execute(select(t.agency_events).where(
        t.agency_events.c.agency_id == agency_id,
        t.agency_events.c.event_id == event_id)).first()
    return LedgerEvent(**row._mapping) if row is not None else None


def count_events(conn: Connection, kind: str, *, handoff_id: int | None = None,
                 agency_id: str | None = None) -> int:
    """How many events of this kind a handoff (or an agency) has reported."""
    query = select(func.count()).select_from(t.agency_events).where(
        t.agency_events.c.kind == kind)
    if handoff_id is not None:
        query = query.where(t.agency_events.c.handoff_id == handoff_id)
    if agency_id is not None:
        query = query.where(t.agency_events.c.agency_id == agency_id)
    return conn.execute(query).scalar_one()


def add_event(conn: Connection, *, agency_id: str, event_id: str, kind: str, reference: str,
              handoff_id: int, case_id: int, occurred_at: datetime, received_at: datetime,
              via: str) -> int | None:
    """Store the event; None if (agency, event id) is already stored."""
    try:
        with conn.begin_nested():
            return conn.execute(insert(t.agency_events).values(
                agency_id=agency_id, event_id=event_id, kind=kind, reference=reference,
                handoff_id=handoff_id, case_id=case_id, occurred_at=occurred_at,
                received_at=received_at, via=via)).inserted_primary_key[0]
    except IntegrityError:
        return None


def add_credit(conn: Connection, entry: CreditEntry) -> int:
    return conn.execute(insert(t.credit_entries).values(
        agency_id=entry.agency_id, event_row_id=entry.event_row_id, rule=entry.rule,
        credits=entry.credits, yen=entry.yen, reason=entry.reason,
        occurred_at=entry.occurred_at, created_at=entry.created_at)).inserted_primary_key[0]


def balances(conn: Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(select(t.credit_entries.c.agency_id, func.sum(t.credit_entries.c.credits),
                               func.sum(t.credit_entries.c.yen))
                        .group_by(t.credit_entries.c.agency_id)).all()
    return {a: {"credits": int(c or 0), "yen": int(y or 0)} for a, c, y in rows}
