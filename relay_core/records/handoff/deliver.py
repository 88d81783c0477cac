"""The handoff step of a cycle (`run_cycle` calls `deliver_handoffs`, under the run lock).

For each due handoff, one transaction asks the gate (consent/records.active_grant, agency
complete, manifest complete), makes the reference, builds the document and claims the row
(`pending|retrying → sending`, attempts + 1). Then the channel sends, outside any transaction.
A second transaction records the outcome: `delivered` together with the APPI Art. 29 provision
record and an audit row, or `retrying` (next attempt with backoff), or `dead`.

An attempt that may have reached the agency without an answer (a read timeout, a connection
dropped after sending) writes the provision record at once, with a note: the agency may hold
the data, so a withdrawal must ask it to delete it. The handoff keeps retrying with the same
Idempotency-Key; a later answer makes it `delivered`, and if none ever comes it ends
`maybe_delivered` (never `dead`), shown by `status`.

A crash between the two leaves the row `sending`; the next cycle resends it: webhooks carry the
same body and Idempotency-Key, so the agency sees one candidate; an idempotent mail transport
(the file outbox) writes the same file. An SMTP handoff cannot be known to have arrived, so it
is recorded as `maybe_delivered` with its provision record (the conservative choice: a
provision record and, after a withdrawal, a deletion notice too many rather than one missing).

Then the deletion notices queued by withdrawals go out the same way, through the agency's own
channel (redirect agencies: by email to their deletion contact).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from relay_core.config import Agency, Config
from relay_core.errors import ConfigError, FatalError
from relay_core.mail.transports import Transport
from relay_core.records.agencies import agency_problems
from relay_core.records.consent.records import (
    mark_handoff_delivered,
    pending_deletion_notices,
    pending_handoffs,
)
from relay_core.records.handoff import channels, payload
from relay_core.records.handoff.gate import (
    Authorised,
    TransferRefused,
    agency_by_id,
    authorise,
    authorised_document,
    record_refusal,
)
from relay_core.records.handoff.records import write_provision_record
from relay_core.store import Connection, Store, consents, handoffs, utcnow
from relay_core.store.handoffs import DeletionNotice, Handoff

log = logging.getLogger("career_relay.handoff")
ACTOR = "handoff"
BATCH = 500
REFUSED_RECHECK = timedelta(hours=1)


@dataclass
class DeliveryReport:
    delivered: int = 0
    redirected: int = 0
    retrying: int = 0
    possibly_delivered: int = 0
    dead: int = 0
    refused: int = 0
    notices_sent: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_handoffs(store: Store, config: Config, transport: Transport, *,
                     now: datetime | None = None, report: Any = None,
                     session: Any = None) -> DeliveryReport:
    """Send due handoffs and deletion notices once each. `report` (a CycleReport) receives the
    problems an operator must see; `session` replaces `requests` (tests)."""
    now = now or utcnow()
    out = DeliveryReport()
    _recover(store, config, transport, now, out)
    with store.engine.connect() as conn:
        due = pending_handoffs(conn, now, BATCH)
    for handoff in due:
        _deliver_one(store, config, transport, handoff, now, session, out)
    with store.engine.connect() as conn:
        notices = pending_deletion_notices(conn, now, BATCH)
    for notice in notices:
        _notify_one(store, config, transport, notice, now, session, out)
    if report is not None and out.errors:
        report.errors.extend(out.errors)
    return out


# --- handoffs --------------------------------------------------------------------------------
def _claim(store: Store, config: Config, handoff: Handoff, now: datetime,
           out: DeliveryReport) -> tuple[Authorised, payload.Document, int] | None:
    with store.begin() as conn:
        try:
            auth = authorise(conn, config, handoff)
            agency = auth.agency
            reference = channels.reference_for(conn, handoff, agency.channel, now)
            doc = None if agency.channel == "redirect" else authorised_document(
                conn, auth, config, reference)
        except TransferRefused as exc:
            record_refusal(store, conn, handoff, exc, now=now)
            handoffs.recheck_at(conn, handoff.id, now + REFUSED_RECHECK)
            out.refused += 1
            out.errors.append(str(exc))
            return None
        if not handoffs.claim_handoff(conn, handoff.id, now):
            return None   # a withdrawal or another process got there first
        if doc is None:
            # Nothing is pushed: the candidate takes the reference to the agency's own form.
            # No provision record, and no deletion notice after a withdrawal: nothing was sent.
            handoffs.mark_redirected(conn, handoff.id, now)
            store.audit(conn, handoff.case_id, ACTOR, "redirect_reference_issued",
                        from_state="sending", to_state="redirected",
                        reason=f"agency {agency.id}: no data pushed", at=now)
            out.redirected += 1
            return None
        timestamp = channels.claim_timestamp(conn, handoff.id)
    return auth, doc, timestamp


def _send(config: Config, transport: Transport, agency: Agency, doc: payload.Document,
          now: datetime, session: Any, timestamp: int) -> channels.Outcome:
    try:
        if agency.channel == "webhook":
            return channels.post_webhook(agency, doc, timestamp=timestamp, session=session)
        return channels.send_email(agency, doc, config, transport, now)
    except ConfigError as exc:    # a secret that does not resolve: fixable, so retry later
        return channels.Outcome(False, retry=True, error=str(exc)[:300])
    except FatalError as exc:
        return channels.Outcome(False, retry=False, error=str(exc)[:300])


def _deliver_one(store: Store, config: Config, transport: Transport, handoff: Handoff,
                 now: datetime, session: Any, out: DeliveryReport) -> None:
    claimed = _claim(store, config, handoff, now, out)
    if claimed is None:
        return
    auth, doc, timestamp = claimed
    outcome = _send(config, transport, auth.agency, doc, now, session, timestamp)
    with store.begin() as conn:
        if outcome.delivered:
            _record_delivery(store, conn, auth, doc, outcome.destination or auth.agency.url,
                             now)
            out.delivered += 1
            return
        uncertain = outcome.maybe_delivered or handoffs.has_provision_record(conn, handoff.id)
        if outcome.maybe_delivered:
            _record_uncertain_attempt(store, conn, auth, doc, outcome, now)
        last = not outcome.retry or handoff.attempts + 1 >= auth.agency.max_attempts
        if uncertain and last:
            _give_up_uncertain(store, conn, handoff, outcome.error, now, out)
            return
        _record_failure(store, conn, handoff, auth.agency, outcome, now, out, what="handoff")


def _record_uncertain_attempt(store: Store, conn: Connection, auth: Authorised,
                              doc: payload.Document, outcome: channels.Outcome,
                              now: datetime) -> None:
    """The request went out and no answer came: the agency may hold the data from now on."""
    note = f"possibly delivered: {outcome.error}; the agency may hold the data"
    record_id = write_provision_record(
        conn, auth, items=doc.items, channel=auth.agency.channel,
        destination=outcome.destination or auth.agency.url, provided_at=now, note=note)
    if record_id is not None:
        store.audit(conn, auth.case.id, ACTOR, "transfer_uncertain", at=now,
                    reason=f"agency {auth.agency.id} via {auth.agency.channel}; items "
                           f"{', '.join(doc.items)}; ref {doc.reference}; provision record "
                           f"{record_id}; {note}")


def _give_up_uncertain(store: Store, conn: Connection, handoff: Handoff, error: str,
                       now: datetime, out: DeliveryReport) -> None:
    if handoffs.mark_possibly_delivered(conn, handoff, error, now):
        store.audit(conn, handoff.case_id, ACTOR, "handoff_possibly_delivered", at=now,
                    from_state="sending", to_state="maybe_delivered",
                    reason=f"agency {handoff.agency_id}: no answer after "
                           f"{handoff.attempts + 1} attempt(s), and an attempt may have "
                           f"arrived: {error}")
        out.possibly_delivered += 1
        out.errors.append(f"handoff {handoff.id} to agency {handoff.agency_id} may have "
                          f"arrived but was never confirmed ({error}); ask the agency")


def _record_delivery(store: Store, conn: Connection, auth: Authorised, doc: payload.Document,
                     destination: str, now: datetime, note: str = "") -> None:
    mark_handoff_delivered(store, conn, auth.handoff.id, now)
    record_id = write_provision_record(conn, auth, items=doc.items, channel=auth.agency.channel,
                                       destination=destination, provided_at=now, note=note)
    written = (f"provision record {record_id}" if record_id is not None else
               "provision record written at an earlier, unconfirmed attempt")
    store.audit(conn, auth.case.id, ACTOR, "transfer", at=now,
                reason=f"agency {auth.agency.id} via {auth.agency.channel}; items "
                       f"{', '.join(doc.items)}; ref {doc.reference}; {written}"
                       + (f"; {note}" if note else ""))


def _record_failure(store: Store, conn: Connection, row: Handoff | DeletionNotice,
                    agency: Agency | None, outcome: channels.Outcome, now: datetime,
                    out: DeliveryReport, *, what: str) -> None:
    attempts = row.attempts + 1
    limit = agency.max_attempts if agency else 1
    agency_id = row.agency_id
    if outcome.retry and attempts < limit:
        if handoffs.retry_later(conn, row, outcome.error,
                                channels.next_attempt(now, attempts, outcome.retry_after), now):
            store.audit(conn, row.case_id, ACTOR, f"{what}_retry", at=now,
                        from_state="sending", to_state="retrying",
                        reason=f"agency {agency_id}: attempt {attempts}: {outcome.error}")
            out.retrying += 1
        return
    if handoffs.give_up(conn, row, outcome.error, now):
        store.audit(conn, row.case_id, ACTOR, f"{what}_dead", at=now,
                    from_state="sending", to_state="dead",
                    reason=f"agency {agency_id}: gave up after {attempts} attempt(s): "
                           f"{outcome.error}")
        out.dead += 1
        out.errors.append(f"{what} {row.id} to agency {agency_id} is dead after "
                          f"{attempts} attempt(s): {outcome.error}")


# --- deletion notices ------------------------------------------------------------------------
def _notify_one(store: Store, config: Config, transport: Transport, notice: DeletionNotice,
                now: datetime, session: Any, out: DeliveryReport) -> None:
    agency = agency_by_id(config, notice.agency_id)
    with store.begin() as conn:
        if not handoffs.claim_notice(conn, notice.id, now):
            return
        handoff = handoffs.handoff(conn, notice.handoff_id)
        consent = consents.consent_by_id(conn, handoff.consent_id)
        channel = agency.channel if agency else "email"
        reference = channels.reference_for(conn, handoff, channel, now)
        timestamp = channels.claim_timestamp(conn, handoff.id)
    if agency is None:
        outcome = channels.Outcome(False, error=f"agency {notice.agency_id} is no longer "
                                   "configured; send the deletion request yourself")
    else:
        doc = payload.deletion_document(config, agency=agency, reference=reference,
                                        created_at=notice.created_at,
                                        withdrawn_at=consent.withdrawn_at, consent=consent)
        outcome = _send(config, transport, agency if agency.channel != "redirect"
                        else agency.model_copy(update={"channel": "email"}), doc, now, session,
                        timestamp)
    with store.begin() as conn:
        if not outcome.delivered:
            _record_failure(store, conn, notice, agency, outcome, now, out,
                            what="deletion_notice")
            return
        handoffs.mark_notice_sent(conn, notice.id, now)
        store.audit(conn, notice.case_id, ACTOR, "deletion_notice_sent", at=now,
                    reason=f"agency {notice.agency_id} via {channel}; ref {reference}")
        out.notices_sent += 1


# --- recovery --------------------------------------------------------------------------------
def _recover(store: Store, config: Config, transport: Transport, now: datetime,
             out: DeliveryReport) -> None:
    """Rows a crashed run left `sending` (we hold the run lock, so nobody else is sending)."""
    with store.begin() as conn:
        handoffs.resume_notices(conn, now)
        rows = handoffs.sending_handoffs(conn)
    for handoff in rows:
        agency = agency_by_id(config, handoff.agency_id)
        resend = agency is None or agency.channel == "webhook" or transport.idempotent
        with store.begin() as conn:
            if resend:
                handoffs.resume_handoff(conn, handoff.id, now)
                store.audit(conn, handoff.case_id, ACTOR, "handoff_resumed", at=now,
                            reason=f"agency {handoff.agency_id}: interrupted while sending; "
                                   "resent with the same idempotency key")
                continue
            _record_uncertain(store, conn, config, handoff, now, out)


def _record_uncertain(store: Store, conn: Connection, config: Config, handoff: Handoff,
                      now: datetime, out: DeliveryReport) -> None:
    note = ("interrupted while handing the email to the mail server; it may have arrived "
            "(recorded as possibly delivered)")
    try:
        auth = authorise(conn, config, handoff)
    except TransferRefused as exc:
        handoffs.kill_handoff(conn, handoff.id, f"{note}; {exc}"[:500], now)
        store.audit(conn, handoff.case_id, ACTOR, "handoff_dead", reason=note, at=now)
        out.errors.append(f"handoff {handoff.id}: {note}; check the mail server log")
        return
    reference = channels.reference_for(conn, handoff, auth.agency.channel, now)
    try:
        doc = authorised_document(conn, auth, config, reference)
    except TransferRefused as exc:
        handoffs.kill_handoff(conn, handoff.id, f"{note}; {exc}"[:500], now)
        store.audit(conn, handoff.case_id, ACTOR, "handoff_dead", reason=note, at=now)
        out.errors.append(f"handoff {handoff.id}: {note}; check the mail server log")
        return
    outcome = channels.Outcome(False, error="interrupted while handing the email to the mail "
                               "server", destination=auth.agency.email, maybe_delivered=True)
    _record_uncertain_attempt(store, conn, auth, doc, outcome, now)
    _give_up_uncertain(store, conn, handoff, outcome.error, now, out)


# --- status ----------------------------------------------------------------------------------
def handoff_status(conn: Connection) -> dict[str, Any]:
    """Counts by state and the dead ones, for `career-relay status`."""
    return handoffs.handoff_status(conn)


def redirect_links(store: Store, config: Config, case_id: int,
                   now: datetime | None = None) -> list[tuple[str, str]]:
    """(agency legal name, form URL with signed reference) for each redirect agency this case
    consented to: for the page shown after consent. Makes the references on first call."""
    from relay_core.records.consent.tokens import signing_key

    now = now or utcnow()
    links = []
    with store.begin() as conn:
        rows = handoffs.unstopped_handoffs_of_case(conn, case_id)
        for row in rows:
            agency = agency_by_id(config, row.agency_id)
            if agency is None or agency.channel != "redirect" or agency_problems(agency):
                continue
            reference = channels.reference_for(conn, row, "redirect", now)
            key = (channels.agency_secret(agency) if agency.secret is not None
                   else signing_key(config, conn))
            links.append((agency.legal_name, channels.redirect_url(agency, reference, key)))
    return links
