"""Consent evidence and the relay status of a case, in the store.

    invitation:  open → consented | declined | expired;  consented → withdrawn
    handoff:     pending → delivered | maybe_delivered | redirected | retrying → dead;
                 pending/retrying/sending → stopped (by a withdrawal); one deletion notice per
                 handoff that reached (or may have reached) its agency after withdrawal

"open" is the absence of a `relay_status` row. Consent, decline and expiry each insert that
row, so whichever comes first wins and the others fail cleanly; the consent token's `used_at`
is set in the same transaction (single use). Every decision writes an audit row that names the
case and agency ids, never the person.

For the handoff deliverer: `pending_handoffs()` lists what is due, `active_grant()` says whether
an active consent names this agency and which fields and preferences it may receive (call it in
the transaction that sends, immediately before sending), `mark_handoff_delivered()` records the
delivery and, if a withdrawal raced the delivery, queues the deletion notice itself.

The tables are read and written only through the store (store/consents.py, store/handoffs.py);
`relay_status`, `consent_for_case` and the two `pending_…` readers are the store's own, re-exported
here for the pages and the deliverer.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from relay_core.config import Agency, Config
from relay_core.errors import ConsentRefused, FatalError
from relay_core.records.agencies import consented_items
from relay_core.records.consent import tokens
from relay_core.records.consent.disclosure import (
    METHOD,
    PREFERENCE_FIELDS,
    PREFERENCE_LIMITS,
    ConsentText,
    shown_agencies,
)
from relay_core.store import Connection, Store, consents, handoffs, utcnow
from relay_core.store.consents import Invitation, RelayStatus, relay_status
from relay_core.store.consents import consent_for_case as consent_for_case
from relay_core.store.handoffs import HandoffState
from relay_core.store.handoffs import pending_deletion_notices as pending_deletion_notices
from relay_core.store.handoffs import pending_handoffs as pending_handoffs

ACTOR = "candidate:web"
# A withdraw link must keep working long after the invitation expired; it is single use and
# only ever withdraws, so a long life costs nothing.
WITHDRAW_TTL_DAYS = 3650


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
def active_grant(conn: Connection, case_id: int, agency_id: str) -> Grant | None:
    """The fields (and filled-in preferences) this agency may receive for this case, or None
    when no active consent names it (reference/privacy_email.md sec. 6 item 1)."""
    found = consents.active_consent_fields(conn, case_id, agency_id)
    if found is None:
        return None
    consent_id, fields = found
    prefs = consents.preferences(conn, consent_id)
    preferences = {}
    if prefs is not None:
        preferences = {k: getattr(prefs, k) for k in PREFERENCE_FIELDS
                       if k in fields and getattr(prefs, k)}
    return Grant(consent_id, case_id, agency_id, fields, preferences)


def consent_allows(conn: Connection, case_id: int, agency_id: str, field_name: str) -> bool:
    grant = active_grant(conn, case_id, agency_id)
    return grant is not None and field_name in grant.fields


def mark_handoff_delivered(store: Store, conn: Connection, handoff_id: int,
                           now: datetime | None = None) -> bool:
    """Record that the agency has the data. If a withdrawal stopped this handoff while it was
    being sent, the data still arrived: it becomes `delivered` and its deletion notice is
    queued at once. Returns False in that case."""
    now = now or utcnow()
    row = handoffs.handoff(conn, handoff_id)
    handoffs.mark_delivered(conn, handoff_id, now)
    store.audit(conn, row.case_id, "handoff", "handoff_delivered", reason=f"agency {row.agency_id}",
                from_state=row.state, to_state=HandoffState.DELIVERED.value, at=now)
    if row.state != HandoffState.STOPPED.value:
        return True
    handoffs.queue_deletion_notice(conn, row, now)
    store.audit(conn, row.case_id, "handoff", "deletion_queued",
                reason=f"agency {row.agency_id}: delivered after withdrawal", at=now)
    return False


# --- deciding --------------------------------------------------------------------------------
def clean_preferences(form: dict[str, str]) -> dict[str, str]:
    """Trimmed preferences without control characters (newlines kept only in the message).
    A value longer than its limit raises ConsentRefused("too_long"): the candidate shortens
    it; the relay never cuts what they wrote."""
    out = {}
    for key in PREFERENCE_FIELDS:
        value = unicodedata.normalize("NFC", str(form.get(key) or ""))
        keep = "\n" if key == "message" else ""
        value = "".join(c for c in value.replace("\r\n", "\n")
                        if c in keep or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
        out[key] = value.strip()
        if len(out[key]) > PREFERENCE_LIMITS[key]:
            raise ConsentRefused("too_long", f"{key} is longer than {PREFERENCE_LIMITS[key]} "
                                             "characters")
    return out


def _claim_invitation(conn: Connection, invitation: Invitation, now: datetime) -> None:
    if invitation.expires_at <= now:
        raise ConsentRefused("expired", "the invitation has expired")
    if not tokens.use(conn, invitation.id, now):
        raise ConsentRefused("used", "this invitation was already answered")


def record_consent(store: Store, conn: Connection, config: Config, *,
                   invitation: Invitation, case: dict[str, Any], agency_ids: list[str],
                   text: ConsentText, preferences: dict[str, str], now: datetime | None = None,
                   offered: list[Agency] | None = None) -> int:
    """Record a consent to exactly these agencies and queue one pending handoff each, and keep
    the exact text shown (once per hash). `offered` are the agencies the text was rendered for
    (default: those offered now). Each agency's consented items are its fields and the
    provenance, or none for a redirect agency (records/agencies.py `consented_items`). Raises
    ConsentRefused (nothing written) when the invitation was used, expired or decided."""
    now = now or utcnow()
    if invitation.purpose != "consent" or invitation.case_id != case.id:
        raise ConsentRefused("tampered", "this session does not belong to a consent link")
    offered = {a.id: a for a in (shown_agencies(config) if offered is None else offered)}
    chosen = sorted(set(agency_ids))
    if not chosen:
        raise ConsentRefused("none", "no agency was ticked")
    if any(a not in offered for a in chosen):
        raise ConsentRefused("tampered", "an agency that is not offered was submitted")
    _claim_invitation(conn, invitation, now)
    if not consents.decide_status(conn, case.id, RelayStatus.CONSENTED, now):
        raise ConsentRefused("used", "this invitation was already answered")
    if consents.keep_consent_text(conn, text.sha256, language=text.language,
                                  version=text.version, html=str(text.html), now=now) is None:
        raise FatalError("the consent text does not match its SHA-256; nothing was recorded")
    consent_id = consents.add_consent(
        conn, case_id=case.id, invitation_id=invitation.id, source=case.source,
        application_id=case.application_id, candidate_id=case.candidate_id or "",
        text_version=text.version, text_sha256=text.sha256, language=text.language,
        method=METHOD, consented_at=now)
    for agency_id in chosen:
        agency = offered[agency_id]
        consents.add_consent_agency(conn, consent_id, agency_id, agency.legal_name,
                                    consented_items(agency))
        handoffs.add_handoff(conn, consent_id, case.id, agency_id, now)
    if any(preferences.get(k) for k in PREFERENCE_FIELDS):
        consents.add_preferences(conn, consent_id,
                                 {k: preferences.get(k, "") for k in PREFERENCE_FIELDS})
    store.audit(conn, case.id, ACTOR, "consented", from_state=RelayStatus.OPEN.value,
                to_state=RelayStatus.CONSENTED.value, at=now,
                reason=f"agencies {', '.join(chosen)}; text {text.version} {text.sha256[:16]}; "
                       f"{text.language}; {METHOD}")
    return consent_id


def record_decline(store: Store, conn: Connection, *, invitation: Invitation,
                   case: dict[str, Any], now: datetime | None = None) -> None:
    now = now or utcnow()
    if invitation.purpose != "consent" or invitation.case_id != case.id:
        raise ConsentRefused("tampered", "this session does not belong to a consent link")
    _claim_invitation(conn, invitation, now)
    if not consents.decide_status(conn, case.id, RelayStatus.DECLINED, now):
        raise ConsentRefused("used", "this invitation was already answered")
    store.audit(conn, case.id, ACTOR, "declined", from_state=RelayStatus.OPEN.value,
                to_state=RelayStatus.DECLINED.value, reason=METHOD, at=now)


def mint_withdraw_token(conn: Connection, key: bytes, case_id: int,
                        now: datetime | None = None) -> str:
    return tokens.mint(conn, key, case_id, "withdraw", timedelta(days=WITHDRAW_TTL_DAYS), now)


def new_withdraw_token(key: bytes, case_id: int, now: datetime) -> tuple[str, dict]:
    """A withdrawal token and the invitations row that activates it (insert it in the
    consent's transaction: the link is valid exactly when the consent is recorded)."""
    return tokens.new_token(key, case_id, "withdraw", timedelta(days=WITHDRAW_TTL_DAYS), now)


def withdraw(store: Store, conn: Connection, case_id: int, *, method: str = METHOD,
             now: datetime | None = None) -> WithdrawalResult:
    """consented → withdrawn: stop every handoff not yet delivered, queue one deletion notice
    per handoff whose data reached the agency or may have (delivered, possibly delivered, or
    with a provision record), delete the preferences. A redirect handoff sent nothing, so it
    gets no notice. Raises ConsentRefused if nothing is consented."""
    now = now or utcnow()
    if not consents.withdraw_status(conn, case_id, now):
        status = relay_status(conn, case_id)
        raise ConsentRefused("withdrawn" if status == RelayStatus.WITHDRAWN else "no_consent",
                             f"nothing to withdraw (relay status {status.value})")
    consent_id = consents.mark_withdrawn(conn, case_id, method, now)
    stopped = handoffs.stop_handoffs(conn, consent_id, now)
    delivered = handoffs.provided_handoffs(conn, consent_id)
    for handoff in delivered:
        handoffs.queue_deletion_notice(conn, handoff, now)
    consents.delete_preferences(conn, consent_id)
    store.audit(conn, case_id, ACTOR, "withdrawn", from_state=RelayStatus.CONSENTED.value,
                to_state=RelayStatus.WITHDRAWN.value, at=now,
                reason=f"{method}; {stopped} handoff(s) stopped; {len(delivered)} deletion "
                       "notice(s) queued")
    return WithdrawalResult(stopped, len(delivered))


def expire_invitations(store: Store, now: datetime | None = None, limit: int = 1000) -> int:
    """open → expired for every consent invitation past its expiry and never answered."""
    now = now or utcnow()
    expired = 0
    with store.begin() as conn:
        for case_id in consents.expired_invitation_cases(conn, now, limit):
            if consents.decide_status(conn, case_id, RelayStatus.EXPIRED, now):
                store.audit(conn, case_id, "expire", "invitation_expired",
                            from_state=RelayStatus.OPEN.value,
                            to_state=RelayStatus.EXPIRED.value, at=now,
                            reason="the invitation was not answered before it expired")
                expired += 1
    return expired
