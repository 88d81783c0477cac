"""Sending what is due: re-check with the ATS, claim, render into the outbox, deliver.

The conditional `scheduled → sending` update and the outbox make delivery at-most-once; every
step is a state transition with its audit row in the same transaction.

While the relay cannot work (records/consent/requirements.py `invitation_blockers`: no privacy
policy, no agency that can receive, …) a full-mode email goes out without the invitation: the
case's `invite` becomes false, its reason and an audit row say why, and the run reports it. An
invite-only email *is* the invitation, so those cases wait, scheduled, until it is fixed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from relay_core.config import Config
from relay_core.contract.base import ApplicationStatus
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
from relay_core.models import CaseState
from relay_core.records.consent import optout, tokens
from relay_core.records.consent.requirements import WITHHELD_ACTION, invitation_blockers
from relay_core.rendering.emails import Renderer, build_context, template_names
from relay_core.store import Store
from relay_core.store import tables as t

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay")


SEND_BATCH = 200


CANCEL_REASONS = {
    ApplicationStatus.NOT_REJECTED: "the ATS no longer shows this application as rejected",
    ApplicationStatus.ACTIVE_ELSEWHERE: "the candidate is still in process for another position",
}


def _recheck(connectors: dict[str, Connector], cases: list[dict[str, Any]], store: Store,
             report: CycleReport) -> list[dict[str, Any]]:
    """Ask each ATS once for all its due cases; cancel what is no longer rejected."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        by_source[case["source"]].append(case)
    keep: list[dict[str, Any]] = []
    for source, group in by_source.items():
        connector = connectors.get(source)
        if connector is None:
            report.errors.append(f"{len(group)} case(s) wait for source {source!r}, which is "
                                 "no longer configured or is disabled")
            continue
        try:
            states = connector.recheck([c["application_id"] for c in group])
        except (RetriableError, AuthError, FatalError) as exc:
            report.errors.append(f"{source}: re-check before sending failed, sending postponed "
                                 f"({exc})")
            continue
        gone: set[str] = set()
        for status, reason in CANCEL_REASONS.items():
            ids = [c["application_id"] for c in group
                   if states.get(c["application_id"]) == status]
            gone.update(ids)
            report.cancelled += cancel_pending(store, source, ids, reason,
                                               actor=f"recheck:{source}")
        keep.extend(c for c in group if c["application_id"] not in gone)
    return keep


def _invitation_expiry(config: Config, now: datetime) -> date:
    """The day the link expires, in the company's timezone (build_context writes it out)."""
    return (now + timedelta(days=config.relay.invitation_ttl_days)).astimezone(
        config.company.tz).date()


