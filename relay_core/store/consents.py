"""The consent aggregate in the store: invitation links, the relay status of a case, consent
evidence with its agencies and preferences, the exact consent texts, and the instance's own
signing key.

Records come out typed (`Invitation`, `ConsentRecord`, `ConsentAgency`, `ConsentPreferences`,
`StoredConsentText`);
every function takes the caller's connection, so a consent, its handoffs and its confirmation
email stay in the caller's one transaction. A unique key that refuses an insert (a second answer
to the same invitation) is reported as False here, never as an IntegrityError.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.models import RelayCase
from relay_core.store import cases, outbox
from relay_core.store import tables as t
from relay_core.store.outbox import QueuedMail


class RelayStatus(enum.StrEnum):
    OPEN = "open"
    CONSENTED = "consented"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Invitation:
    """A stored link (consent or withdraw); the token itself is never stored."""

    id: int
    case_id: int
    purpose: str
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredConsentText:
    """The exact consent text shown, kept once per SHA-256 of its bytes (no personal data)."""

    sha256: str
    language: str
    version: str
    html: str = field(repr=False)
    created_at: datetime | None = None

    @property
    def verified(self) -> bool:
        """The stored bytes still hash to the key they are stored under."""
        return hashlib.sha256(self.html.encode()).hexdigest() == self.sha256


@dataclass(frozen=True, slots=True)
class ConsentAgency:
    """One agency a consent names, with the exact data items it may receive."""

    agency_id: str
    legal_name: str
    fields: list[str]


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """Consent evidence (reference/privacy_email.md sec. 6 item 4): identifiers only. The ATS
    identifiers stay out of `repr` all the same."""

    id: int
    case_id: int
    invitation_id: int
    source: str = field(repr=False)
    application_id: str = field(repr=False)
    candidate_id: str = field(repr=False)
    text_version: str
    text_sha256: str
    language: str
    method: str
    consented_at: datetime
    withdrawn_at: datetime | None
    withdrawal_method: str | None
    agencies: tuple[ConsentAgency, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsentPreferences:
    """What the candidate chose to add; free text, so `repr` names only the filled fields."""

    desired_role: str = ""
    location: str = ""
    start_period: str = ""
    message: str = ""

    def __repr__(self) -> str:
        filled = [k for k in ("desired_role", "location", "start_period", "message")
                  if getattr(self, k)]
        return f"ConsentPreferences(filled={filled})"


# --- the instance's signing key --------------------------------------------------------------
def instance_key(conn: Connection, name: str) -> str | None:
    return conn.execute(select(t.instance_keys.c.value).where(
        t.instance_keys.c.name == name)).scalar_one_or_none()


def add_instance_key(conn: Connection, name: str, value: str, now: datetime) -> None:
    conn.execute(insert(t.instance_keys).values(name=name, value=value, created_at=now))


# --- invitations -----------------------------------------------------------------------------
def _invitation(row: Any) -> Invitation:
    return Invitation(row.id, row.case_id, row.purpose, row.expires_at, row.used_at,
                      row.created_at)


def add_invitation(conn: Connection, *, case_id: int, purpose: str, token_hash: str,
                   created_at: datetime, expires_at: datetime) -> None:
    conn.execute(insert(t.invitations).values(
        case_id=case_id, purpose=purpose, token_hash=token_hash, created_at=created_at,
        expires_at=expires_at))


def add_invitations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many links in one statement (rows as tokens.new_token makes them): the invitations of a
    batch of rejection emails, in the transaction that queues the emails."""
    if rows:
        conn.execute(insert(t.invitations), rows)


def invitation_by_token_hash(conn: Connection, token_hash: str) -> Invitation | None:
    row = conn.execute(select(t.invitations).where(
        t.invitations.c.token_hash == token_hash)).first()
    return _invitation(row) if row is not None else None


def invitation_by_id(conn: Connection, invitation_id: int) -> Invitation | None:
    row = conn.execute(select(t.invitations).where(t.invitations.c.id == invitation_id)).first()
    return _invitation(row) if row is not None else None


def invitations_of_case(conn: Connection, case_id: int) -> list[Invitation]:
    """Every link of a case (consent, withdraw, unsubscribe), oldest first."""
    return [_invitation(r) for r in conn.execute(select(t.invitations).where(
        t.invitations.c.case_id == case_id).order_by(t.invitations.c.id))]


def use_invitation(conn: Connection, invitation_id: int, now: datetime) -> bool:
    """Mark single use atomically; False if it was already used."""
    result = conn.execute(update(t.invitations).where(
        t.invitations.c.id == invitation_id, t.invitations.c.used_at.is_(None))
        .values(used_at=now))
    return result.rowcount == 1


