"""Claims and their recovery: who is sending a message, what a crash leaves behind, and the
two ways a message whose fate is unknown goes out again.

A claim names its holder (`host:pid:token`, a `Holder` per delivery) and carries a short lease
renewed at each step; one message never takes that long. A row is recovered only when its
holder is gone: its lease ran out, or (on this host, at once) its process no longer exists or,
in this very process, the delivery that claimed it has ended. A live sender's rows are never
touched, whatever the run lock says. What recovery does with a row:

    claimed        never reached DATA: back in the queue, sent by the next run
    handing_over   between DATA and the server's answer: ambiguous (SMTP), or back in the
                   queue when the transport is idempotent (the file outbox)

An ambiguous message counts as mailed (the person cooldown, store/cases.py) and is never
resent silently: `mail.on_ambiguous = "resend"` re-queues every one at the start of the next
run, `career-relay resend --case ID` (or the console's Resend button on the case's page) one
case after checking the mail server's log; all are in the audit trail.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from relay_core.cycle.report import CycleReport
from relay_core.mail.transports import Transport
from relay_core.models import CaseState
from relay_core.store import Connection, Store, cases, outbox, utcnow
from relay_core.store.outbox import OutboxMessage

LEASE = timedelta(minutes=15)
CASE_KINDS = ("rejection", "invite_only")   # outbox kinds whose delivery completes a case
HOST = socket.gethostname()
_LIVE: set[str] = set()          # this process's deliveries in progress
_LIVE_LOCK = threading.Lock()


class Holder:
    """One delivery's identity in `outbox.claimed_by`, alive while the `with` block runs."""

    def __init__(self) -> None:
        self.id = f"{HOST}:{os.getpid()}:{secrets.token_hex(6)}"

    def lease(self) -> datetime:
        return utcnow() + LEASE

    def __enter__(self) -> Holder:
        with _LIVE_LOCK:
            _LIVE.add(self.id)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self.id)


def holder_alive(claimed_by: str | None, claimed_until: datetime | None,
                 wall: datetime | None = None) -> bool:
    """Whether the claimer of a row may still be sending it (wall-clock time, never a
    replayed `now`). Same host: its process must exist (a reused pid still waits for the
    lease). Another host: only the lease can tell."""
    if not claimed_by or claimed_until is None or claimed_until <= (wall or utcnow()):
        return False
    try:
        host, pid_text, _ = claimed_by.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != HOST:
        return True
    if pid == os.getpid():
        with _LIVE_LOCK:
            return claimed_by in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process: it exists
        return True
    return True


def ambiguous_reason(message_id: str, how: str) -> str:
    return (f"{how} while {message_id} was handed to the mail server (after DATA, before its "
            "answer): it may have been delivered. Look it up in the server's log; if it did "
            "not arrive, `career-relay resend --case` sends it again")


@dataclass
class Recovered:
    requeued: int = 0
    ambiguous: int = 0
    resent: int = 0      # ambiguous messages re-queued by mail.on_ambiguous = "resend"


def recover_interrupted(store: Store, transport: Transport, now: datetime, *,
                        on_ambiguous: str = "hold", report: CycleReport | None = None
                        ) -> Recovered:
    """Settle the rows of senders that are gone; then, with `on_ambiguous = "resend"`,
    re-queue every ambiguous message. Counted in `report.ambiguous` when given."""
    done = Recovered()
    wall = utcnow()
    with store.begin() as conn:
        for row in outbox.in_flight(conn):
            if holder_alive(row.claimed_by, row.claimed_until, wall):
                continue
            if row.state == "claimed" or transport.idempotent:
                done.requeued += outbox.settle_orphan(conn, row, "pending")
                continue
            reason = ambiguous_reason(row.message_id, "the sending process stopped")
            if not outbox.settle_orphan(conn, row, "ambiguous", reason):
                continue
            done.ambiguous += 1
            if row.case_id is not None and row.kind in CASE_KINDS:
                cases.transition(conn, row.case_id, CaseState.AMBIGUOUS, actor="recover",
                                 reason=reason, allowed_from=[CaseState.SENDING], now=now,
                                 sent_at=row.handing_over_at or now)
    if on_ambiguous == "resend":
        done.resent = resend_ambiguous(store, now)
    if report is not None:
        report.ambiguous += done.ambiguous
    return done


def resend_ambiguous(store: Store, now: datetime) -> int:
    """`mail.on_ambiguous = "resend"`: every ambiguous message back in the queue."""
    why = "re-queued because mail.on_ambiguous = \"resend\" (it may arrive twice)"
    with store.begin() as conn:
        rows = outbox.in_state(conn, "ambiguous")
        moved = set(outbox.requeue(conn, [r.id for r in rows], ("ambiguous",), afresh=True))
        for row in rows:
            if row.id in moved and row.case_id is not None and row.kind in CASE_KINDS:
                cases.transition(conn, row.case_id, CaseState.SENDING, actor="recover:resend",
                                 reason=why, allowed_from=[CaseState.AMBIGUOUS], now=now)
    return len(moved)


@dataclass
class Resent:
    resent: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)    # case id → why not
    codes: dict[int, tuple[str, str]] = field(default_factory=dict)   # → (code, detail)


class ResendCheck(NamedTuple):
    why: str                      # "" when the email can be re-queued
    state: CaseState | None       # the case's
    row: OutboxMessage | None     # its newest case email
    code: str = ""                # `why` as a key, for the console's words in each language
    detail: str = ""              # the state `why` names, if any


def resend_check(conn: Connection, case_id: int) -> ResendCheck:
    """Whether the case's email can be re-queued, and why not: the one check behind
    `career-relay resend` and the console's Resend button."""
    case = cases.get(conn, case_id)
    if case is None:
        return ResendCheck("no such case", None, None, "no_case")
    if case.state not in (CaseState.AMBIGUOUS, CaseState.FAILED):
        return ResendCheck(f"it is {case.state.value}, not ambiguous or failed", case.state,
                           None, "case_state", case.state.value)
    row = next(iter(outbox.of_case(conn, case_id, CASE_KINDS)), None)
    if row is None:
        return ResendCheck("no email was ever queued for it (see its reason in "
                           "`career-relay status`)", case.state, None, "never_queued")
    if row.state not in outbox.RESENDABLE:
        return ResendCheck(f"its email is {row.state}", case.state, row, "email_state",
                           row.state)
    if row.message is None:
        return ResendCheck("the server refused it permanently and its content is gone; "
                           "nothing to resend", case.state, row, "content_gone")
    return ResendCheck("", case.state, row)


def resend_cases(store: Store, case_ids: list[int], *, actor: str, now: datetime,
                 note: str = "") -> Resent:
    """`career-relay resend --case` and the console: put each case's ambiguous, given-up or
    failed message back in the queue, exactly as it was built (same bytes, same Message-ID)."""
    result = Resent()
    with store.begin() as conn:
        for case_id in dict.fromkeys(case_ids):
            why, was, row, code, detail = resend_check(conn, case_id)
            if why:
                result.refused[case_id] = why
                result.codes[case_id] = (code, detail)
                continue
            assert row is not None and was is not None
            if not outbox.requeue(conn, [row.id], (row.state,), afresh=True):
                result.refused[case_id] = "another process moved it; look again"
                result.codes[case_id] = ("moved", "")
                continue
            reason = (f"re-queued {row.message_id} (was {row.state})"
                      + (f": {note}" if note else ""))
            cases.transition(conn, case_id, CaseState.SENDING, actor=actor, reason=reason,
                             allowed_from=[was], now=now)
            result.resent.append(case_id)
    return result
