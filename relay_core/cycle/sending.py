"""Sending what is due: re-check with the ATS, claim, render into the outbox, deliver.

The conditional `scheduled → sending` update and the outbox make delivery at-most-once; every
step is a state transition with its audit row in the same transaction.

The re-check right before sending asks each ATS once per batch; what its answer means is
decided in eligibility.py (`recheck_action`): no longer rejected → cancelled; still in process
for another position → by `eligibility.in_process_elsewhere`, the invitation dropped (the
default, the email still goes on time), the case held, or cancelled.

While the relay cannot work (records/consent/requirements.py `invitation_blockers`: no privacy
policy, no agency that can receive, …) a full-mode email goes out without the invitation: the
case's `invite` becomes false, its reason and an audit row say why, and the run reports it. An
invite-only email *is* the invitation, so those cases wait, scheduled, until it is fixed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.contract.base import ApplicationStatus
from relay_core.cycle import control
from relay_core.cycle.eligibility import IN_PROCESS_NOTE, feedback_text, recheck_action
from relay_core.cycle.ingest import cancel_pending
from relay_core.cycle.outbox import deliver_outbox
from relay_core.cycle.report import CycleReport
from relay_core.errors import (
    AuthError,
    FatalError,
    RelayError,
    RetriableError,
    TemplateError,
)
from relay_core.mail.message import OutgoingMail, build_mail, make_message_id, message_id_domain
from relay_core.mail.transports import Transport
from relay_core.models import CaseState, Person, RelayCase
from relay_core.records.consent import optout, tokens
from relay_core.records.consent.requirements import WITHHELD_ACTION, invitation_blockers
from relay_core.rendering.emails import Renderer, build_context, template_names
from relay_core.store import Connection, Store, cases, consents, outbox
from relay_core.store.outbox import QueuedMail

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay")


SEND_BATCH = 200


def _recheck(connectors: dict[str, Connector], due: list[RelayCase], store: Store,
             config: Config, report: CycleReport, now: datetime) -> list[RelayCase]:
    """Ask each ATS once for all its due cases (batched by the connector) and act on the
    answers; returns the cases to send now, with their invitation as decided."""
    by_source: dict[str, list[RelayCase]] = defaultdict(list)
    for case in due:
        by_source[case.source].append(case)
    keep: list[RelayCase] = []
    for source, group in by_source.items():
        connector = connectors.get(source)
        if connector is None:
            report.errors.append(f"{len(group)} case(s) wait for source {source!r}, which is "
                                 "no longer configured or is disabled")
            continue
        try:
            states = connector.recheck_cases({c.application_id: c.candidate_id for c in group})
        except (RetriableError, AuthError, FatalError) as exc:
            report.errors.append(f"{source}: re-check before sending failed, sending postponed "
                                 f"({exc})")
            continue
        cancels: dict[str, list[str]] = defaultdict(list)
        holds, invites = [], []
        for case in group:
            action = recheck_action(
                states.get(case.application_id, ApplicationStatus.UNKNOWN), config,
                invite=case.invite, invite_note=case.invite_note,
                tells_other_applications=connector.tells_other_applications)
            if action.cancel:
                cancels[action.cancel].append(case.application_id)
            elif action.hold:
                holds.append({"id": case.id, "reason": action.hold})
            else:
                if action.invite is not None:
                    invites.append((case.id, action.invite, action.invite_note))
                    case = replace(case, invite=action.invite, invite_note=action.invite_note)
                keep.append(case)
        actor = f"recheck:{source}"
        for reason, ids in cancels.items():
            report.cancelled += cancel_pending(store, source, ids, reason, actor=actor)
        with store.begin() as conn:
            cases.transition_many(conn, holds, CaseState.HELD, from_state=CaseState.SCHEDULED,
                                  actor=actor, now=now)
            cases.set_invitation(conn, invites, actor=actor, now=now)
        report.no_invitation += sum(1 for _, invite, _ in invites if not invite)
    return keep


def invitation_expiry(config: Config, now: datetime) -> date:
    """The day the link expires, in the company's timezone (build_context writes it out)."""
    return (now + timedelta(days=config.relay.invitation_ttl_days)).astimezone(
        config.company.tz).date()


