"""What `run` and `status` report, as plain dicts (for `--json`; commands/tables.py draws them
as tables for people)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay_core.cycle.plan import Backfill, DryRun
from relay_core.cycle.report import CycleReport
from relay_core.records.handoff.deliver import handoff_status
from relay_core.store import Store, reports, utcnow
from relay_core.store.lease import LockView, lock_view
from relay_core.store.outbox import counts_by_state as outbox_counts
from relay_core.store.outbox import stuck_cases


def cycle_json(report: CycleReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "sources": {name: {"detected": s.detected, "already_known": s.already_known,
                           "scheduled": s.scheduled, "skipped": s.skipped,
                           "skip_reasons": dict(s.skip_reasons), "problems": s.problems,
                           "error": s.error}
                    for name, s in report.sources.items()},
        "sent": report.sent, "sent_late": report.sent_late, "cancelled": report.cancelled,
        "failed": report.failed, "retry_later": report.retry_later, "late": report.late,
        "held": sum(s.held for s in report.sources.values()),
        "no_invitation": report.no_invitation, "deferred": report.deferred,
        "skipped_at_send": report.skipped_at_send,
        "purged": report.purged, "ambiguous": report.ambiguous, "gave_up": report.stuck,
        "errors": report.errors,
    }


def status_data(store: Store, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    with store.connect() as conn:
        by_state, due, late, failed, skipped, sent_late, held, bare = reports.case_status(
            conn, now)
        handoffs = handoff_status(conn)
        outbox = outbox_counts(conn)
        # Every one of them: each waits for a person's decision (bench/chaos.py found
        # `status` listing 50 of 116, and its count said 50).
        ambiguous = stuck_cases(conn, "ambiguous", limit=None)
        gave_up = stuck_cases(conn, "gave_up", limit=None)
        lock = lock_view(conn, "run")
    return {
        "run_lock": run_lock_json(lock),
        "by_state": by_state, "due_now": due, "outbox": outbox, "handoffs": handoffs,
        "late": [{"case": r.id, "source": r.source,
                  "deadline": r.deadline_at.isoformat() if r.deadline_at else None}
                 for r in late],
        "failed": [{"case": r.id, "source": r.source, "reason": r.reason} for r in failed],
        # Handed to the mail server, answer unknown: counted as mailed, never resent silently.
        "ambiguous": [{"case": s.case_id, "source": s.source, "message_id": s.message_id,
                       "handed_over_at": s.at.isoformat() if s.at else None}
                      for s in ambiguous],
        # Failed after temporary failures past the limit: `run` exits 1 while any is here.
        "gave_up": [{"case": s.case_id, "source": s.source, "message_id": s.message_id,
                     "temporary_failures": s.temp_failures, "last_reply": s.last_reply}
                    for s in gave_up],
        "skip_reasons": {reason: n for reason, n in skipped},
        "sent_late": sent_late,
        "held_reasons": {reason: n for reason, n in held},
        "no_invitation": {note: n for note, n in bare},
    }


def run_lock_json(lock: LockView | None) -> dict[str, Any]:
    """Whether a cycle is running, and whose: host, pid, since when, the lease's end (never
    the lock's token). A stale lock (its holder died) is shown as such: no cycle runs."""
    if lock is None:
        return {"running": False}
    return {"running": not lock.stale, "host": lock.host, "pid": lock.pid,
            "since": lock.since.isoformat() if lock.since else None,
            "lease_until": lock.lease_until.isoformat(), "stale": lock.stale or None}


def _planned(case: Any) -> dict[str, Any]:
    return {"source": case.source, "application_id": case.application_id,
            "case": case.case_id, "outcome": case.outcome, "reason": case.reason,
            "send_at": case.send_at.isoformat() if case.send_at else None,
            "deadline": case.deadline_at.isoformat() if case.deadline_at else None,
            "late": case.late, "invitation": case.invite, "without_invitation": case.invite_note,
            "language": case.language}


def plan_json(plan: DryRun) -> dict[str, Any]:
    """`run --dry-run --json`: what a run would do; identifiers and decisions only."""
    return {
        "dry_run": True, "ok": plan.ok,
        "sources": {name: {"detected": s.detected, "already_known": s.already_known,
                           "scheduled": s.scheduled, "held": s.held, "skipped": s.skipped,
                           "skip_reasons": dict(s.skip_reasons), "problems": s.problems,
                           "error": s.error}
                    for name, s in plan.sources.items()},
        "cases": [_planned(c) for c in plan.cases],
        "due_now": plan.due_now, "due_late": plan.due_late,
        "would_send_late": plan.due_late + sum(
            1 for c in plan.cases if c.outcome == "schedule" and c.late),
    }


def backfill_json(result: Backfill, *, applied: bool) -> dict[str, Any]:
    return {"applied": applied, "opted_in": result.opted_in, "purged": result.purged,
            "would_send": len(result.would_send),
            "would_send_late": sum(1 for c in result.would_send if c.late),
            "cases": [_planned(c) for c in result.cases]}
