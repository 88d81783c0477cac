"""Consent evidence and the relay status of a case, in the store.

    invitation:  open → consented | declined | expired;  consented → withdrawn
    handoff:     pending → delivered | retrying → dead;  pending/retrying/sending → stopped
                 (by a withdrawal); one deletion notice per delivered handoff after withdrawal

"open" is the absence of a `relay_status` row. Consent, decline and expiry each insert that
row, so whichever comes first wins and the others fail cleanly; the consent token's `used_at`
is set in the same transaction (single use). Every decision writes an audit row that names the
case and agency ids, never the person.

For the handoff deliverer: `pending_handoffs()` lists what is due, `active_grant()` says whether
an active consent names this agency and which fields and preferences it may receive (call it in
the transaction that sends, immediately before sending), `mark_handoff_delivered()` records the
delivery and, if a withdrawal raced the delivery, queues the deletion notice itself.
"""

from __future__ import annotations

import enum
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.config import Config
from relay_core.errors import ConsentRefused
from relay_core.records.consent import tokens
from relay_core.records.consent.disclosure import (
    METHOD,
    PREFERENCE_FIELDS,
    PREFERENCE_LIMITS,
    ConsentText,
    shown_agencies,
)
from relay_core.store import Store, utcnow
from relay_core.store import tables as t

ACTOR = "candidate:web"
# A withdraw link must keep working long after the invitation expired; it is single use and
# only ever withdraws, so a long life costs nothing.
WITHDRAW_TTL_DAYS = 3650


class RelayStatus(str, enum.Enum):
    OPEN = "open"
    CONSENTED = "consented"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class HandoffState(str, enum.Enum):
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"
    STOPPED = "stopped"


STOPPABLE = (HandoffState.PENDING.value, HandoffState.RETRYING.value, HandoffState.SENDING.value)


@dataclass
class WithdrawalResult:
    stopped_handoffs: int
    deletion_notices: int


@dataclass
class Grant:
    """What one agency may receive under an active consent."""

    consent_id: int
    case_id: int
    agency_id: str
    fields: list[str]
    preferences: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Grant(consent={self.consent_id}, agency={self.agency_id}, fields={self.fields})"


# --- reading ---------------------------------------------------------------------------------
def relay_status(conn: Connection, case_id: int) -> RelayStatus:
    value = conn.execute(select(t.relay_status.c.status).where(
        t.relay_status.c.case_id == case_id)).scalar_one_or_none()
    return RelayStatus(value) if value else RelayStatus.OPEN


def consent_for_case(conn: Connection, case_id: int) -> dict[str, Any] | None:
    """The consent record with its agencies (`agencies`: [{agency_id, legal_name, fields}])."""
    row = conn.execute(select(t.consents).where(t.consents.c.case_id == case_id)).first()
    if row is None:
        return None
    record = dict(row._mapping)
    record["agencies"] = [
        {"agency_id": a.agency_id, "legal_name": a.legal_name, "fields": json.loads(a.fields_json)}
        for a in conn.execute(select(t.consent_agencies).where(
            t.consent_agencies.c.consent_id == row.id).order_by(t.consent_agencies.c.agency_id))]
    return record


def active_grant(conn: Connection, case_id: int, agency_id: str) -> Grant | None:
    """The fields (and filled-in preferences) this agency may receive for this case, or None
    when no active consent names it (reference/privacy_email.md sec. 6 item 1)."""
    row = conn.execute(
        select(t.consents.c.id, t.consent_agencies.c.fields_json)
        .join(t.consent_agencies, t.consent_agencies.c.consent_id == t.consents.c.id)
        .join(t.relay_status, t.relay_status.c.case_id == t.consents.c.case_id)
        .where(t.consents.c.case_id == case_id, t.consent_agencies.c.agency_id == agency_id,
               t.consents.c.withdrawn_at.is_(None),
               t.relay_status.c.status == RelayStatus.CONSENTED.value)).first()
    if row is None:
        return None
    fields = json.loads(row.fields_json)
    prefs = conn.execute(select(t.consent_preferences).where(
        t.consent_preferences.c.consent_id == row.id)).first()
    preferences = {}
    if prefs is not None:
        preferences = {k: getattr(prefs, k) for k in PREFERENCE_FIELDS
                       if k in fields and getattr(prefs, k)}
    return Grant(row.id, case_id, agency_id, fields, preferences)


def consent_allows(conn: Connection, case_id: int, agency_id: str, field_name: str) -> bool:
    grant = active_grant(conn, case_id, agency_id)
    return grant is not None and field_name in grant.fields


