"""The webhook inbox: verified deliveries, appended before the 200 and processed after it.

`append` is the group commit's one statement (many deliveries, one INSERT, one commit).
`pending` reads the next unprocessed rows in arrival order; `claim` marks one processed inside
the caller's transaction (only the first claim of a row succeeds, so two processors never both
ingest it) and drops its body and headers at once: they hold personal data and are not needed
once the delivery is a case. `purge` deletes processed rows and blanks the bodies of rows that
could never be processed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from relay_core.store import tables as t


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    source: str
    received_at: datetime
    attempts: int
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


def row_values(source: str, headers: Mapping[str, str], body: bytes,
               received_at: datetime) -> dict:
    """The values of one delivery's row (the request side builds them, the writer inserts)."""
    return {"source": source, "received_at": received_at, "body": body,
            "headers": json.dumps(dict(headers), ensure_ascii=False), "attempts": 0}


def append(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(insert(t.webhook_inbox), rows)


def pending(conn: Connection, now: datetime, limit: int = 100) -> list[InboxRow]:
    """Unprocessed rows whose retry time (if any) has come, oldest first."""
    c = t.webhook_inbox.c
    rows = conn.execute(
        select(c.id, c.source, c.received_at, c.attempts, c.headers, c.body)
        .where(c.processed_at.is_(None), c.body.isnot(None),
               (c.next_attempt_at.is_(None)) | (c.next_attempt_at <= now))
        .order_by(c.id).limit(limit))
    return [InboxRow(r.id, r.source, r.received_at, r.attempts,
                     json.loads(r.headers or "{}"), bytes(r.body)) for r in rows]


def claim(conn: Connection, row_id: int, now: datetime, outcome: str,
          event_id: str | None = None, kind: str | None = None) -> bool:
    """Mark the row processed (dropping its body); False if another processor already did."""
    return conn.execute(update(t.webhook_inbox).where(
        t.webhook_inbox.c.id == row_id, t.webhook_inbox.c.processed_at.is_(None)).values(
        processed_at=now, outcome=outcome[:64], event_id=event_id and event_id[:255],
        kind=kind and kind[:64], body=None, headers=None)).rowcount == 1


def set_outcome(conn: Connection, row_id: int, outcome: str) -> None:
    conn.execute(update(t.webhook_inbox).where(t.webhook_inbox.c.id == row_id)
                 .values(outcome=outcome[:64]))


def retry_later(conn: Connection, row_id: int, attempts: int, at: datetime,
                outcome: str) -> None:
    conn.execute(update(t.webhook_inbox).where(t.webhook_inbox.c.id == row_id).values(
        attempts=attempts, next_attempt_at=at, outcome=outcome[:64]))


def counts(conn: Connection) -> dict[str, int]:
    """Rows by outcome ("pending" for the unprocessed ones)."""
    c = t.webhook_inbox.c
    result: dict[str, int] = {}
    for outcome, processed, n in conn.execute(
            select(c.outcome, c.processed_at.isnot(None), func.count())
            .group_by(c.outcome, c.processed_at.isnot(None))):
        key = outcome if processed else "pending"
        result[key] = result.get(key, 0) + n
    return result


def purge(conn: Connection, processed_before: datetime, received_before: datetime
          ) -> tuple[int, int]:
    """Delete rows processed before `processed_before`; blank the body of unprocessed rows
    received before `received_before` (past retention: whatever they were, they go).
    Returns (deleted, blanked)."""
    c = t.webhook_inbox.c
    deleted = conn.execute(delete(t.webhook_inbox).where(
        c.processed_at.isnot(None), c.processed_at < processed_before)).rowcount
    blanked = conn.execute(update(t.webhook_inbox).where(
        c.processed_at.is_(None), c.received_at < received_before).values(
        body=None, headers=None, processed_at=received_before,
        outcome="purged unprocessed")).rowcount
    return deleted, blanked
