"""What `mail.smtp.max_per_day` asks of the store (cycle/quota.py decides): when the outbox
sent its messages in the last day, and handing claimed messages back for later."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from relay_core.store import tables as t

o = t.outbox.c


def sent_since(conn: Connection, since: datetime) -> list[datetime]:
    """When each outbox message sent at or after `since` went out, oldest first."""
    return list(conn.execute(select(o.sent_at).where(
        o.state == "sent", o.sent_at >= since).order_by(o.sent_at)).scalars())


def defer(conn: Connection, ids: list[int], until: datetime, note: str) -> int:
    """Due but over the quota: still queued, due again at `until` (no attempt counted).
    Returns how many."""
    deferred = 0
    for i in range(0, len(ids), 500):
        deferred += conn.execute(update(t.outbox).where(
            o.id.in_(ids[i:i + 500]), o.state == "pending").values(
            next_attempt_at=until, last_error=note)).rowcount
    return deferred