def pending_handoffs(conn: Connection, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Handoffs due now (pending, or retrying whose time has come) of consents still active."""
    rows = conn.execute(
        select(t.handoffs)
        .join(t.consents, t.consents.c.id == t.handoffs.c.consent_id)
        .where(t.handoffs.c.state.in_([HandoffState.PENDING.value, HandoffState.RETRYING.value]),
               (t.handoffs.c.next_attempt_at.is_(None)) | (t.handoffs.c.next_attempt_at <= now),
               t.consents.c.withdrawn_at.is_(None))
        .order_by(t.handoffs.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def pending_deletion_notices(conn: Connection, now: datetime, limit: int = 100
                             ) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(t.deletion_notices)
        .where(t.deletion_notices.c.state.in_(["pending", "retrying"]),
               (t.deletion_notices.c.next_attempt_at.is_(None))
               | (t.deletion_notices.c.next_attempt_at <= now))
        .order_by(t.deletion_notices.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def mark_handoff_delivered(store: Store, conn: Connection, handoff_id: int,
                           now: datetime | None = None) -> bool:
    """Record that the agency has the data. If a withdrawal stopped this handoff while it was
    being sent, the data still arrived: it becomes `delivered` and its deletion notice is
    queued at once. Returns False in that case."""
    now = now or utcnow()
    row = conn.execute(select(t.handoffs).where(t.handoffs.c.id == handoff_id)).one()
    conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id).values(
        state=HandoffState.DELIVERED.value, delivered_at=now, updated_at=now, last_error=""))
    store.audit(conn, row.case_id, "handoff", "handoff_delivered", reason=f"agency {row.agency_id}",
                from_state=row.state, to_state=HandoffState.DELIVERED.value, at=now)
    if row.state != HandoffState.STOPPED.value:
        return True
    _queue_deletion_notice(conn, row, now)
    store.audit(conn, row.case_id, "handoff", "deletion_queued",
                reason=f"agency {row.agency_id}: delivered after withdrawal", at=now)
    return False


# --- deciding --------------------------------------------------------------------------------
def _set_status(conn: Connection, case_id: int, status: RelayStatus, now: datetime) -> bool:
    try:
        with conn.begin_nested():
            conn.execute(insert(t.relay_status).values(case_id=case_id, status=status.value,
                                                       changed_at=now))
    except IntegrityError:
        return False
    return True


def clean_preferences(form: dict[str, str]) -> dict[str, str]:
    """Trimmed, length-capped preferences without control characters (newlines kept only in
    the message)."""
    out = {}
    for key in PREFERENCE_FIELDS:
        value = unicodedata.normalize("NFC", str(form.get(key) or ""))
        keep = "\n" if key == "message" else ""
        value = "".join(c for c in value.replace("\r\n", "\n")
                        if c in keep or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
        out[key] = value.strip()[:PREFERENCE_LIMITS[key]]
    return out


def _claim_invitation(conn: Connection, invitation: tokens.Invitation, now: datetime) -> None:
    if invitation.expires_at <= now:
        raise ConsentRefused("expired", "the invitation has expired")
    if not tokens.use(conn, invitation.id, now):
        raise ConsentRefused("used", "this invitation was already answered")


def record_consent(store: Store, conn: Connection, config: Config, *,
                   invitation: tokens.Invitation, case: dict[str, Any], agency_ids: list[str],
                   text: ConsentText, preferences: dict[str, str], now: datetime | None = None
                   ) -> int:
    """Record a consent to exactly these agencies and queue one pending handoff each. Raises
    ConsentRefused (nothing written) when the invitation was used, expired or decided."""
    now = now or utcnow()
    if invitation.purpose != "consent" or invitation.case_id != case["id"]:
        raise ConsentRefused("tampered", "this session does not belong to a consent link")
    offered = {a.id: a for a in shown_agencies(config)}
    chosen = sorted(set(agency_ids))
    if not chosen:
        raise ConsentRefused("none", "no agency was ticked")
    if any(a not in offered for a in chosen):
        raise ConsentRefused("tampered", "an agency that is not offered was submitted")
    _claim_invitation(conn, invitation, now)
    if not _set_status(conn, case["id"], RelayStatus.CONSENTED, now):
        raise ConsentRefused("used", "this invitation was already answered")
    consent_id = conn.execute(insert(t.consents).values(
        case_id=case["id"], invitation_id=invitation.id, source=case["source"],
        application_id=case["application_id"], candidate_id=case["candidate_id"] or "",
        text_version=text.version, text_sha256=text.sha256, language=text.language,
        method=METHOD, consented_at=now)).inserted_primary_key[0]
    for agency_id in chosen:
        agency = offered[agency_id]
        conn.execute(insert(t.consent_agencies).values(
            consent_id=consent_id, agency_id=agency_id, legal_name=agency.legal_name,
            fields_json=json.dumps(list(agency.fields))))
        conn.execute(insert(t.handoffs).values(
            consent_id=consent_id, case_id=case["id"], agency_id=agency_id,
            state=HandoffState.PENDING.value, attempts=0, next_attempt_at=now, last_error="",
            created_at=now, updated_at=now))
    if any(preferences.get(k) for k in PREFERENCE_FIELDS):
        conn.execute(insert(t.consent_preferences).values(
            consent_id=consent_id, **{k: preferences.get(k, "") for k in PREFERENCE_FIELDS}))
    store.audit(conn, case["id"], ACTOR, "consented", from_state=RelayStatus.OPEN.value,
                to_state=RelayStatus.CONSENTED.value, at=now,
                reason=f"agencies {', '.join(chosen)}; text {text.version} {text.sha256[:16]}; "
                       f"{text.language}; {METHOD}")
    return consent_id


def record_decline(store: Store, conn: Connection, *, invitation: tokens.Invitation,
                   case: dict[str, Any], now: datetime | None = None) -> None:
    now = now or utcnow()
    if invitation.purpose != "consent" or invitation.case_id != case["id"]:
        raise ConsentRefused("tampered", "this session does not belong to a consent link")
    _claim_invitation(conn, invitation, now)
    if not _set_status(conn, case["id"], RelayStatus.DECLINED, now):
        raise ConsentRefused("used", "this invitation was already answered")
    store.audit(conn, case["id"], ACTOR, "declined", from_state=RelayStatus.OPEN.value,
                to_state=RelayStatus.DECLINED.value, reason=METHOD, at=now)


def mint_withdraw_token(conn: Connection, key: bytes, case_id: int,
                        now: datetime | None = None) -> str:
    return tokens.mint(conn, key, case_id, "withdraw", timedelta(days=WITHDRAW_TTL_DAYS), now)


def withdraw(store: Store, conn: Connection, case_id: int, *, method: str = METHOD,
             now: datetime | None = None) -> WithdrawalResult:
    """consented → withdrawn: stop every handoff not yet delivered, queue one deletion notice
    per delivered one, delete the preferences. Raises ConsentRefused if nothing is consented."""
    now = now or utcnow()
    changed = conn.execute(update(t.relay_status).where(
        t.relay_status.c.case_id == case_id,
        t.relay_status.c.status == RelayStatus.CONSENTED.value)
        .values(status=RelayStatus.WITHDRAWN.value, changed_at=now)).rowcount
    if changed != 1:
        status = relay_status(conn, case_id)
        raise ConsentRefused("withdrawn" if status == RelayStatus.WITHDRAWN else "no_consent",
                             f"nothing to withdraw (relay status {status.value})")
    consent_id = conn.execute(select(t.consents.c.id).where(
        t.consents.c.case_id == case_id)).scalar_one()
    conn.execute(update(t.consents).where(t.consents.c.id == consent_id)
                 .values(withdrawn_at=now, withdrawal_method=method))
    stopped = conn.execute(update(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id, t.handoffs.c.state.in_(STOPPABLE))
        .values(state=HandoffState.STOPPED.value, updated_at=now)).rowcount
    delivered = conn.execute(select(t.handoffs).where(
        t.handoffs.c.consent_id == consent_id,
        t.handoffs.c.state == HandoffState.DELIVERED.value)).all()
    for handoff in delivered:
        _queue_deletion_notice(conn, handoff, now)
    conn.execute(t.consent_preferences.delete().where(
        t.consent_preferences.c.consent_id == consent_id))
    store.audit(conn, case_id, ACTOR, "withdrawn", from_state=RelayStatus.CONSENTED.value,
                to_state=RelayStatus.WITHDRAWN.value, at=now,
                reason=f"{method}; {stopped} handoff(s) stopped; {len(delivered)} deletion "
                       "notice(s) queued")
    return WithdrawalResult(stopped, len(delivered))


def _queue_deletion_notice(conn: Connection, handoff: Any, now: datetime) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(t.deletion_notices).values(
                handoff_id=handoff.id, case_id=handoff.case_id, agency_id=handoff.agency_id,
                state="pending", attempts=0, next_attempt_at=now, last_error="",
                created_at=now, updated_at=now))
    except IntegrityError:
        pass  # already queued


def expire_invitations(store: Store, now: datetime | None = None, limit: int = 1000) -> int:
    """open → expired for every consent invitation past its expiry and never answered."""
    now = now or utcnow()
    expired = 0
    with store.begin() as conn:
        # A case mailed twice (a failed send retried) has two links: it expires with the last.
        inv = t.invitations
        rows = conn.execute(
            select(inv.c.case_id)
            .outerjoin(t.relay_status, t.relay_status.c.case_id == inv.c.case_id)
            .where(inv.c.purpose == "consent", t.relay_status.c.case_id.is_(None))
            .group_by(inv.c.case_id)
            .having(func.max(inv.c.expires_at) <= now, func.count(inv.c.used_at) == 0)
            .order_by(inv.c.case_id).limit(limit)).scalars().all()
        for case_id in rows:
            if _set_status(conn, case_id, RelayStatus.EXPIRED, now):
                store.audit(conn, case_id, "expire", "invitation_expired",
                            from_state=RelayStatus.OPEN.value,
                            to_state=RelayStatus.EXPIRED.value, at=now,
                            reason="the invitation was not answered before it expired")
                expired += 1
    return expired