def prepare_batch(store: Store, config: Config, renderer: Renderer,
                  batch: list[RelayCase], now: datetime, key: bytes,
                  report: CycleReport, blockers: list[str] | None = None) -> None:
    """scheduled → sending for a batch: claim the cases, render each mail and put it in the
    outbox, all in one transaction. A case another process claimed first is left to it; a
    case whose mail cannot be built fails with the reason (a template or field, never data).
    `blockers` (default: asked now) keep the invitation out of every mail, with the reason."""
    kind = template_names("rejection", mode=config.mail.mode)
    domain = message_id_domain(config)
    ttl = timedelta(days=config.relay.invitation_ttl_days)
    blockers = invitation_blockers(config) if blockers is None else blockers
    withheld = ("sent without the relay invitation: " + "; ".join(blockers))[:1000]
    with store.begin() as conn:
        batch = one_email_per_person(conn, config, batch, now, report)
        claimed = cases.transition_many(conn, [{"id": c.id} for c in batch
                                               if not (c.invite and blockers)],
                                        CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                        actor="send", now=now)
        bare = cases.transition_many(conn, [{"id": c.id, "invite": False, "reason": withheld}
                                            for c in batch if c.invite and blockers],
                                     CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                     actor="send", now=now)
        cases.audit_many(conn, [dict(case_id=i, actor="send", action=WITHHELD_ACTION,
                                     reason=withheld, from_state=None, to_state=None, at=now)
                                for i in sorted(bare)])
        if bare:
            report.errors.append(f"{len(bare)} email(s) sent without the relay invitation, "
                                 f"because {'; '.join(blockers)}")
        invitations, mails, message_ids, failures = [], [], {}, []
        for case in (c for c in batch if c.id in claimed | bare):
            message_id = make_message_id(case.case_key, kind, domain)
            try:
                url = expires = invitation = stop_url = None
                if case.invite and case.id not in bare:
                    token, invitation = tokens.new_token(key, case.id, "consent", ttl, now)
                    url = f"{config.relay.public_base_url}/r/{token}"
                    expires = invitation_expiry(config, now)
                elif kind == "invite_only":
                    raise FatalError("invite-only mode, and this case carries no invitation")
                if kind == "invite_only":
                    # 特定電子メール法 Art. 4: a stand-alone invitation carries an opt-out.
                    stop, stop_row = tokens.new_token(key, case.id, optout.PURPOSE,
                                                      optout.TTL, now)
                    invitations.append(stop_row)
                    stop_url = f"{config.relay.public_base_url}/u/{stop}"
                mail = build_case_mail(config, renderer, case, kind, url, expires, message_id,
                                       now, stop_url)
            except (TemplateError, FatalError) as exc:
                failures.append({"id": case.id, "reason": f"could not build the email: {exc}"})
                continue
            if invitation:
                invitations.append(invitation)
            message_ids[case.id] = message_id
            mails.append(QueuedMail(case.id, message_id, mail.recipient, mail.data))
        consents.add_invitations(conn, invitations)
        outbox.enqueue(conn, kind, mails, now)
        cases.set_message_ids(conn, message_ids)
        cases.transition_many(conn, failures, CaseState.FAILED, from_state=CaseState.SENDING,
                              actor="send", now=now)
    report.failed += len(failures)


def one_email_per_person(conn: Connection, config: Config, batch: list[RelayCase],
                         now: datetime, report: CycleReport) -> list[RelayCase]:
    """The person cooldown where the email goes: of a person's cases due together, or due
    after one already sent, in hand or ambiguous within `person_cooldown_days`, only the
    first is mailed; the rest are skipped with the reason. Detection skips only for an email
    that went (store `mailed_keys`), not for one merely planned: if the planned one is then
    cancelled (un-rejected, a withdrawal), the person's other rejection is still mailed."""
    days = config.eligibility.person_cooldown_days
    keys = {c.id: c.person_key for c in batch if c.person_key}
    if not days or not keys:
        return batch
    mailed = cases.mailed_keys(conn, keys.values(), now - timedelta(days=days),
                               exclude=[c.id for c in batch], owed_note=IN_PROCESS_NOTE)
    keep, skip = [], []
    for case in batch:
        key = keys.get(case.id)
        if key in mailed:
            skip.append(case)
            continue
        if key and case.invite_note != IN_PROCESS_NOTE:   # that one leaves the next owed
            mailed.add(key)
        keep.append(case)
    reason = f"the same person was mailed within the last {days} days"
    skipped = cases.transition_many(conn, [{"id": c.id, "reason": reason} for c in skip],
                                    CaseState.SKIPPED, from_state=CaseState.SCHEDULED,
                                    actor="send", now=now)
    report.skipped_at_send += len(skipped)
    return keep


