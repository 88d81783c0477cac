"""The outbox aggregate: rendered messages waiting as exact bytes until a transport took them.

    pending → claimed → handing_over → sent | failed | gave_up | ambiguous
       ↑         │            │
       └─────────┴────────────┘  not taken (a 4xx, a dropped connection before the final ".",
                                 or a crash before DATA): back in the queue

Each step is its own committed UPDATE, conditional on the step before and on the claimer
(`claimed_by`, host:pid:token, with a short lease `claimed_until`), so two senders never hand
over the same message and a recovery never takes a live sender's row. `claimed` is taken one
message at a time, right before it goes to the server; `handing_over` is committed when the
server said 354 to DATA. A row left `handing_over` by a dead process may have been delivered:
it becomes `ambiguous` (kept, with its bytes, until `career-relay resend` or
`mail.on_ambiguous`). The bytes are dropped once the message is sent or refused (personal
data no longer needed); `gave_up` (temporary failures past `give_up_at`) keeps them for a
resend. The delivery decisions live in cycle/outbox.py; only the SQL is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Update, bindparam, func, select, update

from relay_core.store import tables as t
from relay_core.store.tables import utcnow

CHUNK = 500
o = t.outbox.c
IN_FLIGHT = ("claimed", "handing_over")
RESENDABLE = ("ambiguous", "gave_up", "failed")


@dataclass(frozen=True, slots=True, repr=False)
class OutboxMessage:
    """One queued message. `message` (the bytes) is None when it was not asked for."""

    id: int
    case_id: int | None
    kind: str
    message_id: str
    recipient: str | None
    message: bytes | None = None
    state: str = ""
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    handing_over_at: datetime | None = None
    temp_failures: int = 0
    give_up_at: datetime | None = None
    last_reply: str = ""

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


_COLUMNS = (o.id, o.case_id, o.kind, o.message_id, o.recipient, o.state, o.claimed_by,
            o.claimed_until, o.handing_over_at, o.temp_failures, o.give_up_at, o.last_reply)


def _message(row: Row, message: bytes | None = None) -> OutboxMessage:
    return OutboxMessage(row.id, row.case_id, row.kind, row.message_id, row.recipient, message,
                         row.state, row.claimed_by, row.claimed_until, row.handing_over_at,
                         row.temp_failures, row.give_up_at, row.last_reply)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


_UNCLAIMED: dict[str, Any] = dict(claimed_by=None, claimed_until=None)


def enqueue(conn: Connection, kind: str, mails: Iterable[QueuedMail], now: datetime) -> None:
    """Queue built messages of one kind in one statement, due at once."""
    rows = [dict(case_id=mail.case_id, kind=kind, message_id=mail.message_id,
                 recipient=mail.recipient, message=mail.message, state="pending", attempts=0,
                 next_attempt_at=now, last_error="", created_at=now, temp_failures=0,
                 last_reply="")
            for mail in mails]
    if rows:
        conn.execute(t.outbox.insert(), rows)


def due(conn: Connection, now: datetime) -> list[OutboxMessage]:
    """The queued messages due by `now`, in order, without their bytes (nothing claimed)."""
    rows = conn.execute(select(*_COLUMNS).where(o.state == "pending", o.next_attempt_at <= now)
                        .order_by(o.id)).all()
    return [_message(r) for r in rows]


def claim(conn: Connection, message_id: int, holder: str, until: datetime, now: datetime
          ) -> OutboxMessage | None:
    """pending → claimed for one message, with its bytes; None if another process took it
    first (or it is no longer due)."""
    won = conn.execute(update(t.outbox).where(
        o.id == message_id, o.state == "pending", o.next_attempt_at <= now)
        .values(state="claimed", claimed_by=holder, claimed_until=until,
                attempts=o.attempts + 1)).rowcount == 1
    if not won:
        return None
    row = conn.execute(select(*_COLUMNS, o.message).where(o.id == message_id)).one()
    return _message(row, row.message)


# The delivery's per-message statements, built once per number of ids (tables.id_in):
# building and cache-keying a statement cost as much as running it, many times a second.
@lru_cache(maxsize=64)
def _claim_many(n: int) -> Update:
    return (update(t.outbox).where(
        t.id_in(o.id, n), o.state == "pending",
        o.next_attempt_at <= bindparam("now", type_=o.next_attempt_at.type))
        .values(state="claimed", claimed_by=bindparam("holder", type_=o.claimed_by.type),
                claimed_until=bindparam("until", type_=o.claimed_until.type),
                attempts=o.attempts + 1).returning(*_COLUMNS, o.message))


@lru_cache(maxsize=64)
def _handing_over_many(n: int) -> Update:
    return (update(t.outbox).where(
        t.id_in(o.id, n), o.state.in_(IN_FLIGHT),
        o.claimed_by == bindparam("holder", type_=o.claimed_by.type))
        .values(state="handing_over",
                handing_over_at=bindparam("at", type_=o.handing_over_at.type),
                claimed_until=bindparam("until", type_=o.claimed_until.type)).returning(o.id))


@lru_cache(maxsize=64)
def _sent(n: int) -> Update:
    return (update(t.outbox).where(t.id_in(o.id, n))
            .values(state="sent", sent_at=bindparam("at", type_=o.sent_at.type), message=None,
                    last_error="", **_UNCLAIMED))


def claim_many(conn: Connection, ids: list[int], holder: str, until: datetime, now: datetime
               ) -> list[OutboxMessage]:
    """`claim` for several messages in one statement (one per connection that is free):
    those still pending and due, with their bytes, in id order."""
    if not ids:
        return []
    rows = conn.execute(_claim_many(t.id_arity(ids)), dict(t.id_params(ids), now=now, holder=holder,
                                                    until=until)).all()
    return sorted((_message(r, r.message) for r in rows), key=lambda m: m.id)


def mark_handing_over_many(conn: Connection, ids: list[int], holder: str, until: datetime,
                           at: datetime) -> set[int]:
    """`mark_handing_over` for several messages in one statement: the ids still ours."""
    if not ids:
        return set()
    return set(conn.scalars(_handing_over_many(t.id_arity(ids)), dict(
        t.id_params(ids), holder=holder, until=until, at=at)))


def mark_handing_over(conn: Connection, message_id: int, holder: str, until: datetime,
                      at: datetime) -> bool:
    """claimed → handing_over (the server said 354); False if the claim is no longer ours."""
    return conn.execute(update(t.outbox).where(
        o.id == message_id, o.state.in_(IN_FLIGHT), o.claimed_by == holder)
        .values(state="handing_over", handing_over_at=at, claimed_until=until)).rowcount == 1


def mark_sent(conn: Connection, ids: list[int]) -> None:
    """Accepted by the server (also one a recovery thought ambiguous): the bytes go."""
    at = utcnow()
    for chunk in _chunks(ids):
        conn.execute(_sent(t.id_arity(chunk)), dict(t.id_params(chunk), at=at))


def mark_retry(conn: Connection, message_id: int, next_attempt_at: datetime, error: str, *,
               reply: str | None = None, give_up_at: datetime | None = None) -> None:
    """Not handed over: back in the queue until `next_attempt_at`. With a `reply`, it was a
    temporary failure of the server: counted, with the reply and when retrying stops."""
    values: dict[str, Any] = dict(state="pending", next_attempt_at=next_attempt_at,
                                  last_error=error[:500], handing_over_at=None, **_UNCLAIMED)
    if reply is not None:
        values.update(temp_failures=o.temp_failures + 1, last_reply=reply[:500],
                      give_up_at=give_up_at)
    conn.execute(update(t.outbox).where(o.id == message_id).values(**values))


def mark_refused(conn: Connection, message_id: int, error: str) -> None:
    """The server refused it for good: failed, and the bytes go."""
    conn.execute(update(t.outbox).where(o.id == message_id).values(
        state="failed", last_error=error[:500], message=None, **_UNCLAIMED))


def mark_gave_up(conn: Connection, message_id: int, error: str, reply: str) -> None:
    """Temporary failures past `give_up_at`: no more retries. The bytes stay for a resend."""
    conn.execute(update(t.outbox).where(o.id == message_id).values(
        state="gave_up", last_error=error[:500], last_reply=reply[:500],
        temp_failures=o.temp_failures + 1, handing_over_at=None, **_UNCLAIMED))


def mark_ambiguous(conn: Connection, ids: list[int], error: str) -> None:
    """Handed over, answer unknown; the bytes stay for the check and a possible resend."""
    for chunk in _chunks(ids):
        conn.execute(update(t.outbox).where(o.id.in_(chunk)).values(
            state="ambiguous", last_error=error[:500], **_UNCLAIMED))


def in_flight(conn: Connection) -> list[OutboxMessage]:
    """Messages claimed or being handed over, by this process or another (without bytes).
    `sending` is what a 0006 process left (the migration renames it; kept for a mixed
    fleet during an upgrade)."""
    rows = conn.execute(select(*_COLUMNS).where(o.state.in_((*IN_FLIGHT, "sending")))
                        .order_by(o.id)).all()
    return [_message(r) for r in rows]


def requeue(conn: Connection, ids: list[int], from_states: Iterable[str] = IN_FLIGHT,
            afresh: bool = False) -> list[int]:
    """Back in the queue: not handed over, or (`afresh`) to be sent again, due at once (as
    of when it was queued, so a run replaying an earlier `--now` sends it too) with its
    temporary failures forgotten. Only rows still in `from_states` move; returns their ids."""
    values: dict[str, Any] = dict(state="pending", handing_over_at=None, **_UNCLAIMED)
    if afresh:
        values.update(next_attempt_at=o.created_at, temp_failures=0, give_up_at=None,
                      last_error="")
    moved: list[int] = []
    for chunk in _chunks(ids):
        moved += conn.scalars(update(t.outbox).where(
            o.id.in_(chunk), o.state.in_([*from_states, "sending"]))
            .values(**values).returning(o.id))
    return sorted(moved)


def of_case(conn: Connection, case_id: int, kinds: Iterable[str]) -> list[OutboxMessage]:
    """The case's messages of these kinds, newest first, each with whether it has its bytes."""
    rows = conn.execute(select(*_COLUMNS, o.message.is_not(None).label("has_bytes"))
                        .where(o.case_id == case_id, o.kind.in_(list(kinds)))
                        .order_by(o.id.desc())).all()
    return [_message(r, b"" if r.has_bytes else None) for r in rows]


