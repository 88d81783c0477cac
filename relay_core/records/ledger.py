"""Agency events and the credit ledger.

Agencies report `registered`, `placed` and `placement_cancelled` for a reference they received
with a handoff (or through the redirect form), signed at `POST /agency/<id>/events`
(web/agency.py) or as a CSV that HR imports (`career-relay agency-events import`). An event is
stored once per (agency, event id), so a resent event is harmless; an unknown reference, or a
reference that belongs to another agency, is refused with the same message (no probing).

Credits (`[ledger]`): `per_registrations = N` earns one free referral slot per N registrations
with that agency; `per_placement` one per placement, and a cancelled placement writes a
negative entry that reverses it. `yen_per_credit` turns credits into recovered cost. The ledger
is append-only (a database trigger refuses UPDATE and DELETE). Credit accounting stays off unless
[ledger.legal_review] records a legal review: who reviewed the model, when, the document, and
the 特定募集情報等提供 notification number where one applies (config.py LegalReview;
reference/privacy_email.md sec. 1.8(c) and sec. 6 item 12); events are still recorded and
reported, only credits are not computed. The first event the ledger decides under a review
writes that review to `ledger_attestations` and the audit log (`legal_review_in_force`), so it
is on record which review every credit rests on; `career-relay report` shows it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from relay_core.config import Config
from relay_core.contract.times import read_time
from relay_core.errors import EventRefused, RecordError
from relay_core.store import Connection, Store, handoffs, utcnow
from relay_core.store.handoffs import Handoff
from relay_core.store.ledger import (
    Attestation,
    CreditEntry,
    add_attestation,
    add_credit,
    add_event,
    count_events,
    find_event,
)
from relay_core.store.ledger import balances as balances  # read here by its callers

EVENT_KINDS = ("registered", "placed", "placement_cancelled")


@dataclass(frozen=True)
class AgencyEvent:
    event_id: str
    kind: str
    reference: str
    occurred_at: datetime | None = None


@dataclass
class EventResult:
    event_id: str
    status: str            # "stored" | "duplicate"
    credits: int = 0


def _handoff_for(conn: Connection, agency_id: str, reference: str) -> Handoff:
    handoff = handoffs.handoff_by_reference(conn, agency_id, reference)
    # Delivered, possibly delivered, or sent to the agency's own form (the reference went
    # with the candidate): an agency can know the reference only in these states.
    if handoff is None or handoff.state not in ("delivered", "maybe_delivered",
                                                "redirected"):
        raise EventRefused(f"unknown reference {reference[:64]!r} for agency {agency_id}: send "
                           "the `reference` of a candidate handed to you (cr_…)")
    return handoff


def _count(conn: Connection, handoff_id: int, kind: str) -> int:
    return count_events(conn, kind, handoff_id=handoff_id)


def record_event(store: Store, conn: Connection, config: Config, agency_id: str,
                 event: AgencyEvent, *, via: str, now: datetime | None = None) -> EventResult:
    now = now or utcnow()
    if event.kind not in EVENT_KINDS:
        raise EventRefused(f"event {event.event_id[:64]!r}: type must be one of "
                           + ", ".join(EVENT_KINDS))
    if not event.event_id or len(event.event_id) > 128:
        raise EventRefused("every event needs an `id` of 1 to 128 characters")
    handoff = _handoff_for(conn, agency_id, event.reference)
    known = find_event(conn, agency_id, event.event_id)
    if known is not None:
        if (known.kind, known.reference) != (event.kind, event.reference):
            raise EventRefused(f"event id {event.event_id[:64]!r} was already used for another "
                               "event; give each event its own id")
        return EventResult(event.event_id, "duplicate")
    registered = _count(conn, handoff.id, "registered")
    active_placements = (_count(conn, handoff.id, "placed")
                         - _count(conn, handoff.id, "placement_cancelled"))
    if event.kind == "registered" and registered:
        return EventResult(event.event_id, "duplicate")   # one registration per candidate
    if event.kind == "placed" and active_placements > 0:
        return EventResult(event.event_id, "duplicate")
    if event.kind == "placement_cancelled" and active_placements <= 0:
        raise EventRefused(f"event {event.event_id[:64]!r}: no placement of "
                           f"{event.reference[:64]!r} to cancel")
    occurred = event.occurred_at or now
    row_id = add_event(
        conn, agency_id=agency_id, event_id=event.event_id, kind=event.kind,
        reference=event.reference, handoff_id=handoff.id, case_id=handoff.case_id,
        occurred_at=occurred, received_at=now, via=via)
    if row_id is None:
        return EventResult(event.event_id, "duplicate")    # the same event, concurrently
    if config.ledger.enabled:
        _note_attestation(store, conn, config, handoff.case_id, now)
    credits = _credit(conn, config, agency_id, row_id, event.kind, occurred, now)
    store.audit(conn, handoff.case_id, f"agency:{agency_id}", "agency_event", at=now,
                reason=f"{event.kind} ref {event.reference} via {via}"
                       + (f"; credits {credits:+d}" if credits else ""))
    return EventResult(event.event_id, "stored", credits)


def _note_attestation(store: Store, conn: Connection, config: Config, case_id: int,
                      now: datetime) -> None:
    """On its first use, put the legal review credits rest on into the record."""
    review = config.ledger.legal_review
    entry = Attestation(fingerprint=review.fingerprint, reviewer=review.reviewer,
                        reviewed_on=review.reviewed_on.isoformat(), document=review.document,
                        notification_number=review.notification_number,
                        rule=config.ledger.rule, first_used_at=now)
    if add_attestation(conn, entry):
        store.audit(conn, None, "ledger", "legal_review_in_force", at=now,
                    reason=f"credits ({config.ledger.rule}) computed under the legal review "
                           f"{review.summary()} (fingerprint {review.fingerprint[:16]}); first "
                           f"used for case {case_id}")


def _credit(conn: Connection, config: Config, agency_id: str, row_id: int, kind: str,
            occurred: datetime, now: datetime) -> int:
    ledger = config.ledger
    if not ledger.enabled:
        return 0
    credits, reason = 0, ""
    if ledger.rule == "per_registrations" and kind == "registered":
        total = count_events(conn, "registered", agency_id=agency_id)
        if total % ledger.per_registrations == 0:
            credits, reason = 1, f"{total} registrations (one slot per {ledger.per_registrations})"
    elif ledger.rule == "per_placement" and kind == "placed":
        credits, reason = 1, "placement"
    elif ledger.rule == "per_placement" and kind == "placement_cancelled":
        credits, reason = -1, "placement cancelled: reversal"
    if credits:
        add_credit(conn, CreditEntry(
            agency_id=agency_id, event_row_id=row_id, rule=ledger.rule, credits=credits,
            yen=credits * ledger.yen_per_credit, reason=reason, occurred_at=occurred,
            created_at=now))
    return credits


# --- parsing ---------------------------------------------------------------------------------
def parse_moment(value: str, config: Config) -> datetime:
    try:
        return read_time(value, config.company.tz)
    except ValueError:
        raise ValueError(f"{value.strip()[:40]!r} is not a date (2025-07-01) or an ISO "
                         "date-time") from None


def event_from_json(item: Any, config: Config) -> AgencyEvent:
    if not isinstance(item, dict):
        raise EventRefused("each event must be a JSON object")
    unknown = set(item) - {"id", "type", "reference", "occurred_at"}
    if unknown:
        raise EventRefused("unknown keys " + ", ".join(sorted(unknown)[:5])
                           + "; an event has id, type, reference, occurred_at")
    for key in ("id", "type", "reference"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise EventRefused(f"every event needs `{key}` (a string)")
    occurred = None
    if item.get("occurred_at") is not None:
        try:
            occurred = parse_moment(str(item["occurred_at"]), config)
        except ValueError as exc:
            raise EventRefused(f"occurred_at: {exc}") from None
    return AgencyEvent(item["id"].strip(), item["type"].strip(), item["reference"].strip(),
                       occurred)


# --- CSV import ------------------------------------------------------------------------------
@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    credits: int = 0
    errors: list[str] = field(default_factory=list)


CSV_COLUMNS = ("reference", "type", "occurred_at")


def import_csv(store: Store, config: Config, path: Path, *, agency_id: str | None = None,
               now: datetime | None = None) -> ImportReport:
    """Columns: reference, type, occurred_at, and optionally event_id and agency_id (header row
    required; UTF-8 with or without BOM). Good rows are stored, bad rows reported by line."""
    now = now or utcnow()
    report = ImportReport()
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(str(path), f"cannot read it as UTF-8 CSV ({type(exc).__name__})") \
            from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise RecordError(f"{path} line 1", "missing column(s) " + ", ".join(missing)
                          + "; the header must name reference, type, occurred_at")
    reader.fieldnames = header
    for line, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        try:
            agency = row.get("agency_id") or agency_id
            if not agency:
                agency = _agency_of(store, row["reference"])
            if agency_id and agency != agency_id:
                raise EventRefused(f"row names agency {agency!r}, the import is for {agency_id}")
            occurred = parse_moment(row["occurred_at"], config)
            event_id = row.get("event_id") or (
                f"csv:{row['type']}:{row['reference']}:{occurred.isoformat()}")
            with store.begin() as conn:
                result = record_event(store, conn, config, agency, AgencyEvent(
                    event_id, row["type"], row["reference"], occurred), via="csv", now=now)
        except (EventRefused, ValueError) as exc:
            report.errors.append(f"{path.name} line {line}: {exc}")
            continue
        if result.status == "stored":
            report.stored += 1
            report.credits += result.credits
        else:
            report.duplicates += 1
    return report


def _agency_of(store: Store, reference: str) -> str:
    with store.engine.connect() as conn:
        found = handoffs.agency_of_reference(conn, reference)
    if found is None:
        raise EventRefused(f"unknown reference {reference[:64]!r}: use the reference of a "
                           "candidate handed to the agency (cr_…)")
    return found