def expired_invitation_cases(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Cases whose consent invitation is past its expiry, never answered and not decided.
    A case mailed twice (a failed send retried) has two links: it expires with the last."""
    inv = t.invitations
    return list(conn.execute(
        select(inv.c.case_id)
        .outerjoin(t.relay_status, t.relay_status.c.case_id == inv.c.case_id)
        .where(inv.c.purpose == "consent", t.relay_status.c.case_id.is_(None))
        .group_by(inv.c.case_id)
        .having(func.max(inv.c.expires_at) <= now, func.count(inv.c.used_at) == 0)
        .order_by(inv.c.case_id).limit(limit)).scalars())


# --- the case a consent belongs to -----------------------------------------------------------
def invitation_view(conn: Connection, invitation_id: int
                    ) -> tuple[Invitation, RelayCase, RelayStatus] | None:
    """The invitation, its case and the case's relay status in one query: the relay pages
    read all three on every request."""
    inv, status = t.invitations, t.relay_status
    row = conn.execute(
        select(inv.c.id, inv.c.case_id, inv.c.purpose, inv.c.expires_at, inv.c.used_at,
               inv.c.created_at, status.c.status, *cases.CASE_COLUMNS)
        .select_from(inv.join(t.relay_cases, t.relay_cases.c.id == inv.c.case_id)
                     .outerjoin(status, status.c.case_id == inv.c.case_id))
        .where(inv.c.id == invitation_id)).first()
    if row is None:
        return None
    return (Invitation(*row[:6]), cases.case_from_row(tuple(row[7:])),
            RelayStatus(row[6]) if row[6] else RelayStatus.OPEN)


def status_and_language(conn: Connection, case_id: int) -> tuple[RelayStatus, str]:
    """A case's relay status and language in one query (the link a candidate opens)."""
    row = conn.execute(
        select(t.relay_status.c.status, t.relay_cases.c.language)
        .select_from(t.relay_cases.outerjoin(t.relay_status,
                                             t.relay_status.c.case_id == t.relay_cases.c.id))
        .where(t.relay_cases.c.id == case_id)).one()
    return (RelayStatus(row[0]) if row[0] else RelayStatus.OPEN), row[1]


def case_language(conn: Connection, case_id: int) -> str:
    return conn.execute(select(t.relay_cases.c.language).where(
        t.relay_cases.c.id == case_id)).scalar_one()


# --- relay status ----------------------------------------------------------------------------
def relay_status(conn: Connection, case_id: int) -> RelayStatus:
    value = conn.execute(select(t.relay_status.c.status).where(
        t.relay_status.c.case_id == case_id)).scalar_one_or_none()
    return RelayStatus(value) if value else RelayStatus.OPEN


def decide_status(conn: Connection, case_id: int, status: RelayStatus, now: datetime) -> bool:
    """open → `status`; False when the case was already decided (the first answer wins)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(t.relay_status).values(case_id=case_id, status=status.value,
                                                       changed_at=now))
    except IntegrityError:
        return False
    return True


def withdraw_status(conn: Connection, case_id: int, now: datetime) -> bool:
    """consented → withdrawn; False when the case is not consented."""
    return conn.execute(update(t.relay_status).where(
        t.relay_status.c.case_id == case_id,
        t.relay_status.c.status == RelayStatus.CONSENTED.value)
        .values(status=RelayStatus.WITHDRAWN.value, changed_at=now)).rowcount == 1


# --- the consent texts -----------------------------------------------------------------------
def keep_consent_text(conn: Connection, sha256: str, *, language: str, version: str,
                      html: str, now: datetime) -> str | None:
    """Keep the text under its SHA-256 unless it is kept already; returns the hash, or None
    when `html` does not hash to `sha256` (then nothing is written)."""
    if hashlib.sha256(html.encode()).hexdigest() != sha256:
        return None
    if conn.execute(select(t.consent_texts.c.sha256).where(
            t.consent_texts.c.sha256 == sha256)).first() is not None:
        return sha256
    try:
        with conn.begin_nested():
            conn.execute(insert(t.consent_texts).values(
                sha256=sha256, language=language, version=version, html=html, created_at=now))
    except IntegrityError:
        pass    # the same text, kept by a concurrent consent: content-addressed, so equal
    return sha256


def consent_text(conn: Connection, sha256: str) -> StoredConsentText | None:
    row = conn.execute(select(t.consent_texts).where(
        t.consent_texts.c.sha256 == sha256)).first()
    return StoredConsentText(**row._mapping) if row is not None else None


# --- consent evidence ------------------------------------------------------------------------
def add_consent(conn: Connection, *, case_id: int, invitation_id: int, source: str,
                application_id: str, candidate_id: str, text_version: str, text_sha256: str,
                language: str, method: str, consented_at: datetime) -> int:
    return conn.execute(insert(t.consents).values(
        case_id=case_id, invitation_id=invitation_id, source=source,
        application_id=application_id, candidate_id=candidate_id, text_version=text_version,
        text_sha256=text_sha256, language=language, method=method,
        consented_at=consented_at)).inserted_primary_key[0]


def add_consent_agency(conn: Connection, consent_id: int, agency_id: str, legal_name: str,
                       fields: list[str]) -> None:
    conn.execute(insert(t.consent_agencies).values(
        consent_id=consent_id, agency_id=agency_id, legal_name=legal_name,
        fields_json=json.dumps(list(fields))))


def add_preferences(conn: Connection, consent_id: int, preferences: Mapping[str, str]) -> None:
    conn.execute(insert(t.consent_preferences).values(consent_id=consent_id, **preferences))


def _consent(conn: Connection, row: Any) -> ConsentRecord:
    agencies = tuple(
        ConsentAgency(a.agency_id, a.legal_name, json.loads(a.fields_json))
        for a in conn.execute(select(t.consent_agencies).where(
            t.consent_agencies.c.consent_id == row.id).order_by(t.consent_agencies.c.agency_id)))
    return ConsentRecord(**row._mapping, agencies=agencies)


def consent_for_case(conn: Connection, case_id: int) -> ConsentRecord | None:
    row = conn.execute(select(t.consents).where(t.consents.c.case_id == case_id)).first()
    return _consent(conn, row) if row is not None else None


def consent_by_id(conn: Connection, consent_id: int) -> ConsentRecord:
    return _consent(conn, conn.execute(select(t.consents).where(
        t.consents.c.id == consent_id)).one())


def active_consent_fields(conn: Connection, case_id: int, agency_id: str
                          ) -> tuple[int, list[str]] | None:
    """(consent id, fields) when an active consent of this case names this agency."""
    row = conn.execute(
        select(t.consents.c.id, t.consent_agencies.c.fields_json)
        .join(t.consent_agencies, t.consent_agencies.c.consent_id == t.consents.c.id)
        .join(t.relay_status, t.relay_status.c.case_id == t.consents.c.case_id)
        .where(t.consents.c.case_id == case_id, t.consent_agencies.c.agency_id == agency_id,
               t.consents.c.withdrawn_at.is_(None),
               t.relay_status.c.status == RelayStatus.CONSENTED.value)).first()
    return (row.id, json.loads(row.fields_json)) if row is not None else None


def preferences(conn: Connection, consent_id: int) -> ConsentPreferences | None:
    row = conn.execute(select(t.consent_preferences).where(
        t.consent_preferences.c.consent_id == consent_id)).first()
    if row is None:
        return None
    return ConsentPreferences(row.desired_role, row.location, row.start_period, row.message)


def mark_withdrawn(conn: Connection, case_id: int, method: str, now: datetime) -> int:
    """Stamp the case's consent as withdrawn; returns its id."""
    consent_id = conn.execute(select(t.consents.c.id).where(
        t.consents.c.case_id == case_id)).scalar_one()
    conn.execute(update(t.consents).where(t.consents.c.id == consent_id)
                 .values(withdrawn_at=now, withdrawal_method=method))
    return consent_id


def delete_preferences(conn: Connection, consent_id: int) -> None:
    conn.execute(t.consent_preferences.delete().where(
        t.consent_preferences.c.consent_id == consent_id))


# --- the confirmation email ------------------------------------------------------------------
def queue_confirmation_mail(conn: Connection, *, case_id: int, message_id: str, recipient: str,
                            message: bytes, now: datetime) -> None:
    """The consent's confirmation in the outbox, in the consent's own transaction."""
    outbox.enqueue(conn, "confirmation", [QueuedMail(case_id, message_id, recipient, message)],
                   now)


# --- invitations withheld (records/consent/requirements.py) ---------------------------------
def withheld_invitations(conn: Connection, action: str) -> dict[str, int]:
    """How many emails went out without the invitation, by recorded reason."""
    return dict(conn.execute(
        select(t.audit_log.c.reason, func.count()).where(t.audit_log.c.action == action)
        .group_by(t.audit_log.c.reason)).all())
