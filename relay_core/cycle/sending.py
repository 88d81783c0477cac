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
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.contract.base import ApplicationStatus
from relay_core.cycle import control
from relay_core.cycle.building import Builder, BuiltMail, MailJob, build_all
from relay_core.cycle.eligibility import IN_PROCESS_NOTE, recheck_action
from relay_core.cycle.ingest import cancel_pending
from relay_core.cycle.outbox import deliver_outbox
from relay_core.cycle.report import CycleReport
from relay_core.errors import (
    AuthError,
    FatalError,
    RelayError,
    RetriableError,
)
from relay_core.mail.message import make_message_id, message_id_domain
from relay_core.mail.transports import Transport
from relay_core.models import CaseState, RelayCase
from relay_core.records.consent import optout, tokens
from relay_core.records.consent.requirements import WITHHELD_ACTION, invitation_blockers
from relay_core.rendering.emails import Renderer, template_names
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


@dataclass
class _Batch:
    """A batch of due cases planned for sending: each mail's job (links, Message-ID; the
    token rows are inserted with the claim), and what is decided without building anything."""

    cases: list[RelayCase]
    kind: str                            # the rejection template (mail.mode)
    bare: set[int]                       # sent without the invitation (blockers)
    jobs: list[MailJob] = field(default_factory=list)
    tokens: dict[int, list[dict]] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


def plan_batch(config: Config, batch: list[RelayCase], now: datetime, key: bytes,
               blockers: list[str]) -> _Batch:
    """Each case's Message-ID and links, before anything is claimed or built."""
    kind = template_names("rejection", mode=config.mail.mode)
    domain = message_id_domain(config)
    ttl = timedelta(days=config.relay.invitation_ttl_days)
    plan = _Batch(batch, kind, {c.id for c in batch if c.invite and blockers})
    for case in batch:
        url = expires = stop_url = None
        rows = []
        if case.invite and case.id not in plan.bare:
            token, invitation = tokens.new_token(key, case.id, "consent", ttl, now)
            rows.append(invitation)
            url = f"{config.relay.public_base_url}/r/{token}"
            expires = invitation_expiry(config, now)
        elif kind == "invite_only":
            plan.failures[case.id] = ("could not build the email: invite-only mode, and this "
                                      "case carries no invitation")
            continue
        if kind == "invite_only":
            # 特定電子メール法 Art. 4: a stand-alone invitation carries an opt-out.
            stop, stop_row = tokens.new_token(key, case.id, optout.PURPOSE, optout.TTL, now)
            rows.append(stop_row)
            stop_url = f"{config.relay.public_base_url}/u/{stop}"
        plan.tokens[case.id] = rows
        plan.jobs.append(MailJob(case, kind, make_message_id(case.case_key, kind, domain), url,
                                 expires, stop_url))
    return plan


def commit_batch(store: Store, config: Config, plan: _Batch, built: list[BuiltMail],
                 now: datetime, report: CycleReport, blockers: list[str]) -> None:
    """scheduled → sending for a planned, built batch, with its mails in the outbox, all in
    one transaction. A case another process claimed first is left to it (its mail is not
    queued); a case whose mail cannot be built fails with the reason."""
    withheld = ("sent without the relay invitation: " + "; ".join(blockers))[:1000]
    message_ids = {job.case.id: job.message_id for job in plan.jobs}
    batch = plan.cases
    with store.begin() as conn:
        batch = one_email_per_person(conn, config, batch, now, report)
        claimed = cases.transition_many(conn, [{"id": c.id} for c in batch
                                               if c.id not in plan.bare],
                                        CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                        actor="send", now=now)
        bare = cases.transition_many(conn, [{"id": c.id, "invite": False, "reason": withheld}
                                            for c in batch if c.id in plan.bare],
                                     CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                     actor="send", now=now)
        cases.audit_many(conn, [dict(case_id=i, actor="send", action=WITHHELD_ACTION,
                                     reason=withheld, from_state=None, to_state=None, at=now)
                                for i in sorted(bare)])
        if bare:
            report.errors.append(f"{len(bare)} email(s) sent without the relay invitation, "
                                 f"because {'; '.join(blockers)}")
        ours = claimed | bare
        failures = [{"id": i, "reason": reason} for i, reason in plan.failures.items()
                    if i in ours]
        invitations, mails, ids = [], [], {}
        for mail in (m for m in built if m.case_id in ours):
            if mail.error:
                failures.append({"id": mail.case_id, "reason": mail.error})
                continue
            invitations += plan.tokens[mail.case_id]
            ids[mail.case_id] = message_ids[mail.case_id]
            mails.append(QueuedMail(mail.case_id, ids[mail.case_id], mail.recipient, mail.data))
        consents.add_invitations(conn, invitations)
        outbox.enqueue(conn, plan.kind, mails, now)
        cases.set_message_ids(conn, ids)
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


def prepare_batch(store: Store, config: Config, renderer: Renderer,
                  batch: list[RelayCase], now: datetime, key: bytes,
                  report: CycleReport, blockers: list[str] | None = None) -> None:
    """Plan, build in place and commit one batch (see commit_batch). `blockers` (default:
    asked now) keep the invitation out of every mail, with the reason."""
    blockers = invitation_blockers(config) if blockers is None else blockers
    plan = plan_batch(config, batch, now, key, blockers)
    commit_batch(store, config, plan, build_all(config, renderer, plan.jobs, now), now,
                 report, blockers)


def send_due(store: Store, config: Config, connectors: dict[str, Connector],
             renderer: Renderer, transport: Transport, *, now: datetime,
             report: CycleReport, progress: Callable[[int], None] | None = None) -> None:
    """Page by page: re-check, plan, build, commit to the outbox, deliver. From the second
    page on, a page is built in the helper process (building.py) while the page before it is
    delivered."""
    last_id = 0
    key = None
    claimed: list[int] = []
    blockers = invitation_blockers(config)
    previous: list[RelayCase] | None = None
    with Builder(config, renderer) as builder:
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
            plan = plan_batch(config, _recheck(connectors, due, store, config, report, now),
                              now, key, blockers)
            building = builder.submit(plan.jobs, now, ahead=previous is not None)
            if previous is not None:
                deliver_outbox(store, transport, now=now, report=report, progress=progress,
                               config=config)
                annotate_sent(store, connectors, previous)
            commit_batch(store, config, plan, builder.result(building, plan.jobs, now), now,
                         report, blockers)
            claimed += [c.id for c in due]
            previous = due
    deliver_outbox(store, transport, now=now, report=report, progress=progress, config=config)
    if previous is not None:
        annotate_sent(store, connectors, previous)
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
