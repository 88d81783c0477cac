"""The handoff aggregate in the store: handoffs, their references, deletion notices and the
APPI Art. 29 provision records.

    handoff:          pending → sending → delivered | retrying → … → dead;
                      an attempt that may have arrived (a timeout after sending) keeps
                      retrying and, if it never gets an answer, ends `maybe_delivered`;
                      pending → redirected (redirect agency: nothing is pushed);
                      pending/retrying/sending → stopped (a withdrawal)
    deletion notice:  pending → sending → sent | retrying → … → dead

Records come out typed (`Handoff`, `DeletionNotice`, `ProvisionRecord`). Every function takes
the caller's connection: the deliverer claims, records the outcome and writes the provision
record in transactions of its own choosing. Each state change is a conditional UPDATE, so two
processes cannot both move the same row; the functions say whether this one did.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.store import tables as t


class HandoffState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    POSSIBLY_DELIVERED = "maybe_delivered"   # possibly delivered (fits the 16-character state)
    REDIRECTED = "redirected"
    DEAD = "dead"
    STOPPED = "stopped"


STOPPABLE = (HandoffState.PENDING.value, HandoffState.RETRYING.value, HandoffState.SENDING.value)
ACTIVE = (HandoffState.PENDING.value, HandoffState.RETRYING.value)
# The agency holds the data, or may: these get a provision record and, after a withdrawal, a
# deletion notice. (A handoff still retrying after an uncertain attempt has its provision
# record already; `provided_handoffs` finds it by that.)
REACHED = (HandoffState.DELIVERED.value, HandoffState.POSSIBLY_DELIVERED.value)


@dataclass(frozen=True, slots=True)
class Handoff:
    """One consented agency's copy of a candidate, on its way (no personal data in the row)."""

    id: int
    consent_id: int
    case_id: int
    agency_id: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeletionNotice:
    """The delete/stop-use request owed to an agency that received data before a withdrawal."""

    id: int
    handoff_id: int
    case_id: int
    agency_id: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProvisionRecord:
    """An APPI Art. 29 provision record: identifiers only, never updated. `id` is None until
    the store has written it; the candidate reference stays out of `repr`."""

    handoff_id: int
    consent_id: int
    case_id: int
    consent_reference: str
    consented_at: datetime
    agency_id: str
    recipient_legal_name: str
    recipient_address: str = field(repr=False)
    recipient_country: str
    candidate_ref: str = field(repr=False)
    items: list[str]
    channel: str
    destination: str = field(repr=False)
    provided_at: datetime
    keep_until: datetime
    note: str = ""
    id: int | None = None


def _handoff(row: Any) -> Handoff:
    return Handoff(**row._mapping)


def _notice(row: Any) -> DeletionNotice:
    return DeletionNotice(**row._mapping)


# --- handoffs --------------------------------------------------------------------------------
def add_handoff(conn: Connection, consent_id: int, case_id: int, agency_id: str,
                now: datetime) -> None:
    conn.execute(insert(t.handoffs).values(
        consent_id=consent_id, case_id=case_id, agency_id=agency_id,
        state=HandoffState.PENDING.value, attempts=0, next_attempt_at=now, last_error="",
        created_at=now, updated_at=now))


def handoff(conn: Connection, handoff_id: int) -> Handoff:
    return _handoff(conn.execute(select(t.handoffs).where(t.handoffs.c.id == handoff_id)).one())


def pending_handoffs(conn: Connection, now: datetime, limit: int = 100) -> list[Handoff]:
    """Handoffs due now (pending, or retrying whose time has come) of consents still active."""
    rows = conn.execute(
        select(t.handoffs)
        .join(t.consents, t.consents.c.id == t.handoffs.c.consent_id)
        .where(t.handoffs.c.state.in_(ACTIVE),
               (t.handoffs.c.next_attempt_at.is_(None)) | (t.handoffs.c.next_attempt_at <= now),
               t.consents.c.withdrawn_at.is_(None))
        .order_by(t.handoffs.c.id).limit(limit))
    return [_handoff(r) for r in rows]


def sending_handoffs(conn: Connection) -> list[Handoff]:
    return [_handoff(r) for r in conn.execute(select(t.handoffs).where(
        t.handoffs.c.state == HandoffState.SENDING.value))]


