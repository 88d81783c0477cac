"""The relay pipeline: RejectionEvent → eligibility → schedule → render → send → record.

Each step is a state transition in the store (see models.TRANSITIONS) with its audit row in the
same transaction. The unique key (source, application id) makes detection idempotent; the
conditional `scheduled → sending` update and the outbox make delivery at-most-once.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from relay_core.config import Config
from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.eligibility import Decision, assess, language_for
from relay_core.cycle.outbox import deliver_outbox, recover_interrupted
from relay_core.cycle.scheduling import BusinessCalendar
from relay_core.errors import (
    AuthError,
    FatalError,
    RelayError,
    RetriableError,
    TemplateError,
)
from relay_core.mail.message import OutgoingMail, build_mail, make_message_id, message_id_domain
from relay_core.mail.transports import Transport
from relay_core.models import CaseState, RejectionEvent
from relay_core.records.consent import tokens
from relay_core.records.consent.records import expire_invitations
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.rendering.emails import Renderer, build_context, template_names
from relay_core.store import Store, utcnow
from relay_core.store import tables as t
from relay_core.store.db import person_key

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay")
SEND_BATCH = 200
RETRY_AFTER = timedelta(minutes=15)


@dataclass
class SourceReport:
    source: str
    detected: int = 0
    already_known: int = 0
    scheduled: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class CycleReport:
    sources: dict[str, SourceReport] = field(default_factory=dict)
    sent: int = 0
    cancelled: int = 0
    failed: int = 0
    retry_later: int = 0
    late: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(s.error for s in self.sources.values())


# --- detection -------------------------------------------------------------------------------
def ingest(store: Store, config: Config, events: Iterable[RejectionEvent], *, now: datetime,
           actor: str, report: SourceReport | None = None,
           conn: Connection | None = None) -> SourceReport:
    """Record events and decide each new case: skipped(reason) or scheduled(send_at).

    A page of events is a handful of statements, not a handful per event: the insert, the
    look-ups for suppressed and recently mailed people, and the transitions go in bulk."""
    events = list(events)
    report = report or SourceReport(events[0].source if events else "")
    if conn is None:
        with store.begin() as own:
            return ingest(store, config, events, now=now, actor=actor, report=report, conn=own)
    unique: dict[tuple[str, str], tuple[RejectionEvent, Decision]] = {}
    for event in events:
        if (event.source, event.application_id) not in unique:
            unique[event.source, event.application_id] = (event, assess(event, config, now))
    report.already_known += len(events) - len(unique)
    rows = [Store.case_values(event, email=decision.email, language=language_for(event, config),
                              now=now) for event, decision in unique.values()]
    created: dict[tuple[str, str], int] = {}
    for source in {key[0] for key in unique}:
        ids = store.insert_cases(conn, [r for r in rows if r["source"] == source], actor=actor,
                                 now=now)
        created.update({(source, app_id): case_id for app_id, case_id in ids.items()})
    report.already_known += len(unique) - len(created)
    report.detected += len(created)
    new = [(unique[key][0], unique[key][1], case_id) for key, case_id in created.items()]

    keys = [person_key(d.email) for _, d, _ in new if d.eligible]
    suppressed = store.suppressed_keys(conn, keys)
    cooldown_days = config.eligibility.person_cooldown_days
    mailed = store.mailed_keys(conn, keys, now - timedelta(days=cooldown_days),
                               exclude=created.values()) if cooldown_days else set()
    calendar = BusinessCalendar(config.schedule, config.company.tz)
    skips, schedules = [], []
    for event, decision, case_id in new:
        reason = decision.reason
        if decision.eligible:
            key = person_key(decision.email)
            if key in suppressed:
                reason = "the address bounced permanently before; it is suppressed"
            elif key in mailed:
                reason = f"the same person was mailed within the last {cooldown_days} days"
            elif cooldown_days:
                mailed.add(key)      # a second application in this page waits its turn
        if reason:
            skips.append({"id": case_id, "reason": reason})
            report.skip_reasons[reason] += 1
            continue
        plan = calendar.plan(event.rejected_at, now)
        schedules.append({"id": case_id, "reason": "late: past the deadline" if plan.late else "",
                          "send_at": plan.send_at, "deadline_at": plan.deadline_at,
                          "late": plan.late, "invite": decision.invite})
    store.transition_many(conn, skips, CaseState.SKIPPED, from_state=CaseState.DETECTED,
                          actor=actor, now=now)
    # With hold_for_approval the case waits, fully planned, until `career-relay approve`.
    waiting = CaseState.HELD if config.schedule.hold_for_approval else CaseState.SCHEDULED
    store.transition_many(conn, schedules, waiting, from_state=CaseState.DETECTED,
                          actor=actor, now=now)
    report.skipped += len(skips)
    report.scheduled += len(schedules)
    return report


def cancel_pending(store: Store, source: str, application_ids: Iterable[str], reason: str,
                   actor: str, conn: Connection | None = None) -> int:
    """Cancel the not-yet-sent mail of these applications (an un-rejection in the ATS)."""
    if conn is None:
        with store.begin() as own:
            return cancel_pending(store, source, application_ids, reason, actor, own)
    cancelled = 0
    for app_id in application_ids:
        case_id = conn.execute(select(t.relay_cases.c.id).where(
            t.relay_cases.c.source == source,
            t.relay_cases.c.application_id == app_id)).scalar_one_or_none()
        if case_id is not None and store.transition(
                conn, case_id, CaseState.CANCELLED, actor=actor, reason=reason,
                allowed_from=[CaseState.SCHEDULED, CaseState.HELD]):
            cancelled += 1
    return cancelled


def poll_source(store: Store, config: Config, connector: Connector, *, now: datetime,
                report: SourceReport) -> None:
    cursor = store.get_cursor(connector.name)
    for page in connector.poll(cursor):
        with store.begin() as conn:
            ingest(store, config, page.events, now=now, actor=f"poll:{connector.name}",
                   report=report, conn=conn)
            if page.cursor is not None and page.cursor != cursor:
                store.set_cursor(conn, connector.name, page.cursor)
                cursor = page.cursor
        report.problems.extend(str(p) for p in page.problems)


# --- sending ---------------------------------------------------------------------------------
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
                  report: CycleReport) -> None:
    """scheduled → sending for a batch: claim the cases, render each mail and put it in the
    outbox, all in one transaction. A case another process claimed first is left to it; a
    case whose mail cannot be built fails with the reason (a template or field, never data)."""
    kind = template_names("rejection", mode=config.mail.mode)
    domain = message_id_domain(config)
    ttl = timedelta(days=config.relay.invitation_ttl_days)
    with store.begin() as conn:
        claimed = store.transition_many(conn, [{"id": c["id"]} for c in cases],
                                        CaseState.SENDING, from_state=CaseState.SCHEDULED,
                                        actor="send", now=now)
        invitations, outbox, message_ids, failures = [], [], [], []
        for case in (c for c in cases if c["id"] in claimed):
            message_id = make_message_id(f"{case['source']}:{case['application_id']}", kind,
                                         domain)
            try:
                url = expires = invitation = None
                if case["invite"]:
                    token, invitation = tokens.new_token(key, case["id"], "consent", ttl, now)
                    url = f"{config.relay.public_base_url}/r/{token}"
                    expires = _invitation_expiry(config, now)
                elif kind == "invite_only":
                    raise FatalError("invite-only mode, and this case carries no invitation")
                mail = _build(config, renderer, case, kind, url, expires, message_id, now)
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
           url: str | None, expires: date | None, message_id: str, now: datetime
           ) -> OutgoingMail:
    person = json.loads(case["person_json"] or "{}")
    event = json.loads(case["event_json"] or "{}")
    context = build_context(
        config, display_name=person.get("full_name") or "", job_title=case["job_title"],
        last_name=person.get("last_name", ""), first_name=person.get("first_name", ""),
        stage=event.get("stage", ""), invitation_url=url, invitation_expires=expires,
        language=case["language"])
    rendered = renderer.render(kind, case["language"], context)
    return build_mail(config, to_addr=case["email"],
                      to_name=context["candidate"]["display_name"], subject=rendered.subject,
                      text=rendered.text, html=rendered.html, message_id=message_id, date=now)


def send_due(store: Store, config: Config, connectors: dict[str, Connector],
             renderer: Renderer, transport: Transport, *, now: datetime,
             report: CycleReport, progress: Callable[[int], None] | None = None) -> None:
    last_id = 0
    key = None
    while due := store.due_cases(now, limit=SEND_BATCH, after_id=last_id):
        last_id = due[-1]["id"]
        if key is None:
            with store.begin() as conn:
                key = tokens.signing_key(config, conn)
        prepare_batch(store, config, renderer, _recheck(connectors, due, store, report), now,
                      key, report)
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


# --- one cycle -------------------------------------------------------------------------------
def run_cycle(config: Config, store: Store, connectors: dict[str, Connector], *,
              transport: Transport, renderer: Renderer | None = None,
              now: datetime | None = None,
              progress: Callable[[int], None] | None = None) -> CycleReport:
    """Poll every source, schedule, send what is due. Holds the run lock throughout."""
    now = now or utcnow()
    renderer = renderer or Renderer(config)
    report = CycleReport()
    with store.lock():
        recover_interrupted(store, transport, now)
        for name, connector in connectors.items():
            source_report = report.sources.setdefault(name, SourceReport(name))
            if not connector.polls:
                continue
            try:
                poll_source(store, config, connector, now=now, report=source_report)
            except RelayError as exc:
                source_report.error = f"{type(exc).__name__}: {exc}"
                log.warning("source %s: %s", name, source_report.error)
        send_due(store, config, connectors, renderer, transport, now=now, report=report,
                 progress=progress)
        expire_invitations(store, now)
        try:
            deliver_handoffs(store, config, transport, now=now, report=report)
        finally:
            transport.close()   # the email channel may have reopened the SMTP connection
    return report
