"""What `run` and `status` report, as plain dicts (for `--json`; commands/tables.py draws them
as tables for people)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from relay_core.cycle.report import CycleReport
from relay_core.models import CaseState
from relay_core.records.handoff.deliver import handoff_status
from relay_core.store import Store, utcnow
from relay_core.store import tables as t


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
    c = t.relay_cases.c
    with store.engine.connect() as conn:
        by_state = dict(conn.execute(select(c.state, func.count()).group_by(c.state)).all())
        due = conn.execute(select(func.count()).where(
            c.state == CaseState.SCHEDULED.value, c.send_at <= now)).scalar_one()
        waiting = [CaseState.SCHEDULED.value, CaseState.SENDING.value, CaseState.HELD.value]
        late = conn.execute(select(c.id, c.source, c.deadline_at).where(
            c.state.in_(waiting), (c.late.is_(True)) | (c.deadline_at < now))
            .order_by(c.id).limit(50)).all()
        failed = conn.execute(select(c.id, c.source, c.reason).where(
            c.state == CaseState.FAILED.value).order_by(c.id.desc()).limit(50)).all()
        skipped = conn.execute(select(c.reason, func.count()).where(
            c.state == CaseState.SKIPPED.value).group_by(c.reason)).all()
        handoffs = handoff_status(conn)
        outbox = dict(conn.execute(select(t.outbox.c.state, func.count())
                                   .group_by(t.outbox.c.state)).all())
    return {
        "by_state": by_state, "due_now": due, "outbox": outbox, "handoffs": handoffs,
        "late": [{"case": r.id, "source": r.source,
                  "deadline": r.deadline_at.isoformat() if r.deadline_at else None}
                 for r in late],
        "failed": [{"case": r.id, "source": r.source, "reason": r.reason} for r in failed],
        "skip_reasons": {reason: n for reason, n in skipped},
    }
