"""Detection: RejectionEvents from a poll or a webhook become relay cases, each decided at
once: skipped(reason), scheduled(send_at) or held for approval (with the reason: a feedback
text to read, a person still in process elsewhere under "hold", `hold_for_approval`).

The unique key (source, application id) makes detection idempotent: the same rejection from a
poll and a webhook, from two overlapping runs, or after a crash, is one case.

State follows the ATS: a case whose mail the ATS cancelled before it went out (un-rejected, its
reason changed, the person back in process) is reopened when the ATS rejects the application
again, i.e. reports it with a newer rejected-at; the new rejection is then decided like a new
case (eligibility, cooldown, a new schedule). The same rejection repeated reopens nothing, a
person's cancel (`career-relay cancel`, the console) stands, and a case that was ever queued
for sending (sent, failed, in flight) is never reopened: one application, at most one email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from relay_core.config import Config
from relay_core.cycle import control
from relay_core.cycle.eligibility import (
    IN_PROCESS_NOTE,
    Decision,
    assess,
    category_cancel,
    language_for,
)
from relay_core.cycle.report import SourceReport
from relay_core.cycle.scheduling import BusinessCalendar, Plan
from relay_core.models import CaseState, RejectionEvent
from relay_core.store import Connection, Store, cases, installs, person_key

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


# The actors that speak for the ATS in the audit trail: what they cancelled, a newer rejection
# reopens. Anyone else (cli:, console:) is a person, whose cancel stands.
ATS_ACTORS = ("poll:", "webhook:", "recheck:")
REOPENED = ("rejected again in the ATS after the earlier rejection was undone there; "
            "reopened and decided afresh")
BACK_IN_PROCESS = "the ATS shows this application in process again (un-rejected)"
STORED = object()   # `installed_at` not given: the store's moment for each source


@dataclass(frozen=True)
class Outcome:
    """What detection decides for one new case: skipped (reason), or planned to be sent at
    its time (held first when `hold` says why)."""

    event: RejectionEvent
    decision: Decision
    reason: str = ""                 # why skipped ("" = planned)
    plan: Plan | None = None
    hold: str = ""

    @property
    def state(self) -> CaseState:
        if self.reason:
            return CaseState.SKIPPED
        return CaseState.HELD if self.hold else CaseState.SCHEDULED


def decide(new: list[tuple[RejectionEvent, Decision]], config: Config, *, now: datetime,
           suppressed: set[str], mailed: set[str]) -> list[Outcome]:
    """The outcome of each new case, given the people whose address is suppressed and those
    mailed within the cooldown. Pure: `ingest` writes
    it down, `run --dry-run` only shows it."""
    cooldown_days = config.eligibility.person_cooldown_days
    calendar = BusinessCalendar(config.schedule, config.company.tz)
    outcomes = []
    for event, decision in new:
        reason = decision.reason
        if decision.eligible:
            key = person_key(decision.email)
            if key in suppressed:
                reason = "the address bounced permanently before; it is suppressed"
            elif key in mailed:
                reason = f"the same person was mailed within the last {cooldown_days} days"
            # Two applications of one person both planned: the first due is mailed, the other
            # skipped then (sending.one_email_per_person), so cancelling one loses nobody.
        if reason:
            outcomes.append(Outcome(event, decision, reason=reason))
            continue
        # With hold_for_approval every case waits, fully planned, until `career-relay approve`.
        hold = decision.hold or ("held for approval (schedule.hold_for_approval)"
                                 if config.schedule.hold_for_approval else "")
        outcomes.append(Outcome(event, decision, plan=calendar.plan(event.rejected_at, now),
                                hold=hold))
    return outcomes


def people_facts(conn: Connection, config: Config, decided: list[tuple[RejectionEvent, Decision]],
                 now: datetime, exclude: Iterable[int] = ()) -> tuple[set[str], set[str]]:
    """(suppressed, mailed within the cooldown) among the people these decisions would mail."""
    keys = [person_key(d.email) for _, d in decided if d.eligible and d.email]
    cooldown_days = config.eligibility.person_cooldown_days
    mailed = cases.mailed_keys(conn, keys, now - timedelta(days=cooldown_days),
                               exclude=exclude, owed_note=IN_PROCESS_NOTE) \
        if cooldown_days else set()
    return cases.suppressed_keys(conn, keys), mailed


def ingest(store: Store, config: Config, events: Iterable[RejectionEvent], *, now: datetime,
           actor: str, report: SourceReport | None = None,
           conn: Connection | None = None, installed_at: Any = STORED) -> SourceReport:
    """Record events and decide each new case: skipped(reason), scheduled(send_at) or held.

    A page of events is a handful of statements, not a handful per event: the insert, the
    look-ups for suppressed and recently mailed people, and the transitions go in bulk.
    `installed_at`: the source's first poll (rejections before it are skipped); by default the
    moment the store holds for each event's source (none yet: no such rule, e.g. webhooks)."""
    events = list(events)
    report = report or SourceReport(events[0].source if events else "")
    if conn is None:
        with store.begin() as own:
            return ingest(store, config, events, now=now, actor=actor, report=report, conn=own,
                          installed_at=installed_at)
    installed: dict[str, datetime | None] = {}
    for source in {e.source for e in events}:
        installed[source] = (installs.installed_at(conn, source) if installed_at is STORED
                             else installed_at)
    unique: dict[tuple[str, str], tuple[RejectionEvent, Decision]] = {}
    for event in events:
        if (event.source, event.application_id) not in unique:
            unique[event.source, event.application_id] = (
                event, assess(event, config, now, installed[event.source]))
    report.already_known += len(events) - len(unique)
    rows = [cases.case_values(event, email=decision.email, language=language_for(event, config),
                              now=now) for event, decision in unique.values()]
    created: dict[tuple[str, str], int] = {}
    for source in {key[0] for key in unique}:
        mine = [r for r in rows if r["source"] == source]
        ids = cases.insert_cases(conn, mine, actor=actor, now=now)
        known = [r for r in mine if r["application_id"] not in ids]
        reopened = cases.reopen(conn, known, cancelled_by=ATS_ACTORS, reason=REOPENED,
                                actor=actor, now=now)
        report.reopened += len(reopened)
        ids |= reopened
        created.update({(source, app_id): case_id for app_id, case_id in ids.items()})
    report.already_known += len(unique) - len(created)
    report.detected += len(created)
    _follow_changed_reasons(store, unique, created, actor, report, conn)
    new = [unique[key] for key in created]
    suppressed, mailed = people_facts(conn, config, new, now, exclude=created.values())
    skips, planned = [], {CaseState.SCHEDULED: [], CaseState.HELD: []}
    for outcome, case_id in zip(decide(new, config, now=now, suppressed=suppressed,
                                       mailed=mailed), created.values(), strict=True):
        if outcome.state is CaseState.SKIPPED:
            skips.append({"id": case_id, "reason": outcome.reason})
            report.skip_reasons[outcome.reason] += 1
            continue
        plan = outcome.plan
        reason = "; ".join(r for r in (outcome.hold, "late: past the deadline" if plan.late
                                       else "") if r)
        planned[outcome.state].append({
            "id": case_id, "reason": reason, "send_at": plan.send_at,
            "deadline_at": plan.deadline_at, "late": plan.late,
            "invite": outcome.decision.invite, "invite_note": outcome.decision.invite_note})
    cases.transition_many(conn, skips, CaseState.SKIPPED, from_state=CaseState.DETECTED,
                          actor=actor, now=now)
    for state, changes in planned.items():
        cases.transition_many(conn, changes, state, from_state=CaseState.DETECTED,
                              actor=actor, now=now)
    report.skipped += len(skips)
    report.scheduled += len(planned[CaseState.SCHEDULED]) + len(planned[CaseState.HELD])
    report.held += len(planned[CaseState.HELD])
    return report


