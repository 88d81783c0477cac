"""The outbox aggregate: rendered messages waiting as exact bytes until a transport took them.

    pending → sending → sent | failed, and sending → pending again (retry, or recovered after
    a crash on a transport that may safely write twice)

A row is claimed (`pending → sending`) with a conditional UPDATE, so two senders never hand over
the same message; the bytes are dropped once the message is sent or refused (personal data no
longer needed). The delivery decisions live in cycle/outbox.py; only the SQL is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Row, func, select, update

from relay_core.store import tables as t
from relay_core.store.tables import utcnow

CHUNK = 500
o = t.outbox.c


@dataclass(frozen=True, slots=True, repr=False)
class OutboxMessage:
    """One queued message. `message` (the bytes) is None when it was not asked for."""

    id: int
    case_id: int | None
    kind: str
    message_id: str
    recipient: str | None
    message: bytes | None = None

    def __repr__(self) -> str:  # the recipient and the bytes are personal data
        return f"OutboxMessage(id={self.id}, case_id={self.case_id}, kind={self.kind!r})"

    __str__ = __repr__


class QueuedMail(NamedTuple):
    """A built message to queue: its bytes exactly as they will go out."""

    case_id: int | None
    message_id: str
    recipient: str
    message: bytes

    def __repr__(self) -> str:  # the recipient and the bytes are personal data
        return f"QueuedMail(case_id={self.case_id}, message_id={self.message_id!r})"


def _message(row: Row) -> OutboxMessage:
    return OutboxMessage(row.id, row.case_id, row.kind, row.message_id, row.recipient,
                         getattr(row, "message", None))


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def enqueue(conn: Connection, kind: str, mails: Iterable[QueuedMail], now: datetime) -> None:
    """Queue built messages of one kind in one statement, due at once."""
    rows = [dict(case_id=mail.case_id, kind=kind, message_id=mail.message_id,
                 recipient=mail.recipient, message=mail.message, state="pending", attempts=0,
                 next_attempt_at=now, last_error="", created_at=now)
            for mail in mails]
    if rows:
        conn.execute(t.outbox.insert(), rows)


def claim(conn: Connection, now: datetime) -> list[OutboxMessage]:
    """pending → sending for every message due by `now`, with its bytes; a message another
    process claimed first is left out."""
    rows = conn.execute(
        select(o.id, o.case_id, o.kind, o.message_id, o.recipient, o.message)
        .where(o.state == "pending", o.next_attempt_at <= now)
        .order_by(o.id)).all()
    if not rows:
        return []
    claimed: set[int] = set()
    for ids in _chunks([r.id for r in rows]):
        claimed.update(conn.scalars(
            update(t.outbox).where(o.id.in_(ids), o.state == "pending")
            .values(state="sending", attempts=o.attempts + 1)
            .returning(o.id)))
    return [_message(r) for r in rows if r.id in claimed]


def mark_sent(conn: Connection, ids: list[int]) -> None:
    """Handed over: the bytes are no longer needed."""
    at = utcnow()
    for chunk in _chunks(ids):
        conn.execute(update(t.outbox).where(o.id.in_(chunk)).values(
            state="sent", sent_at=at, message=None, last_error=""))


def mark_retry(conn: Connection, message_id: int, next_attempt_at: datetime,
               error: str) -> None:
    """Not handed over: back in the queue until `next_attempt_at`."""
    conn.execute(update(t.outbox).where(o.id == message_id).values(
        state="pending", next_attempt_at=next_attempt_at, last_error=error[:500]))


def mark_refused(conn: Connection, message_id: int, error: str) -> None:
    """The server refused it for good: failed, and the bytes go."""
    conn.execute(update(t.outbox).where(o.id == message_id).values(
        state="failed", last_error=error[:500], message=None))


def interrupted(conn: Connection) -> list[OutboxMessage]:
    """Messages claimed by a process that never recorded the outcome (without their bytes)."""
    rows = conn.execute(select(o.id, o.case_id, o.kind, o.message_id, o.recipient)
                        .where(o.state == "sending").order_by(o.id)).all()
    return [_message(r) for r in rows]


def requeue(conn: Connection, ids: list[int]) -> None:
    for chunk in _chunks(ids):
        conn.execute(update(t.outbox).where(o.id.in_(chunk)).values(state="pending"))


def mark_interrupted(conn: Connection, ids: list[int]) -> None:
    """Failed without knowing whether the server took it; the bytes stay for the check."""
    for chunk in _chunks(ids):
        conn.execute(update(t.outbox).where(o.id.in_(chunk)).values(
            state="failed", last_error="interrupted during delivery"))


def counts_by_state(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(select(o.state, func.count()).group_by(o.state)).all())