def delivered_handoffs(conn: Connection, consent_id: int) -> list[Handoff]:
    return [_handoff(r) for r in conn.execute(select(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id,
        t.handoffs.c.state == HandoffState.DELIVERED.value))]


def provided_handoffs(conn: Connection, consent_id: int) -> list[Handoff]:
    """The consent's handoffs whose data reached the agency or may have: delivered, possibly
    delivered, or with a provision record (an uncertain attempt, then stopped or retrying)."""
    recorded = select(t.provision_records.c.handoff_id).where(
        t.provision_records.c.consent_id == consent_id)
    return [_handoff(r) for r in conn.execute(select(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id,
        t.handoffs.c.state.in_(REACHED) | t.handoffs.c.id.in_(recorded))
        .order_by(t.handoffs.c.id))]


def handoffs_of_consent(conn: Connection, consent_id: int) -> list[Handoff]:
    return [_handoff(r) for r in conn.execute(select(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id).order_by(t.handoffs.c.agency_id))]


def has_provision_record(conn: Connection, handoff_id: int) -> bool:
    return conn.execute(select(t.provision_records.c.id).where(
        t.provision_records.c.handoff_id == handoff_id)).first() is not None


def unstopped_handoffs_of_case(conn: Connection, case_id: int) -> list[Handoff]:
    """The case's handoffs a withdrawal has not stopped, by agency id."""
    return [_handoff(r) for r in conn.execute(select(t.handoffs).where(
        t.handoffs.c.case_id == case_id,
        t.handoffs.c.state.notin_([HandoffState.STOPPED.value]))
        .order_by(t.handoffs.c.agency_id))]


def claim_handoff(conn: Connection, handoff_id: int, now: datetime) -> bool:
    """pending|retrying → sending, attempts + 1; False if a withdrawal or another process got
    there first."""
    return conn.execute(update(t.handoffs).where(
        t.handoffs.c.id == handoff_id, t.handoffs.c.state.in_(ACTIVE))
        .values(state=HandoffState.SENDING.value, attempts=t.handoffs.c.attempts + 1,
                updated_at=now)).rowcount == 1


def mark_delivered(conn: Connection, handoff_id: int, now: datetime) -> None:
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id).values(
        state=HandoffState.DELIVERED.value, delivered_at=now, updated_at=now, last_error=""))


def mark_redirected(conn: Connection, handoff_id: int, now: datetime) -> None:
    """sending → redirected: the candidate goes to the agency's own form; nothing was sent."""
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id).values(
        state=HandoffState.REDIRECTED.value, updated_at=now, last_error=""))


def mark_possibly_delivered(conn: Connection, row: Handoff, error: str, now: datetime) -> bool:
    """sending → maybe_delivered (possibly delivered; no more attempts); False if it is no
    longer `sending`."""
    return conn.execute(update(t.handoffs).where(
        t.handoffs.c.id == row.id, t.handoffs.c.state == HandoffState.SENDING.value).values(
        state=HandoffState.POSSIBLY_DELIVERED.value, last_error=error,
        updated_at=now)).rowcount > 0


def stop_handoffs(conn: Connection, consent_id: int, now: datetime) -> int:
    """Every handoff of this consent not yet delivered → stopped; returns how many."""
    return conn.execute(update(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id, t.handoffs.c.state.in_(STOPPABLE))
        .values(state=HandoffState.STOPPED.value, updated_at=now)).rowcount


def note_refusal(conn: Connection, handoff_id: int, reason: str, now: datetime) -> None:
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id)
                 .values(last_error=reason, updated_at=now))


def recheck_at(conn: Connection, handoff_id: int, when: datetime) -> None:
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id)
                 .values(next_attempt_at=when))


def resume_handoff(conn: Connection, handoff_id: int, now: datetime) -> None:
    """sending → retrying at once (a crashed run left it half sent)."""
    conn.execute(update(t.handoffs).where(
        t.handoffs.c.id == handoff_id, t.handoffs.c.state == HandoffState.SENDING.value).values(
        state=HandoffState.RETRYING.value, next_attempt_at=now, updated_at=now))


def kill_handoff(conn: Connection, handoff_id: int, error: str, now: datetime) -> None:
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id).values(
        state=HandoffState.DEAD.value, last_error=error, updated_at=now))


def _table(row: Handoff | DeletionNotice) -> Any:
    return t.deletion_notices if isinstance(row, DeletionNotice) else t.handoffs


