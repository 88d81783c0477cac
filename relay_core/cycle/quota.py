"""`mail.smtp.max_per_day`: the provider's daily quota (reference/privacy_email.md sec. 3.8).

At most that many outbox messages (rejections, invitations, confirmations) leave in any 24
hours, counted from the store, so every process sharing it keeps to the one quota. Due
messages beyond it stay in the queue, due again when the oldest message of the last 24 hours is a
day old: the excess goes out the next day, in order. Agency intake mails are few and do not
pass through the outbox; they are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from relay_core.cycle.report import CycleReport
from relay_core.mail.transports import Transport
from relay_core.store import Store, quota

DAY = timedelta(hours=24)
Row = TypeVar("Row")


def within_daily_limit(store: Store, transport: Transport, rows: Sequence[Row],
                       now: datetime, report: CycleReport) -> list[Row]:
    """The due rows that fit today's quota; the rest are deferred (and counted)."""
    limit = getattr(transport, "max_per_day", 0)
    if not limit or not rows:
        return list(rows)
    with store.begin() as conn:
        sent = quota.sent_since(conn, now - DAY)
        room = max(0, limit - len(sent))
        if len(rows) <= room:
            return list(rows)
        later: list[Any] = list(rows[room:])
        release = (sent[0] if sent else now) + DAY
        report.deferred += quota.defer(
            conn, [r.id for r in later], release,
            f"deferred: mail.smtp.max_per_day ({limit}) reached; due {release.isoformat()}")
    return list(rows[:room])
