"""The consent gate: the only way to a document an agency may receive.

`authorise()` answers, inside the transaction that claims a handoff, whether this handoff may
be sent now: an active (not withdrawn) consent naming exactly this agency
(consent/records.active_grant), an agency whose legal details and channel are complete
(sec. 6 item 13), a complete Art. 30 manifest (item 8), and at least one field that is on the
agency's allowlist, in the consent and not banned (items 1, 9). The channels take only an
`Authorised`, so there is no code path from candidate data to an agency around this function.
A refusal is logged (ids only) and written to the audit log by `record_refusal`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from relay_core.config import Agency, Config
from relay_core.errors import TransferRefused
from relay_core.models import RelayCase
from relay_core.records.agencies import agency_problems
from relay_core.records.agencies import channel_problems as channel_problems
from relay_core.records.consent.records import Grant, active_grant
from relay_core.records.handoff import payload
from relay_core.store import Connection, Store, cases, consents, handoffs, utcnow
from relay_core.store.consents import ConsentRecord
from relay_core.store.handoffs import Handoff

log = logging.getLogger("career_relay.handoff")


@dataclass(frozen=True)
class Authorised:
    """Permission to send `fields` of this case to this agency, decided just now."""

    handoff: Handoff
    agency: Agency
    grant: Grant
    consent: ConsentRecord
    case: RelayCase
    fields: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"Authorised(handoff={self.handoff.id}, agency={self.agency.id}, "
                f"fields={list(self.fields)})")


def agency_by_id(config: Config, agency_id: str) -> Agency | None:
    return next((a for a in config.agencies if a.id == agency_id), None)


def authorise(conn: Connection, config: Config, handoff: Handoff) -> Authorised:
    """Permission for this handoff now, or TransferRefused. Call it in the transaction that
    claims the handoff, immediately before sending."""
    hid, agency_id = handoff.id, handoff.agency_id
    grant = active_grant(conn, handoff.case_id, agency_id)
    if grant is None or grant.consent_id != handoff.consent_id:
        raise TransferRefused(f"handoff {hid}: no active consent names agency {agency_id}")
    agency = agency_by_id(config, agency_id)
    if agency is None:
        raise TransferRefused(f"handoff {hid}: agency {agency_id} is no longer configured")
    problems = agency_problems(agency)
    if problems:
        raise TransferRefused(f"handoff {hid}: agency {agency_id} is incomplete ("
                              + "; ".join(problems) + ")")
    consent = consents.consent_by_id(conn, grant.consent_id)
    case = cases.get(conn, handoff.case_id)
    if case is None:
        raise TransferRefused(f"handoff {hid}: case {handoff.case_id} is not in the store")
    missing = payload.missing_manifest(payload.manifest(config, case, consent, grant.fields))
    if missing:
        raise TransferRefused(f"handoff {hid}: the APPI Art. 30 manifest lacks "
                              + ", ".join(missing) + " (set them under [company])")
    fields = payload.sendable_fields(agency, grant.fields)
    if not fields and agency.channel != "redirect":
        raise TransferRefused(f"handoff {hid}: no field is both allowlisted for {agency_id} "
                              "and covered by the consent")
    return Authorised(handoff, agency, grant, consent, case, tuple(fields))


def covered_candidate(auth: Authorised) -> dict[str, Any]:
    """The candidate part of the document: what the gate allowed, filtered once more."""
    record = payload.candidate_record(auth.case, auth.grant.preferences)
    candidate = payload.filter_fields(record, auth.fields)
    require_covered(auth, candidate)
    return candidate


def require_covered(auth: Authorised, candidate: dict[str, Any]) -> None:
    """The last check before bytes leave: every key consented, allowlisted and not banned."""
    for key in candidate:
        if (key not in auth.grant.fields or key not in auth.agency.fields
                or payload.banned_category(key) is not None):
            raise TransferRefused(f"handoff {auth.handoff.id}: field {key!r} is not covered "
                                  f"by the consent to {auth.agency.id}")


def authorised_document(conn: Connection, auth: Authorised, config: Config, reference: str
                        ) -> payload.Document:
    """The document for this handoff, checked as a whole: every item it holds, provenance
    included, is one the consent to this agency covers (sec. 6 items 1, 9; issue: nothing
    outside the consent). Its `created_at` is the first attempt (when the reference was made),
    the same on every retry; never the handoff's own creation, which is the moment of the
    consent (an item of its own, `consent_date`)."""
    created = handoffs.reference_made_at(conn, auth.handoff.id) or utcnow()
    doc = payload.handoff_document(
        config, agency=auth.agency, reference=reference, created_at=created,
        case=auth.case, consent=auth.consent, candidate=covered_candidate(auth),
        items=auth.grant.fields)
    outside = [item for item in doc.items if item not in auth.grant.fields]
    if outside:
        raise TransferRefused(f"handoff {auth.handoff.id}: {', '.join(outside)} would leave "
                              f"without a consent to {auth.agency.id} covering it")
    return doc


def record_refusal(store: Store, conn: Connection, handoff: Handoff,
                   exc: TransferRefused, *, now=None) -> None:
    """Log and audit a refusal once per distinct reason (a refused handoff is re-examined each
    cycle; an operator may fix the configuration meanwhile)."""
    now = now or utcnow()
    reason = str(exc)[:500]
    log.warning("transfer refused: %s", reason)
    if handoff.last_error == reason:
        return
    handoffs.note_refusal(conn, handoff.id, reason, now)
    store.audit(conn, handoff.case_id, "handoff", "transfer_refused", reason=reason, at=now)