def _follow_changed_reasons(store: Store, unique: dict[tuple[str, str], tuple[RejectionEvent,
                            Decision]], created: dict[tuple[str, str], int], actor: str,
                            report: SourceReport, conn: Connection) -> None:
    """A known application the ATS now reports as a withdrawal or a hire (a reason changed
    after detection, e.g. a new HRMOS export row 辞退): its pending email is cancelled now,
    the same rule as the re-check before sending (which a file source cannot ask)."""
    changed: dict[tuple[str, str], list[str]] = {}
    for key, (event, _) in unique.items():
        reason = category_cancel(event.category, event.reason_text)
        if key not in created and reason:
            changed.setdefault((key[0], reason), []).append(key[1])
    for (source, reason), app_ids in changed.items():
        report.cancelled += cancel_pending(store, source, app_ids, reason, actor, conn)


def cancel_pending(store: Store, source: str, application_ids: Iterable[str], reason: str,
                   actor: str, conn: Connection | None = None) -> int:
    """Cancel the not-yet-sent mail of these applications (an un-rejection in the ATS)."""
    if conn is None:
        with store.begin() as own:
            return cancel_pending(store, source, application_ids, reason, actor, own)
    application_ids = list(application_ids)
    case_ids = cases.ids_by_key(conn, source, application_ids)
    cancelled = 0
    for app_id in application_ids:
        case_id = case_ids.get(app_id)
        if case_id is not None and cases.transition(
                conn, case_id, CaseState.CANCELLED, actor=actor, reason=reason,
                allowed_from=[CaseState.SCHEDULED, CaseState.HELD]):
            cancelled += 1
    return cancelled


def poll_source(store: Store, config: Config, connector: Connector, *, now: datetime,
                report: SourceReport,
                progress: Callable[[str, int, int], None] | None = None) -> None:
    """Store each page with its cursor; `progress(source, pages, records)` after each page.
    The first poll that completes records its start as the source's installation moment:
    rejections before it are skipped (`career-relay backfill` opts them in)."""
    cursor = store.get_cursor(connector.name)
    with store.connect() as conn:
        installed = installs.installed_at(conn, connector.name)
    first = installed is None

    def known(stamps: Mapping[str, datetime]) -> set[str]:
        with store.connect() as conn:
            return cases.known_unchanged(conn, connector.name, stamps)

    connector.known = known        # unchanged applications are not looked up again

    pages = records = 0
    if progress:
        progress(connector.name, pages, records)
    for page in connector.poll(cursor):
        control.ensure()   # a stop between pages: the pages stored so far keep their cursor
        pages, records = pages + 1, records + len(page.events) + len(page.problems)
        if progress:
            progress(connector.name, pages, records)
        with store.begin() as conn:
            ingest(store, config, page.events, now=now, actor=f"poll:{connector.name}",
                   report=report, conn=conn, installed_at=installed or now)
            report.cancelled += cancel_pending(store, connector.name, page.unrejected,
                                               BACK_IN_PROCESS, f"poll:{connector.name}", conn)
            if page.cursor is not None and page.cursor != cursor:
                store.set_cursor(conn, connector.name, page.cursor)
                cursor = page.cursor
        report.problems.extend(str(p) for p in page.problems)
    if first:
        with store.begin() as conn:
            installs.record_installed(conn, connector.name, now)
