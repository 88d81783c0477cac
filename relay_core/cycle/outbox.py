"""Delivering the outbox: every rendered message waits here as exact bytes until a transport
has taken it. Rejection mails, consent confirmations and anything else queued go this way.

Claims are small and honest. A message is claimed (`pending → claimed`) just before it goes
to a connection, moves to `handing_over` when the server answered DATA with 354, and to `sent`,
`failed` (refused), back to `pending` (a temporary failure, retried with backoff) or
`gave_up` (temporary failures past its limit: the case fails with the last reply) after the
answer; each step is committed on its own. At most one message per connection is between
DATA and its answer, so a crash leaves at most that many ambiguous (recovery.py); a dropped
connection after DATA makes that one message `ambiguous` at once, never a silent resend.

Sending runs on `transport.connections` threads (SMTP waits on the network, and the GIL is free
meanwhile); the database is only touched from the calling thread: a worker hands its "DATA
now" to the calling thread and waits until that step is committed before the message goes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

from relay_core.config import Config
from relay_core.cycle import control
from relay_core.cycle.quota import within_daily_limit
from relay_core.cycle.recovery import (
    CASE_KINDS,
    Holder,
    ambiguous_reason,
    recover_interrupted,
)
from relay_core.cycle.report import CycleReport
from relay_core.cycle.scheduling import BusinessCalendar
from relay_core.errors import AmbiguousMailError, PermanentMailError, RetriableError
from relay_core.mail.message import OutgoingMail
from relay_core.mail.transports import Transport
from relay_core.models import CaseState
from relay_core.store import Store, cases, outbox, person_key
from relay_core.store.outbox import OutboxMessage

__all__ = ["CASE_KINDS", "deliver_outbox", "recover_interrupted"]

RETRY_AFTER = timedelta(minutes=15)     # after a temporary failure, doubling each time …
RETRY_MAX = timedelta(hours=2)          # … up to this
GiveUp = Callable[[datetime | None, datetime], datetime]


class _LostClaim(Exception):
    """Our claim was taken over (its lease ran out): this sender must not hand it over."""


class _Stopped(Exception):
    """The delivery is stopping: a worker's message does not go."""


def backoff(failures: int) -> timedelta:
    return min(RETRY_AFTER * 2 ** max(failures - 1, 0), RETRY_MAX)


def give_up_policy(config: Config | None) -> GiveUp:
    """When temporary failures stop being retried: `mail.give_up_business_days` business days
    after the case's deadline, or after the first failure when that is later (or there is no
    deadline: a confirmation), at the end of the business window."""
    if config is None:
        return lambda deadline, first: max(deadline or first, first) + timedelta(days=1)
    calendar = BusinessCalendar(config.schedule, config.company.tz)
    days = config.mail.give_up_business_days

    def give_up(deadline: datetime | None, first: datetime) -> datetime:
        base = max(deadline or first, first)
        day = calendar.add_business_days(base.astimezone(calendar.tz).date(), days)
        end = datetime.combine(day, calendar.window[1], calendar.tz).astimezone(UTC)
        return max(end, base)
    return give_up


