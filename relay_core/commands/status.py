"""What `run` and `status` print: rich tables for people, plain dicts for scripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from relay_core.cycle.report import CycleReport
from relay_core.models import CaseState
from relay_core.records.handoff.deliver import handoff_status, handoff_table
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
        "retry_later": report.retry_later, "late": report.late, "errors": report.errors,
    }


def cycle_table(report: CycleReport) -> Group:
    table = Table(title="career-relay run", show_footer=False)
    for col in ("source", "new", "known", "scheduled", "skipped", "problems"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in report.sources.items():
        table.add_row(name, str(s.detected), str(s.already_known), str(s.scheduled),
                      str(s.skipped), str(len(s.problems)))
    table.caption = (f"sent {report.sent} · cancelled {report.cancelled} · failed "
                     f"{report.failed} · retry later {report.retry_later} · late {report.late}")
    lines = []
    for name, s in report.sources.items():
        if s.error:
            lines.append(f"{name}: {s.error}")
        lines += [f"{name}: skipped {n} × {reason}" for reason, n in s.skip_reasons.items()]
        lines += [f"{name}: {p}" for p in s.problems]
    lines += report.errors
    notes = Text("\n".join(f"  {line}" for line in lines)) if lines else Text("")
    return Group(table, notes)


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


def status_tables(data: dict[str, Any]) -> list[Table]:
    states = Table(title="cases by state")
    states.add_column("state")
    states.add_column("cases", justify="right")
    for state in CaseState:
        states.add_row(state.value, str(data["by_state"].get(state.value, 0)))
    states.caption = f"due now {data['due_now']} · late {len(data['late'])}"
    tables = [states]
    if data["failed"] or data["late"]:
        problems = Table(title="needs attention")
        for col in ("case", "source", "what"):
            problems.add_column(col)
        for f in data["failed"]:
            problems.add_row(str(f["case"]), f["source"], f"failed: {f['reason']}")
        for item in data["late"]:
            problems.add_row(str(item["case"]), item["source"],
                             f"late: deadline {item['deadline']}")
        tables.append(problems)
    if data.get("handoffs", {}).get("handoffs") or data.get("handoffs", {}).get("dead"):
        tables.append(handoff_table(data["handoffs"]))
    if data["skip_reasons"]:
        skips = Table(title="why cases were skipped")
        skips.add_column("reason")
        skips.add_column("cases", justify="right")
        for reason, n in sorted(data["skip_reasons"].items(), key=lambda kv: -kv[1]):
            skips.add_row(reason, str(n))
        tables.append(skips)
    return tables