def retry_later(conn: Connection, row: Handoff | DeletionNotice, error: str,
                next_attempt_at: datetime, now: datetime) -> bool:
    """sending → retrying; False if the row is no longer `sending`."""
    table = _table(row)
    return conn.execute(update(table).where(
        table.c.id == row.id, table.c.state == HandoffState.SENDING.value).values(
        state=HandoffState.RETRYING.value, last_error=error, updated_at=now,
        next_attempt_at=next_attempt_at)).rowcount > 0


def give_up(conn: Connection, row: Handoff | DeletionNotice, error: str, now: datetime) -> bool:
    """sending → dead; False if the row is no longer `sending`."""
    table = _table(row)
    return conn.execute(update(table).where(
        table.c.id == row.id, table.c.state == HandoffState.SENDING.value).values(
        state=HandoffState.DEAD.value, last_error=error, updated_at=now)).rowcount > 0


# --- references ------------------------------------------------------------------------------
def reference_of(conn: Connection, handoff_id: int) -> str | None:
    return conn.execute(select(t.handoff_references.c.reference).where(
        t.handoff_references.c.handoff_id == handoff_id)).scalar_one_or_none()


def reference_made_at(conn: Connection, handoff_id: int) -> datetime | None:
    """When the handoff's reference was made: its first attempt."""
    return conn.execute(select(t.handoff_references.c.created_at).where(
        t.handoff_references.c.handoff_id == handoff_id)).scalar_one_or_none()


def add_reference(conn: Connection, handoff: Handoff, reference: str, channel: str,
                  now: datetime) -> None:
    conn.execute(insert(t.handoff_references).values(
        handoff_id=handoff.id, agency_id=handoff.agency_id, reference=reference,
        channel=channel, created_at=now))


def last_signed(conn: Connection, handoff_id: int) -> int | None:
    return conn.execute(select(t.handoff_references.c.last_signed).where(
        t.handoff_references.c.handoff_id == handoff_id)).scalar_one_or_none()


def set_last_signed(conn: Connection, handoff_id: int, timestamp: int) -> None:
    conn.execute(update(t.handoff_references).where(
        t.handoff_references.c.handoff_id == handoff_id).values(last_signed=timestamp))


def handoff_by_reference(conn: Connection, agency_id: str, reference: str) -> Handoff | None:
    """The handoff this agency received under `reference` (None for another agency's)."""
    row = conn.execute(
        select(t.handoffs)
        .join(t.handoff_references, t.handoff_references.c.handoff_id == t.handoffs.c.id)
        .where(t.handoff_references.c.reference == reference,
               t.handoff_references.c.agency_id == agency_id)).first()
    return _handoff(row) if row is not None else None


def agency_of_reference(conn: Connection, reference: str) -> str | None:
    return conn.execute(select(t.handoff_references.c.agency_id).where(
        t.handoff_references.c.reference == reference)).scalar_one_or_none()


# --- deletion notices ------------------------------------------------------------------------
def queue_deletion_notice(conn: Connection, handoff: Handoff, now: datetime) -> bool:
    """One notice per handoff; False if it is already queued."""
    try:
        with conn.begin_nested():
            conn.execute(insert(t.deletion_notices).values(
                handoff_id=handoff.id, case_id=handoff.case_id, agency_id=handoff.agency_id,
                state="pending", attempts=0, next_attempt_at=now, last_error="",
                created_at=now, updated_at=now))
    except IntegrityError:
        return False
    return True


def pending_deletion_notices(conn: Connection, now: datetime, limit: int = 100
                             ) -> list[DeletionNotice]:
    rows = conn.execute(
        select(t.deletion_notices)
        .where(t.deletion_notices.c.state.in_(["pending", "retrying"]),
               (t.deletion_notices.c.next_attempt_at.is_(None))
               | (t.deletion_notices.c.next_attempt_at <= now))
        .order_by(t.deletion_notices.c.id).limit(limit))
    return [_notice(r) for r in rows]


def claim_notice(conn: Connection, notice_id: int, now: datetime) -> bool:
    return conn.execute(update(t.deletion_notices).where(
        t.deletion_notices.c.id == notice_id, t.deletion_notices.c.state.in_(ACTIVE))
        .values(state=HandoffState.SENDING.value,
                attempts=t.deletion_notices.c.attempts + 1, updated_at=now)).rowcount == 1