def _envelope_from(data: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(data)
    return parseaddr(headers.get("From", ""))[1]


@dataclass
class _Steps:
    """The committed steps of each message; called on the delivering thread only."""

    store: Store
    holder: Holder
    now: datetime
    report: CycleReport
    progress: Callable[[int], None] | None
    give_up: GiveUp
    stopped: Exception | None = None
    waiting: int = 0

    def claim(self, row: OutboxMessage) -> OutgoingMail | None:
        with self.store.begin() as conn:
            claimed = outbox.claim(conn, row.id, self.holder.id, self.holder.lease(), self.now)
            if claimed is not None and claimed.message is None:   # purged while queued
                outbox.mark_refused(conn, row.id, "nothing to send: its content was purged")
                return None
        if claimed is None or claimed.message is None:
            return None
        return OutgoingMail(claimed.message_id, _envelope_from(claimed.message),
                            claimed.recipient, claimed.message)

    def handing_over(self, row: OutboxMessage) -> None:
        # A stop or a lost lock is honoured here, before the message is in hand: the claim
        # goes back to the queue (finish), never between DATA and the reply.
        control.ensure()
        with self.store.begin() as conn:
            if not outbox.mark_handing_over(conn, row.id, self.holder.id, self.holder.lease(),
                                            self.now):
                raise _LostClaim(f"outbox row {row.id}")

    def finish(self, row: OutboxMessage, error: BaseException | None) -> None:
        if isinstance(error, _LostClaim | _Stopped):
            return   # not ours any more, or never handed over: whoever holds it decides
        if isinstance(error, control.CycleStopped):
            with self.store.begin() as conn:   # never handed over: due again at once
                outbox.requeue(conn, [row.id], from_states=("claimed",))
            return
        now = self.now
        is_case = row.case_id is not None and row.kind in CASE_KINDS
        with self.store.begin() as conn:
            if error is None:
                outbox.mark_sent(conn, [row.id])
                if is_case:
                    moved = cases.transition_many(
                        conn, [{"id": row.case_id, "sent_at": now}], CaseState.SENT,
                        from_state=CaseState.SENDING, actor="send", now=now) or \
                        cases.transition_many(
                            conn, [{"id": row.case_id, "sent_at": now}], CaseState.SENT,
                            from_state=CaseState.AMBIGUOUS, actor="send", now=now)
                    self.report.sent += len(moved)
            elif isinstance(error, AmbiguousMailError):
                reason = ambiguous_reason(row.message_id, "the connection dropped")
                outbox.mark_ambiguous(conn, [row.id], reason)
                if is_case:
                    cases.transition(conn, row.case_id, CaseState.AMBIGUOUS, actor="send",
                                     reason=reason, allowed_from=[CaseState.SENDING], now=now,
                                     sent_at=now)
                self.report.ambiguous += 1
            elif isinstance(error, RetriableError):
                self._temporary(conn, row, error, is_case)
            elif isinstance(error, PermanentMailError):
                outbox.mark_refused(conn, row.id, str(error))
                if error.suppress_address and row.recipient:
                    cases.suppress(conn, person_key(row.recipient), f"SMTP {error.code}")
                if is_case:
                    cases.transition(conn, row.case_id, CaseState.FAILED, actor="send",
                                     reason=f"the mail server refused it: {error}", now=now,
                                     allowed_from=[CaseState.SENDING])
                self.report.failed += 1
            else:
                # Bad credentials, say: not handed over; it and the rest wait for a later run.
                outbox.mark_retry(conn, row.id, now + RETRY_AFTER, str(error))
                self.stopped = self.stopped or error   # type: ignore[assignment]
                self.waiting += 1
        if error is None and self.progress:
            self.progress(1)

    def _temporary(self, conn, row: OutboxMessage, error: RetriableError,
                   is_case: bool) -> None:
        now = self.now
        reply = error.reply or str(error)[:300]
        failures = row.temp_failures + 1
        give_up_at = row.give_up_at
        if give_up_at is None:
            case = cases.get(conn, row.case_id) if is_case and row.case_id else None
            give_up_at = self.give_up(case.deadline_at if case else None, now)
        if now < give_up_at:
            outbox.mark_retry(conn, row.id, now + backoff(failures), str(error), reply=reply,
                              give_up_at=give_up_at)
            self.report.retry_later += 1
            return
        reason = (f"gave up after {failures} temporary failure(s), retried until "
                  f"{give_up_at:%Y-%m-%d %H:%M} UTC; the server's last reply: {reply}. "
                  "Once the mail server accepts mail again, `career-relay resend --case` "
                  "sends it")
        outbox.mark_gave_up(conn, row.id, reason, reply)
        if is_case:
            cases.transition(conn, row.case_id, CaseState.FAILED, actor="send", reason=reason,
                             allowed_from=[CaseState.SENDING], now=now)
        self.report.failed += 1


def deliver_outbox(store: Store, transport: Transport, *, now: datetime,
                   report: CycleReport, progress: Callable[[int], None] | None = None,
                   config: Config | None = None) -> None:
    """Send every message due by `now` (within the daily quota), one claim at a time per
    connection. `config` gives the give-up limit of temporary failures."""
    with store.connect() as conn:
        rows = outbox.due(conn, now)
    rows = within_daily_limit(store, transport, rows, now, report)
    if not rows:
        return
    with Holder() as holder:
        steps = _Steps(store, holder, now, report, progress, give_up_policy(config))
        workers = min(transport.connections, len(rows))
        if workers <= 1:
            try:
                _one_by_one(transport, rows, steps)
            finally:
                transport.close()
        else:
            _in_parallel(transport, rows, steps, workers)
    if steps.stopped is not None:
        report.errors.append(f"mail delivery stopped: {steps.stopped}; {steps.waiting} "
                             "message(s) wait for the next run")


def _one_by_one(transport: Transport, rows: list[OutboxMessage], steps: _Steps) -> None:
    for i, row in enumerate(rows):
        if steps.stopped is not None:
            steps.waiting += len(rows) - i
            return
        if control.stop_reason():
            return   # the rest stay queued; run_cycle reports why it stopped
        mail = steps.claim(row)
        if mail is None:
            continue
        try:
            transport.hand_over(mail, before_data=lambda row=row: steps.handing_over(row))
        except Exception as exc:
            steps.finish(row, exc)
        else:
            steps.finish(row, None)


class _Ack:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


def _in_parallel(transport: Transport, rows: list[OutboxMessage], steps: _Steps,
                 workers: int) -> None:
    """Up to `workers` connections, each with one claimed message at a time. Workers only
    talk to the server; every commit is made here, in the order the events arrive."""
    events: queue.Queue[tuple[str, OutboxMessage, object]] = queue.Queue()
    stopping = threading.Event()
    local = threading.local()
    opened: list[Transport] = []
    lock = threading.Lock()

    def data_now(row: OutboxMessage) -> None:
        ack = _Ack()
        events.put(("data", row, ack))
        while not ack.done.wait(0.05):
            if stopping.is_set():
                raise _Stopped()
        if ack.error is not None:
            raise ack.error
        # Committed as handing over: this message is in hand and goes, even if we are stopping.

    def work(row: OutboxMessage, mail: OutgoingMail) -> None:
        try:
            if not hasattr(local, "transport"):
                local.transport = transport.clone()
                with lock:
                    opened.append(local.transport)
            local.transport.hand_over(mail, before_data=lambda: data_now(row))
        except BaseException as exc:   # reported to the delivering thread, which decides
            events.put(("done", row, exc))
            return
        events.put(("done", row, None))

    todo: Iterator[OutboxMessage] = iter(rows)
    left = len(rows)
    busy = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-send")
    try:
        def feed() -> None:
            nonlocal busy, left
            while (busy < workers and steps.stopped is None and left
                   and not control.stop_reason()):
                row = next(todo)
                left -= 1
                mail = steps.claim(row)
                if mail is not None:
                    pool.submit(work, row, mail)
                    busy += 1

        feed()
        while busy:
            kind, row, payload = events.get()
            if kind == "data":
                assert isinstance(payload, _Ack)
                try:
                    steps.handing_over(row)
                except (_LostClaim, control.CycleStopped) as exc:
                    payload.error = exc   # the worker drops the connection before DATA
                except BaseException as exc:
                    payload.error = _Stopped()
                    raise exc
                finally:
                    payload.done.set()
                continue
            busy -= 1
            if payload is not None and not isinstance(payload, Exception):
                raise payload   # type: ignore[misc]  # a worker was interrupted: so are we
            steps.finish(row, payload)   # type: ignore[arg-type]
            feed()
        steps.waiting += left if steps.stopped is not None else 0
    finally:
        stopping.set()
        pool.shutdown(wait=True)
        for each in opened:
            each.close()
        _record_what_finished(events, steps)


def _record_what_finished(events: queue.Queue, steps: _Steps) -> None:
    """Interrupted (Ctrl-C, a failing commit): the messages other connections finished
    meanwhile are still recorded, so they do not come back as ambiguous. Best effort: what
    cannot be recorded now is settled by the next run's recovery."""
    while True:
        try:
            kind, row, payload = events.get_nowait()
        except queue.Empty:
            return
        if kind == "done" and (payload is None or isinstance(payload, Exception)):
            with suppress(Exception):
                steps.finish(row, payload)   # type: ignore[arg-type]