def build_case_mail(config: Config, renderer: Renderer, case: RelayCase, kind: str,
                    url: str | None, expires: date | None, message_id: str, now: datetime,
                    unsubscribe_url: str | None = None) -> OutgoingMail:
    """The case's rejection email, rendered and built: what is sent, and what the console
    previews (with a placeholder link). `unsubscribe_url`: the opt-out of an invite_only
    mail."""
    person = case.person or Person()
    context = build_context(
        config, display_name=person.full_name, job_title=case.job_title,
        last_name=person.last_name, first_name=person.first_name, stage=case.stage,
        invitation_url=url, invitation_expires=expires, language=case.language,
        feedback=case_feedback(config, case.source, case.feedback), source=case.source,
        unsubscribe_url=unsubscribe_url)
    rendered = renderer.render(kind, case.language, context)
    return build_mail(config, to_addr=case.email,
                      to_name=context["candidate"]["display_name"], subject=rendered.subject,
                      text=rendered.text, html=rendered.html, message_id=message_id, date=now,
                      language=rendered.language)


def case_feedback(config: Config, source: str, raw: str) -> str:
    """The feedback block's text: only while the case's source still designates a feedback
    field (opt-in per source), bounded by `mail.feedback_max_chars`."""
    settings = next((s for s in config.sources if s.name == source), None)
    if settings is None or not settings.options.get("feedback_field"):
        return ""
    return feedback_text(raw, config)


def send_due(store: Store, config: Config, connectors: dict[str, Connector],
             renderer: Renderer, transport: Transport, *, now: datetime,
             report: CycleReport, progress: Callable[[int], None] | None = None) -> None:
    last_id = 0
    key = None
    claimed: list[int] = []
    blockers = invitation_blockers(config)
    while due := _due(store, now, after_id=last_id):
        if control.stop_reason():
            break   # run_cycle reports why; what is due waits for the next run
        last_id = due[-1].id
        if blockers and config.mail.mode == "invite_only":
            report.errors.append(f"{len(due)} invite-only email(s) wait, because "
                                 + "; ".join(blockers))
            continue
        if key is None:
            with store.begin() as conn:
                key = tokens.signing_key(config, conn)
        prepare_batch(store, config, renderer,
                      _recheck(connectors, due, store, config, report, now), now, key, report,
                      blockers)
        claimed += [c.id for c in due]
        deliver_outbox(store, transport, now=now, report=report, progress=progress,
                       config=config)
        annotate_sent(store, connectors, due)
    deliver_outbox(store, transport, now=now, report=report, progress=progress, config=config)
    with store.connect() as conn:
        report.stuck = outbox.count_stuck(conn, "gave_up")
        report.late = cases.count_late(conn, now)
        report.sent_late = cases.count_sent_late(conn, claimed) if claimed else 0


def _due(store: Store, now: datetime, after_id: int) -> list[RelayCase]:
    """The next page of due cases, in id order."""
    with store.connect() as conn:
        return cases.due(conn, now, limit=SEND_BATCH, after_id=after_id)


def annotate_sent(store: Store, connectors: dict[str, Connector], sent_now: list[RelayCase]
                  ) -> None:
    """Write "relay invitation sent" back to the ATS once per case (optional per connector)."""
    if not sent_now:
        return
    with store.connect() as conn:
        sent = cases.sent_not_annotated(conn, [c.id for c in sent_now])
    for case in (c for c in sent_now if c.id in sent):
        connector = connectors.get(case.source)
        if connector is None:
            continue
        text = ("Career Relay: rejection email with relay invitation sent" if case.invite
                else "Career Relay: rejection email sent")
        try:
            written = connector.annotate(case.application_id, text)
        except RelayError as exc:
            log.warning("case %s: write-back to the ATS failed (%s)", case.id, exc)
            continue
        if written:
            with store.begin() as conn:
                cases.audit(conn, case.id, f"annotate:{case.source}", "annotated")
