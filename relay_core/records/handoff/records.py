"""APPI Art. 29 provision records (提供記録), one per transfer.

Written in the transaction that records a handoff as delivered, so no delivered handoff exists
without its record (reference/privacy_email.md sec. 1.4, sec. 6 item 6). For a consent-based
provision the record holds: that consent was obtained (the consent reference and time), the
recipient (legal name, address, country), the person (identifiers only: source, application and
candidate ids, so the record survives the deletion of the candidate's data), the items, and the
date (not required for consent-based provision, kept anyway).

Records are never updated (a database trigger refuses it) and are deleted only by `purge`, and
only after `keep_until`: three calendar years after the provision (item 7; Rule 21's principle;
each record covers exactly one provision, so "the later of creation and the last provision
covered" is the provision itself).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay_core.records.handoff.gate import Authorised
from relay_core.records.handoff.payload import consent_reference
from relay_core.store import Connection, handoffs
from relay_core.store.handoffs import ProvisionRecord

RETENTION_YEARS = 3


def add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:   # 29 February → 1 March: never a day short
        return moment.replace(year=moment.year + years, month=3, day=1)


def keep_until(provided_at: datetime) -> datetime:
    return add_years(provided_at, RETENTION_YEARS)


def candidate_ref(case: dict[str, Any]) -> str:
    ref = f"{case.source}/{case.application_id}"
    return f"{ref} (candidate {case.candidate_id})" if case.candidate_id else ref


def write_provision_record(conn: Connection, auth: Authorised, *, items: list[str],
                           channel: str, destination: str, provided_at: datetime,
                           note: str = "") -> int | None:
    """Insert the record for this handoff; None if it already has one (a resent duplicate)."""
    agency = auth.agency
    return handoffs.add_provision_record(conn, ProvisionRecord(
        handoff_id=auth.handoff.id, consent_id=auth.consent.id,
        case_id=auth.case.id, consent_reference=consent_reference(auth.consent),
        consented_at=auth.consent.consented_at, agency_id=agency.id,
        recipient_legal_name=agency.legal_name, recipient_address=agency.address,
        recipient_country=agency.country.upper(), candidate_ref=candidate_ref(auth.case),
        items=sorted(items), channel=channel, destination=destination,
        provided_at=provided_at, keep_until=keep_until(provided_at), note=note))