def mark_notice_sent(conn: Connection, notice_id: int, now: datetime) -> None:
    conn.execute(update(t.deletion_notices).where(t.deletion_notices.c.id == notice_id)
                 .values(state="sent", sent_at=now, updated_at=now, last_error=""))


def resume_notices(conn: Connection, now: datetime) -> None:
    """Every notice a crashed run left `sending` goes out again at once."""
    conn.execute(update(t.deletion_notices).where(
        t.deletion_notices.c.state == HandoffState.SENDING.value)
        .values(state=HandoffState.RETRYING.value, next_attempt_at=now, updated_at=now))


# --- provision records -----------------------------------------------------------------------
def add_provision_record(conn: Connection, record: ProvisionRecord) -> int | None:
    """Write the record; None if this handoff already has one (a resent duplicate)."""
    exists = conn.execute(select(t.provision_records.c.id).where(
        t.provision_records.c.handoff_id == record.handoff_id)).scalar_one_or_none()
    if exists is not None:
        return None
    return conn.execute(insert(t.provision_records).values(
        handoff_id=record.handoff_id, consent_id=record.consent_id, case_id=record.case_id,
        consent_reference=record.consent_reference, consented_at=record.consented_at,
        agency_id=record.agency_id, recipient_legal_name=record.recipient_legal_name,
        recipient_address=record.recipient_address, recipient_country=record.recipient_country,
        candidate_ref=record.candidate_ref, items_json=json.dumps(sorted(record.items)),
        channel=record.channel, destination=record.destination,
        provided_at=record.provided_at, keep_until=record.keep_until, note=record.note,
    )).inserted_primary_key[0]


def _records(rows: Any) -> list[ProvisionRecord]:
    out = []
    for r in rows:
        values = dict(r._mapping)
        values["items"] = json.loads(values.pop("items_json"))
        out.append(ProvisionRecord(**values))
    return out


def provision_records_between(conn: Connection, since: datetime, until: datetime
                              ) -> list[ProvisionRecord]:
    return _records(conn.execute(select(t.provision_records).where(
        t.provision_records.c.provided_at >= since, t.provision_records.c.provided_at < until)
        .order_by(t.provision_records.c.id)))


def provision_records_of_case(conn: Connection, case_id: int) -> list[ProvisionRecord]:
    return _records(conn.execute(select(t.provision_records).where(
        t.provision_records.c.case_id == case_id).order_by(t.provision_records.c.id)))


def deletion_notices_of_case(conn: Connection, case_id: int) -> list[DeletionNotice]:
    return [_notice(r) for r in conn.execute(select(t.deletion_notices).where(
        t.deletion_notices.c.case_id == case_id).order_by(t.deletion_notices.c.id))]


# --- status ----------------------------------------------------------------------------------
def handoff_status(conn: Connection) -> dict[str, Any]:
    """Counts by state and the dead ones, for `career-relay status`."""
    by_state = dict(conn.execute(select(t.handoffs.c.state, func.count())
                                 .group_by(t.handoffs.c.state)).all())
    notices = dict(conn.execute(select(t.deletion_notices.c.state, func.count())
                                .group_by(t.deletion_notices.c.state)).all())
    dead = [{"handoff": r.id, "case": r.case_id, "agency": r.agency_id, "error": r.last_error}
            for r in conn.execute(select(t.handoffs).where(
                t.handoffs.c.state == HandoffState.DEAD.value)
                .order_by(t.handoffs.c.id.desc()).limit(50))]
    dead += [{"deletion_notice": r.id, "case": r.case_id, "agency": r.agency_id,
              "error": r.last_error}
             for r in conn.execute(select(t.deletion_notices).where(
                 t.deletion_notices.c.state == HandoffState.DEAD.value)
                 .order_by(t.deletion_notices.c.id.desc()).limit(50))]
    possibly = [{"handoff": r.id, "case": r.case_id, "agency": r.agency_id,
                 "error": r.last_error}
                for r in conn.execute(select(t.handoffs).where(
                    t.handoffs.c.state == HandoffState.POSSIBLY_DELIVERED.value)
                    .order_by(t.handoffs.c.id.desc()).limit(50))]
    return {"handoffs": by_state, "deletion_notices": notices, "dead": dead,
            "possibly_delivered": possibly}
