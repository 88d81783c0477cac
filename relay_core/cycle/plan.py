"""What a run would do, and the backfill: `career-relay run --dry-run` and
`career-relay backfill --since DATE [--dry-run]`.

`plan_cycle` polls every source exactly as `run` does (from the stored cursor) and decides each
new rejection with the same code (ingest.py `decide`), but writes nothing: no case, no cursor,
no installation moment, no lock, no cycle history. It reads the store only to know which
rejections are already cases and who was mailed recently. What is due now is counted, not sent.

`backfill` opts in rejections made before the installation's first poll of a source (skipped
then with eligibility.BEFORE_INSTALL): every other rule still applies (max_age_days, cooldown,
suppression, …), and each case is planned like a new one, usually already past its deadline,
so it is counted as sent late. With `apply=False` it only shows what would be sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.cycle.eligibility import BEFORE_INSTALL, Decision, assess, language_for
from relay_core.cycle.ingest import ATS_ACTORS, Outcome, decide, people_facts
from relay_core.cycle.report import SourceReport
from relay_core.cycle.run import describe_error
from relay_core.errors import RelayError
from relay_core.models import CaseState, RejectionEvent
from relay_core.store import Connection, Store, cases, installs, person_key

if TYPE_CHECKING:
    from relay_core.contract.base import Connector


@dataclass(frozen=True)
class PlannedCase:
    """One rejection as the plan sees it: identifiers and the decision, never personal data."""

    source: str
    application_id: str
    outcome: str                    # "schedule" | "hold" | "skip"
    reason: str = ""                # why skipped or held
    send_at: datetime | None = None
    deadline_at: datetime | None = None
    late: bool = False
    invite: bool = False
    invite_note: str = ""
    language: str = ""
    rejected_at: datetime | None = None
    case_id: int | None = None

    @classmethod
    def of(cls, outcome: Outcome, config: Config, case_id: int | None = None) -> PlannedCase:
        event, plan = outcome.event, outcome.plan
        kind = {CaseState.SKIPPED: "skip", CaseState.HELD: "hold",
                CaseState.SCHEDULED: "schedule"}[outcome.state]
        return cls(event.source, event.application_id, kind,
                   outcome.reason or outcome.hold,
                   plan.send_at if plan else None, plan.deadline_at if plan else None,
                   bool(plan and plan.late), outcome.decision.invite and not outcome.reason,
                   outcome.decision.invite_note, language_for(event, config),
                   event.rejected_at, case_id)


@dataclass
class DryRun:
    sources: dict[str, SourceReport] = field(default_factory=dict)
    cases: list[PlannedCase] = field(default_factory=list)
    due_now: int = 0                # scheduled cases whose time has come: a run sends them
    due_late: int = 0               # of those, the ones already past their deadline

    @property
    def ok(self) -> bool:
        return not any(s.error for s in self.sources.values())


def plan_cycle(config: Config, store: Store, connectors: dict[str, Connector], *,
               now: datetime) -> DryRun:
    """Poll and decide as `run` would, writing nothing (see the module docstring)."""
    result = DryRun()
    for name, connector in connectors.items():
        report = result.sources.setdefault(name, SourceReport(name))
        if not connector.polls:
            continue
        report.polled = True
        try:
            _plan_source(config, store, connector, now, report, result)
        except RelayError as exc:
            report.error = describe_error(exc)
    with store.connect() as conn:
        due = cases.due(conn, now, limit=1_000_000)
    result.due_now = len(due)
    result.due_late = sum(1 for c in due if c.deadline_at and c.deadline_at < now)
    return result


def _plan_source(config: Config, store: Store, connector: Connector, now: datetime,
                 report: SourceReport, result: DryRun) -> None:
    with store.connect() as conn:
        installed = installs.installed_at(conn, connector.name) or now
    seen: set[str] = set()
    mailed: set[str] | None = None
    for page in connector.poll(store.get_cursor(connector.name)):
        report.problems.extend(str(p) for p in page.problems)
        fresh = []
        for event in page.events:
            if event.application_id in seen:
                report.already_known += 1
                continue
            seen.add(event.application_id)
            fresh.append(event)
        with store.connect() as conn:
            known = cases.ids_by_key(conn, connector.name, [e.application_id for e in fresh])
            # A known case the ATS cancelled, rejected again since: `run` reopens it.
            again = cases.reopenable(conn, connector.name,
                                     {e.application_id: e.rejected_at for e in fresh
                                      if e.application_id in known}, cancelled_by=ATS_ACTORS)
            new = [(e, assess(e, config, now, installed)) for e in fresh
                   if e.application_id not in known or e.application_id in again]
            suppressed, recent = people_facts(conn, config, new, now, exclude=again.values())
        report.already_known += len(known) - len(again)
        report.reopened += len(again)
        report.detected += len(new)
        mailed = recent if mailed is None else mailed | recent
        for outcome in decide(new, config, now=now, suppressed=suppressed, mailed=mailed):
            _count(report, outcome)
            result.cases.append(PlannedCase.of(outcome, config))


def _count(report: SourceReport, outcome: Outcome) -> None:
    if outcome.state is CaseState.SKIPPED:
        report.skipped += 1
        report.skip_reasons[outcome.reason] += 1
        return
    report.scheduled += 1
    if outcome.state is CaseState.HELD:
        report.held += 1


# --- backfill ---------------------------------------------------------------------------------
@dataclass
class Backfill:
    cases: list[PlannedCase] = field(default_factory=list)
    opted_in: int = 0               # cases moved to scheduled or held (apply=True only)
    purged: int = 0                 # skipped before the install, but their data is gone

    @property
    def would_send(self) -> list[PlannedCase]:
        return [c for c in self.cases if c.outcome != "skip"]


BACKFILL_CHUNK = 1000


def backfill(store: Store, config: Config, since: datetime, now: datetime, *, apply: bool,
             actor: str, sources: list[str] | None = None) -> Backfill:
    """Rejections made at or after `since` and skipped as "before the first poll": each
    decided again with every rule but that one; with `apply`, the ones to mail are planned
    (scheduled, or held) in one transaction, each with an audit row."""
    result = Backfill()
    with store.connect() as conn:
        rows = installs.skipped_before(conn, reason=BEFORE_INSTALL, since=since,
                                       sources=sources)
    with store.begin() if apply else store.connect() as conn:
        # A chunk at a time: a first backfill can find 100,000 rejections, and their parsed
        # events and decisions all at once took over a gigabyte. Each case's outcome depends
        # only on the store (suppressed, mailed), never on another case of the backfill.
        for start in range(0, len(rows), BACKFILL_CHUNK):
            _backfill_chunk(conn, config, rows[start:start + BACKFILL_CHUNK], now,
                            result, apply=apply, actor=actor)
    return result


def _backfill_chunk(conn: Connection, config: Config, rows: list[tuple[int, str, str | None]],
                    now: datetime, result: Backfill, *, apply: bool, actor: str) -> None:
    found: list[tuple[int, RejectionEvent, Decision]] = []
    for case_id, _source, event_json in rows:
        if not event_json:
            result.purged += 1
            continue
        event = RejectionEvent.model_validate_json(event_json)
        found.append((case_id, event, assess(event, config, now, installed_at=None)))
    decided = [(event, decision) for _, event, decision in found]
    suppressed, mailed = people_facts(conn, config, decided, now,
                                      exclude=[case_id for case_id, _, _ in found])
    outcomes = decide(decided, config, now=now, suppressed=suppressed, mailed=mailed)
    changes: dict[CaseState, list[dict]] = {CaseState.SCHEDULED: [], CaseState.HELD: []}
    for (case_id, _, _), outcome in zip(found, outcomes, strict=True):
        result.cases.append(PlannedCase.of(outcome, config, case_id))
        if outcome.state is CaseState.SKIPPED:
            continue
        plan = outcome.plan
        email = outcome.decision.email   # a skipped case kept no address: set it now
        changes[outcome.state].append({
            "id": case_id, "email": email, "person_key": person_key(email),
            "send_at": plan.send_at, "deadline_at": plan.deadline_at,
            "late": plan.late, "invite": outcome.decision.invite,
            "invite_note": outcome.decision.invite_note,
            "reason": "; ".join(r for r in ("opted in by backfill", outcome.hold,
                                            "late: past the deadline" if plan.late
                                            else "") if r)})
    if apply:
        for state, rows_ in changes.items():
            result.opted_in += len(installs.reopen(conn, rows_, state, reason=BEFORE_INSTALL,
                                                   actor=actor, now=now))
