"""What `run` and `status` report, as plain dicts (for `--json`; commands/tables.py draws them
as tables for people)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay_core.cycle.report import CycleReport
from relay_core.records.handoff.deliver import handoff_status
from relay_core.store import Store, reports, utcnow
from relay_core.store.outbox import counts_by_state as outbox_counts


def cycle_json(report: CycleReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "sources": {name: {"detected": s.detected, "already_known": s.already_known,
                           "scheduled": s.scheduled, "skipped": s.skipped,
                           "skip_reasons": dict(s.skip_reasons), "problems": s.problems,
                           "error": s.error}
                    for name, s in report.sources.items()},
        "sent": report.sent, "cancelled": report.cancelled, "failed": report.failed,
        "retry_later": report.retry_later, "late": report.late, "deferred": report.deferred,
        "purged": report.purged, "errors": report.errors,
    }


def status_data(store: Store, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    with store.connect() as conn:
        by_state, due, late, failed, skipped = reports.case_status(conn, now)
        handoffs = handoff_status(conn)
        outbox = outbox_counts(conn)
    return {
        "by_state": by_state, "due_now": due, "outbox": outbox, "handoffs": handoffs,
        "late": [{"case": r.id, "source": r.source,
                  "deadline": r.deadline_at.isoformat() if r.deadline_at else None}
                 for r in late],
        "failed": [{"case": r.id, "source": r.source, "reason": r.reason} for r in failed],
        "skip_reasons": {reason: n for reason, n in skipped},
    }
