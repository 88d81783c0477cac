"""What `purge` and `export-incident` ask of the store.

Purge blanks exactly the columns that hold a candidate's personal data (relay_cases.email /
person_json / event_json / person_key / job_title, the outbox bytes and recipient) and deletes the
consent preferences; it deletes provision records only past their `keep_until`, and never a
consent text (a database trigger keeps every text a consent names). The caller runs it all
in one transaction. The incident queries read what was disclosed in a time window; their rows
hold recipient addresses, so their `repr` does not show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, update

from relay_core.store import tables as t


@dataclass(frozen=True, slots=True)
class HeldCase:
    """A case that still holds personal data."""

    id: int
    state: str
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class SentNotice:
    sent_at: datetime
    agency_id: str
    source: str
    application_id: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SentMail:
    sent_at: datetime
    kind: str
    source: str
    application_id: str = field(repr=False)
    recipient: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoggedIncident:
    at: datetime
    source: str
    application_id: str = field(repr=False)
    reason: str = field(repr=False)
    email: str | None = field(repr=False)


# --- purge -----------------------------------------------------------------------------------
def withdrawn_cases(conn: Connection) -> set[int]:
    return set(conn.execute(select(t.relay_status.c.case_id).where(
        t.relay_status.c.status == "withdrawn")).scalars())


def cases_with_handoffs_in(conn: Connection, states: tuple[str, ...]) -> set[int]:
    return set(conn.execute(select(t.handoffs.c.case_id).where(
        t.handoffs.c.state.in_(states))).scalars())


def cases_holding_personal_data(conn: Connection) -> list[HeldCase]:
    c = t.relay_cases.c
    return [HeldCase(r.id, r.state, r.rejected_at) for r in conn.execute(
        select(c.id, c.state, c.rejected_at).where(
            (c.email.isnot(None)) | (c.person_json.isnot(None)) | (c.event_json.isnot(None)))
        .order_by(c.id))]


def blank_case(conn: Connection, case_id: int, now: datetime) -> int:
    """Blank the case's personal data and its outbox copies; returns the outbox rows blanked."""
    conn.execute(update(t.relay_cases).where(t.relay_cases.c.id == case_id).values(
        email=None, person_json=None, event_json=None, person_key=None, job_title="",
        updated_at=now))
    return conn.execute(update(t.outbox).where(
        t.outbox.c.case_id == case_id,
        (t.outbox.c.message.isnot(None)) | (t.outbox.c.recipient.isnot(None)))
        .values(message=None, recipient=None)).rowcount


def mail_ids_of_case(conn: Connection, case_id: int) -> list[str]:
    """The Message-IDs of every outbox message of the case (their .eml files in a file outbox
    are named after them)."""
    return list(conn.execute(select(t.outbox.c.message_id).where(
        t.outbox.c.case_id == case_id)).scalars())


def references_of_case(conn: Connection, case_id: int) -> list[str]:
    """The handoff references of the case (agency mails are named after them)."""
    return list(conn.execute(
        select(t.handoff_references.c.reference)
        .join(t.handoffs, t.handoffs.c.id == t.handoff_references.c.handoff_id)
        .where(t.handoffs.c.case_id == case_id)).scalars())


def last_purge_at(conn: Connection, action: str) -> datetime | None:
    """When the last purge ran (its audit row), or None."""
    return conn.execute(select(func.max(t.audit_log.c.at)).where(
        t.audit_log.c.action == action, t.audit_log.c.case_id.is_(None))).scalar_one_or_none()


def delete_case_preferences(conn: Connection, case_id: int) -> int:
    consent_ids = list(conn.execute(select(t.consents.c.id).where(
        t.consents.c.case_id == case_id)).scalars())
    if not consent_ids:
        return 0
    return conn.execute(delete(t.consent_preferences).where(
        t.consent_preferences.c.consent_id.in_(consent_ids))).rowcount


def delete_provision_records_before(conn: Connection, moment: datetime) -> int:
    """Delete provision records whose `keep_until` has passed; returns how many."""
    return conn.execute(delete(t.provision_records).where(
        t.provision_records.c.keep_until < moment)).rowcount


def count_provision_records(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(t.provision_records)).scalar_one()


# --- incidents -------------------------------------------------------------------------------
def case_exists(conn: Connection, case_id: int) -> bool:
    return conn.execute(select(t.relay_cases.c.id).where(
        t.relay_cases.c.id == case_id)).first() is not None


def notices_sent_between(conn: Connection, since: datetime, until: datetime
                         ) -> list[SentNotice]:
    rows = conn.execute(
        select(t.deletion_notices.c.sent_at, t.deletion_notices.c.agency_id,
               t.relay_cases.c.source, t.relay_cases.c.application_id)
        .join(t.relay_cases, t.relay_cases.c.id == t.deletion_notices.c.case_id)
        .where(t.deletion_notices.c.sent_at >= since, t.deletion_notices.c.sent_at < until))
    return [SentNotice(r.sent_at, r.agency_id, r.source, r.application_id) for r in rows]


def mails_sent_between(conn: Connection, since: datetime, until: datetime) -> list[SentMail]:
    rows = conn.execute(
        select(t.outbox.c.kind, t.outbox.c.recipient, t.outbox.c.sent_at,
               t.relay_cases.c.source, t.relay_cases.c.application_id)
        .join(t.relay_cases, t.relay_cases.c.id == t.outbox.c.case_id)
        .where(t.outbox.c.state == "sent", t.outbox.c.sent_at >= since,
               t.outbox.c.sent_at < until))
    return [SentMail(r.sent_at, r.kind, r.source, r.application_id, r.recipient) for r in rows]


def incidents_between(conn: Connection, since: datetime, until: datetime
                      ) -> list[LoggedIncident]:
    rows = conn.execute(
        select(t.audit_log.c.at, t.audit_log.c.reason, t.relay_cases.c.source,
               t.relay_cases.c.application_id, t.relay_cases.c.email)
        .join(t.relay_cases, t.relay_cases.c.id == t.audit_log.c.case_id)
        .where(t.audit_log.c.action == "incident", t.audit_log.c.at >= since,
               t.audit_log.c.at < until))
    return [LoggedIncident(r.at, r.source, r.application_id, r.reason, r.email) for r in rows]