def in_state(conn: Connection, state: str) -> list[OutboxMessage]:
    rows = conn.execute(select(*_COLUMNS).where(o.state == state).order_by(o.id)).all()
    return [_message(r) for r in rows]


def counts_by_state(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(select(o.state, func.count()).group_by(o.state)).all())


def settle_orphan(conn: Connection, row: OutboxMessage, to: str, error: str = "") -> bool:
    """Move a row whose claimer is gone (`pending` or `ambiguous`), only if nobody moved it
    since it was read (same state, same claimer)."""
    same_holder = (o.claimed_by.is_(None) if row.claimed_by is None
                   else o.claimed_by == row.claimed_by)
    values: dict[str, Any] = dict(state=to, **_UNCLAIMED)
    if to == "pending":
        values["handing_over_at"] = None
    if error:
        values["last_error"] = error[:500]
    return conn.execute(update(t.outbox).where(o.id == row.id, o.state == row.state,
                                               same_holder).values(**values)).rowcount == 1


class StuckCase(NamedTuple):
    case_id: int
    source: str
    message_id: str
    state: str                 # the outbox row's: gave_up or ambiguous
    temp_failures: int
    last_reply: str
    at: datetime | None        # when DATA began (ambiguous) or retrying stopped (gave_up)


def stuck_cases(conn: Connection, state: str, limit: int | None = 50) -> list[StuckCase]:
    """Cases whose email waits for a person: `gave_up` (the case failed after temporary
    failures) or `ambiguous` (handed over, answer unknown). Newest first; identifiers only;
    `limit=None`: all of them."""
    c = t.relay_cases.c
    case_state = "failed" if state == "gave_up" else "ambiguous"
    at = o.give_up_at if state == "gave_up" else o.handing_over_at
    rows = conn.execute(
        select(c.id, c.source, o.message_id, o.state, o.temp_failures, o.last_reply, at)
        .join(t.relay_cases, c.id == o.case_id)
        .where(o.state == state, c.state == case_state).order_by(o.id.desc()).limit(limit))
    return [StuckCase(*r) for r in rows]


def count_stuck(conn: Connection, state: str) -> int:
    c = t.relay_cases.c
    case_state = "failed" if state == "gave_up" else "ambiguous"
    return conn.execute(select(func.count()).select_from(t.outbox).join(
        t.relay_cases, c.id == o.case_id).where(o.state == state, c.state == case_state)
    ).scalar_one()
