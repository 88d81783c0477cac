"""Detection: RejectionEvents from a poll or a webhook become relay cases, each decided at
once: skipped(reason), scheduled(send_at) or held for approval.

The unique key (source, application id) makes detection idempotent: the same rejection from a
poll and a webhook, from two overlapping runs, or after a crash, is one case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.cycle.eligibility import Decision, assess, language_for
from relay_core.cycle.report import SourceReport
from relay_core.cycle.scheduling import BusinessCalendar
from relay_core.models import CaseState, RejectionEvent
from relay_core.store import Connection, Store, cases, person_key

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


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
    rows = [cases.case_values(event, email=decision.email, language=language_for(event, config),
                              now=now) for event, decision in unique.values()]
    created: dict[tuple[str, str], int] = {}
    for source in {key[0] for key in unique}:
        ids = cases.insert_cases(conn, [r for r in rows if r["source"] == source], actor=actor,
                                 now=now)
        created.update({(source, app_id): case_id for app_id, case_id in ids.items()})
    report.already_known += len(unique) - len(created)
    report.detected += len(created)
    new = [(unique[key][0], unique[key][1], case_id) for key, case_id in created.items()]

    keys = [person_key(d.email) for _, d, _ in new if d.eligible]
    suppressed = cases.suppressed_keys(conn, keys)
    cooldown_days = config.eligibility.person_cooldown_days
    mailed = cases.mailed_keys(conn, keys, now - timedelta(days=cooldown_days),
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
    cases.transition_many(conn, skips, CaseState.SKIPPED, from_state=CaseState.DETECTED,
                          actor=actor, now=now)
    # With hold_for_approval the case waits, fully planned, until `career-relay approve`.
    waiting = CaseState.HELD if config.schedule.hold_for_approval else CaseState.SCHEDULED
    cases.transition_many(conn, schedules, waiting, from_state=CaseState.DETECTED,
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
    """Store each page with its cursor; `progress(source, pages, records)` after each page."""
    cursor = store.get_cursor(connector.name)
    pages = records = 0
    if progress:
        progress(connector.name, pages, records)
    for page in connector.poll(cursor):
        pages, records = pages + 1, records + len(page.events) + len(page.problems)
        if progress:
            progress(connector.name, pages, records)
        with store.begin() as conn:
            ingest(store, config, page.events, now=now, actor=f"poll:{connector.name}",
                   report=report, conn=conn)
            if page.cursor is not None and page.cursor != cursor:
                store.set_cursor(conn, connector.name, page.cursor)
                cursor = page.cursor
        report.problems.extend(str(p) for p in page.problems)