def prepare_batch(store: Store, config: Config, renderer: Renderer,
                  cases: list[dict[str, Any]], now: datetime, key: bytes,
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
        claimed = store.transition_many(conn, [{"id": c["id"]} for c in cases
                                               if not (c["invite"] and blockers)],
                                        CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                        actor="send", now=now)
        bare = store.transition_many(conn, [{"id": c["id"], "invite": False, "reason": withheld}
                                            for c in cases if c["invite"] and blockers],
                                     CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                     actor="send", now=now)
        store.audit_many(conn, [dict(case_id=i, actor="send", action=WITHHELD_ACTION,
                                     reason=withheld, from_state=None, to_state=None, at=now)
                                for i in sorted(bare)])
        if bare:
            report.errors.append(f"{len(bare)} email(s) sent without the relay invitation, "
                                 f"because {'; '.join(blockers)}")
        invitations, outbox, message_ids, failures = [], [], [], []
        for case in (c for c in cases if c["id"] in claimed | bare):
            message_id = make_message_id(f"{case['source']}:{case['application_id']}", kind,
                                         domain)
            try:
                url = expires = invitation = optout_url = None
                if case["invite"] and case["id"] not in bare:
                    token, invitation = tokens.new_token(key, case["id"], "consent", ttl, now)
                    url = f"{config.relay.public_base_url}/r/{token}"
                    expires = _invitation_expiry(config, now)
                elif kind == "invite_only":
                    raise FatalError("invite-only mode, and this case carries no invitation")
                if kind == "invite_only":
                    # 特定電子メール法 Art. 4: a stand-alone invitation carries an opt-out.
                    stop, stop_row = tokens.new_token(key, case["id"], optout.PURPOSE,
                                                      optout.TTL, now)
                    invitations.append(stop_row)
                    optout_url = f"{config.relay.public_base_url}/u/{stop}"
                mail = _build(config, renderer, case, kind, url, expires, message_id, now,
                              optout_url)
            except (TemplateError, FatalError) as exc:
                failures.append({"id": case["id"], "reason": f"could not build the email: {exc}"})
                continue
            if invitation:
                invitations.append(invitation)
            message_ids.append({"b_id": case["id"], "message_id": message_id})
            outbox.append(dict(case_id=case["id"], kind=kind, message_id=message_id,
                               recipient=mail.recipient, message=mail.data, state="pending",
                               attempts=0, next_attempt_at=now, last_error="", created_at=now))
        if invitations:
            conn.execute(insert(t.invitations), invitations)
        if outbox:
            conn.execute(insert(t.outbox), outbox)
            conn.execute(update(t.relay_cases).where(t.relay_cases.c.id == bindparam("b_id"))
                         .values(message_id=bindparam("message_id")), message_ids)
        store.transition_many(conn, failures, CaseState.FAILED, from_state=CaseState.SENDING,
                              actor="send", now=now)
    report.failed += len(failures)


def _build(config: Config, renderer: Renderer, case: dict[str, Any], kind: str,
           url: str | None, expires: date | None, message_id: str, now: datetime,
           unsubscribe_url: str | None = None) -> OutgoingMail:
    person = json.loads(case["person_json"] or "{}")
    event = json.loads(case["event_json"] or "{}")
    context = build_context(
        config, display_name=person.get("full_name") or "", job_title=case["job_title"],
        last_name=person.get("last_name", ""), first_name=person.get("first_name", ""),
        stage=event.get("stage", ""), invitation_url=url, invitation_expires=expires,
        language=case["language"], unsubscribe_url=unsubscribe_url)
    rendered = renderer.render(kind, case["language"], context)
    return build_mail(config, to_addr=case["email"],
                      to_name=context["candidate"]["display_name"], subject=rendered.subject,
                      text=rendered.text, html=rendered.html, message_id=message_id, date=now)


def send_due(store: Store, config: Config, connectors: dict[str, Connector],
             renderer: Renderer, transport: Transport, *, now: datetime,
             report: CycleReport, progress: Callable[[int], None] | None = None) -> None:
    last_id = 0
    key = None
    blockers = invitation_blockers(config)
    while due := store.due_cases(now, limit=SEND_BATCH, after_id=last_id):
        last_id = due[-1]["id"]
        if blockers and config.mail.mode == "invite_only":
            report.errors.append(f"{len(due)} invite-only email(s) wait, because "
                                 + "; ".join(blockers))
            continue
        if key is None:
            with store.begin() as conn:
                key = tokens.signing_key(config, conn)
        prepare_batch(store, config, renderer, _recheck(connectors, due, store, report), now,
                      key, report, blockers)
        deliver_outbox(store, transport, now=now, report=report, progress=progress)
        annotate_sent(store, connectors, [c["id"] for c in due])
    deliver_outbox(store, transport, now=now, report=report, progress=progress)
    report.late = count_late(store, now)


def annotate_sent(store: Store, connectors: dict[str, Connector], case_ids: list[int]) -> None:
    """Write "relay invitation sent" back to the ATS once per case (optional per connector)."""
    if not case_ids:
        return
    with store.engine.connect() as conn:
        sent = conn.execute(select(t.relay_cases.c.id, t.relay_cases.c.source,
                                   t.relay_cases.c.application_id, t.relay_cases.c.invite)
                            .where(t.relay_cases.c.id.in_(case_ids),
                                   t.relay_cases.c.state == CaseState.SENT.value)).all()
        done = set(conn.scalars(select(t.audit_log.c.case_id).where(
            t.audit_log.c.case_id.in_(case_ids), t.audit_log.c.action == "annotated")))
    for row in sent:
        connector = connectors.get(row.source)
        if connector is None or row.id in done:
            continue
        text = ("Career Relay: rejection email with relay invitation sent" if row.invite
                else "Career Relay: rejection email sent")
        try:
            written = connector.annotate(row.application_id, text)
        except RelayError as exc:
            log.warning("case %s: write-back to the ATS failed (%s)", row.id, exc)
            continue
        if written:
            with store.begin() as conn:
                store.audit(conn, row.id, f"annotate:{row.source}", "annotated")


def count_late(store: Store, now: datetime) -> int:
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.relay_cases.c.late, t.relay_cases.c.deadline_at).where(
            t.relay_cases.c.state.in_([CaseState.SCHEDULED.value, CaseState.SENDING.value,
                                       CaseState.HELD.value]))).all()
    return sum(1 for late, deadline in rows if late or (deadline and deadline < now))
