"""Delivering the outbox: every rendered message waits here as exact bytes until a transport
has taken it. Rejection mails, consent confirmations and anything else queued go this way.

Claims are small and honest. A message is claimed (`pending → claimed`) shortly before it
goes to a connection (at most AHEAD per connection: the one in hand and a few next in line,
claimed several at a time), moves to `handing_over`
when the server answered DATA with 354, and to `sent`, `failed` (refused), back to `pending`
(a temporary failure, retried with backoff) or `gave_up` (temporary failures past its limit:
the case fails with the last reply) after the answer; each step is committed before the next
one happens. At most one message per connection is between DATA and its answer, so a crash
leaves at most that many ambiguous (recovery.py), and the claimed ones go back to the queue; a
dropped connection after DATA makes that one message `ambiguous` at once, never a silent
resend.

Sending runs on `transport.connections` threads (SMTP waits on the network, and the GIL is free
meanwhile); the database is only touched from the calling thread: a worker hands its "DATA
now" to the calling thread and waits until that step is committed before the message goes.
The steps that arrive together (DATA-now of one connection with the outcome of its message
before, the outcome of another, the next claims) share one transaction: a commit per step
cost more than the sending.
"""

from __future__ import annotations

import queue
import re
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
AHEAD = 4   # claimed per connection at most: the message in hand and those next in line …
REFILL = 2  # … claimed again once this many per connection can be: one claim for several
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


_FROM = re.compile(rb"^From:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", re.MULTILINE | re.IGNORECASE)
_senders: dict[bytes, str] = {}


def _envelope_from(data: bytes) -> str:
    """The From address, for MAIL FROM. Only the From header is parsed, once per distinct
    header (it is the same in nearly every message)."""
    end = data.find(b"\r\n\r\n")
    found = _FROM.search(data, 0, len(data) if end < 0 else end)
    block = found.group() if found else b""
    sender = _senders.get(block)
    if sender is None:
        headers = BytesHeaderParser(policy=compat32).parsebytes(block + b"\r\n\r\n")
        sender = parseaddr(headers.get("From", ""))[1]
        if len(_senders) < 256:
            _senders[block] = sender
    return sender


@dataclass
class _Steps:
    """The committed steps of messages; called on the delivering thread only, each with the
    transaction it belongs to, so that the steps of several connections share one commit."""

    store: Store
    holder: Holder
    now: datetime
    report: CycleReport
    progress: Callable[[int], None] | None
    give_up: GiveUp
    stopped: Exception | None = None
    waiting: int = 0

    def claim(self, conn, rows: list[OutboxMessage]
              ) -> list[tuple[OutboxMessage, OutgoingMail]]:
        """pending → claimed for these rows (one per free connection), with their bytes;
        those another process took first are left out."""
        claimed = []
        for row in outbox.claim_many(conn, [r.id for r in rows], self.holder.id,
                                     self.holder.lease(), self.now):
            if row.message is None:   # purged while queued
                outbox.mark_refused(conn, row.id, "nothing to send: its content was purged")
                continue
            claimed.append((row, OutgoingMail(row.message_id, _envelope_from(row.message),
                                              row.recipient, row.message)))
        return claimed

    def handing_over(self, conn, rows: list[OutboxMessage]) -> set[int]:
        """claimed → handing_over; returns the ids still ours (the others: _LostClaim)."""
        return outbox.mark_handing_over_many(conn, [r.id for r in rows], self.holder.id,
                                             self.holder.lease(), self.now)

    def finish(self, conn, done: list[tuple[OutboxMessage, BaseException | None]]) -> int:
        """Record the outcomes; returns how many were sent (for `progress`, once committed).
        The accepted ones, the common case, take a few statements together."""
        now = self.now
        sent = [row for row, error in done if error is None]
        if sent:
            outbox.mark_sent(conn, [row.id for row in sent])
            ids = [{"id": row.case_id, "sent_at": now} for row in sent
                   if row.case_id is not None and row.kind in CASE_KINDS]
            moved = cases.transition_many(conn, ids, CaseState.SENT,
                                          from_state=CaseState.SENDING, actor="send", now=now)
            rest = [change for change in ids if change["id"] not in moved]
            moved |= cases.transition_many(conn, rest, CaseState.SENT,
                                           from_state=CaseState.AMBIGUOUS, actor="send",
                                           now=now)
            self.report.sent += len(moved)
        for row, error in done:
            if error is not None:
                self._failed(conn, row, error)
        return len(sent)

    def _failed(self, conn, row: OutboxMessage, error: BaseException) -> None:
        if isinstance(error, _LostClaim | _Stopped):
            return   # not ours any more, or never handed over: whoever holds it decides
        if isinstance(error, control.CycleStopped):   # never handed over: due again at once
            outbox.requeue(conn, [row.id], from_states=("claimed",))
            return
        now = self.now
        is_case = row.case_id is not None and row.kind in CASE_KINDS
        if isinstance(error, AmbiguousMailError):
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

    def committed(self, sent: int) -> None:
        if sent and self.progress:
            self.progress(sent)

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
    """One connection: a message's outcome is committed together with the next claim."""
    done: list[tuple[OutboxMessage, BaseException | None]] = []
    try:
        for i, row in enumerate(rows):
            stop = control.stop_reason()   # a signal or a lost lock: claim nothing more
            with steps.store.begin() as conn:
                sent = steps.finish(conn, done)
                done = []
                claimed = steps.claim(conn, [row]) if steps.stopped is None and not stop else []
            steps.committed(sent)
            if steps.stopped is not None:
                steps.waiting += len(rows) - i
                return
            if stop:
                return   # the rest stay queued; run_cycle reports why it stopped
            for row, mail in claimed:
                try:
                    transport.hand_over(mail, before_data=lambda row=row: _handing_over(
                        steps, row))
                except Exception as exc:
                    done = [(row, exc)]
                else:
                    done = [(row, None)]
    finally:
        if done:
            with steps.store.begin() as conn:
                sent = steps.finish(conn, done)
            steps.committed(sent)


def _handing_over(steps: _Steps, row: OutboxMessage) -> None:
    # A stop or a lost lock is honoured here, before the message is in hand: the claim goes
    # back to the queue (_failed), never between DATA and the reply.
    control.ensure()
    with steps.store.begin() as conn:
        if not steps.handing_over(conn, [row]):
            raise _LostClaim(f"outbox row {row.id}")


class _Ack:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


def _in_parallel(transport: Transport, rows: list[OutboxMessage], steps: _Steps,
                 workers: int) -> None:
    """Up to `workers` connections, each a thread that takes the next claimed message as soon
    as its last one is answered (at most AHEAD per connection are claimed: the ones in hand
    and those next in line, claimed REFILL or more per connection at a time). Workers only
    talk to the server; every commit is made here. Whatever steps arrived together (a "DATA
    now" with the outcome of that connection's message before it, other outcomes, the next
    claims) are committed in one transaction, the outcomes first, and each worker waits for
    the commit that covers its step: a connection's message is recorded before its next one
    is handing over, so a crash still leaves at most one per connection ambiguous."""
    events: queue.Queue[tuple[str, OutboxMessage, object, object]] = queue.Queue()
    ready: queue.Queue[tuple[OutboxMessage, OutgoingMail] | None] = queue.Queue()
    stopping = threading.Event()
    opened: list[Transport] = []
    lock = threading.Lock()
    unrecorded: list[tuple[str, OutboxMessage, object, object]] = []

    def data_now(row: OutboxMessage, carried: list) -> None:
        ack = _Ack()
        events.put(("data", row, ack, carried.copy()))
        carried.clear()   # handed to the delivering thread with this step
        while not ack.done.wait(0.05):
            if stopping.is_set():
                raise _Stopped()
        if ack.error is not None:
            raise ack.error
        # Committed as handing over: this message is in hand and goes, even if we are stopping.

    def work() -> None:
        mine = transport.clone()
        with lock:
            opened.append(mine)
        # The outcome of this connection's last message travels with the next message's "DATA
        # now" (one commit for both, finish first); it goes alone when nothing is next in line.
        carried: list[tuple[OutboxMessage, BaseException | None]] = []

        def report_carried() -> None:   # alone: nothing is next in line to take them along
            for row, outcome in carried:
                events.put(("done", row, outcome, None))
            carried.clear()

        while True:
            try:
                item = ready.get_nowait()
            except queue.Empty:
                report_carried()
                item = ready.get()
            if item is None:
                break
            row, mail = item
            try:
                mine.hand_over(mail, before_data=lambda row=row: data_now(row, carried))
            except BaseException as exc:   # reported to the delivering thread, which decides
                report_carried()
                events.put(("done", row, exc, None))
                if not isinstance(exc, Exception):
                    return   # interrupted: so is this connection
                continue
            carried.append((row, None))
        report_carried()

    todo: Iterator[OutboxMessage] = iter(rows)
    left = len(rows)
    out = 0   # claimed and not yet answered: waiting in `ready` or in a worker's hand
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-send")
    for _ in range(workers):
        pool.submit(work)
    # One connection for the whole delivery, a transaction per round: checking a connection
    # out of the pool and back (with its reset) for each round cost as much as the commit.
    held = steps.store.connect()
    conn = held.__enter__()
    try:
        def next_rows(free: int) -> list[OutboxMessage]:
            nonlocal left
            take = max(min(free, left), 0) if steps.stopped is None else 0
            if take < min(REFILL * workers, left) and out >= workers:
                take = 0   # every connection has one in line: claim several together later
            left -= take
            return [next(todo) for _ in range(take)]

        while out or (left and steps.stopped is None and not control.stop_reason()):
            arrived: list[tuple[str, OutboxMessage, object, object]] = []
            if out:
                arrived.append(events.get())
                with suppress(queue.Empty):
                    while True:
                        arrived.append(events.get_nowait())
            # The outcomes: on their own, or carried by a connection's next "DATA now".
            done = [(row, p) for kind, row, p, _ in arrived if kind == "done"]
            done += [pair for kind, _, _, carried in arrived if kind == "data"
                     for pair in carried]   # type: ignore[union-attr]
            unrecorded = [("done", row, p, None) for row, p in done]
            interrupted = next((p for _, p in done
                                if p is not None and not isinstance(p, Exception)), None)
            if interrupted is not None:
                raise interrupted   # type: ignore[misc]  # a worker was interrupted: so are we
            acks = [(row, p) for kind, row, p, _ in arrived if kind == "data"]
            out -= len(done)
            # A signal or a lost lock: no DATA starts and nothing more is claimed; the messages
            # in hand finish, the claimed ones go back to the queue (_failed, and below).
            stop = control.stop_reason()
            try:
                with conn.begin():
                    sent = steps.finish(conn, done)   # type: ignore[arg-type]
                    ours = steps.handing_over(conn, [] if stop else [row for row, _ in acks])
                    claimed = [] if stop else steps.claim(conn,
                                                          next_rows(AHEAD * workers - out))
                    if steps.stopped is not None or stop:   # not started: waits for a run
                        back = _take_all(ready)
                        outbox.requeue(conn, [row.id for row, _ in back], ("claimed",))
                        out -= len(back)
                        steps.waiting += len(back) if steps.stopped is not None else 0
            except BaseException:
                for _, ack in acks:
                    ack.error = _Stopped()   # type: ignore[attr-defined]
                    ack.done.set()           # type: ignore[attr-defined]
                raise
            unrecorded = []
            steps.committed(sent)
            for row, ack in acks:
                if stop:
                    ack.error = control.CycleStopped(stop)   # type: ignore[attr-defined]
                elif row.id not in ours:
                    ack.error = _LostClaim(f"outbox row {row.id}")   # type: ignore[attr-defined]
                ack.done.set()   # type: ignore[attr-defined]
            for item in claimed:
                ready.put(item)
                out += 1
        steps.waiting += left if steps.stopped is not None else 0
    finally:
        stopping.set()
        back = _take_all(ready)
        for _ in range(workers):
            ready.put(None)
        pool.shutdown(wait=True)
        held.__exit__(None, None, None)
        for each in opened:
            each.close()
        if back:   # claimed, never started: back in the queue now (else recovery does it)
            with suppress(Exception), steps.store.begin() as again:
                outbox.requeue(again, [row.id for row, _ in back], ("claimed",))
        for event in unrecorded:
            events.put(event)
        _record_what_finished(events, steps)


def _take_all(ready: queue.Queue) -> list[tuple[OutboxMessage, OutgoingMail]]:
    taken = []
    with suppress(queue.Empty):
        while True:
            item = ready.get_nowait()
            if item is not None:
                taken.append(item)
    return taken


def _record_what_finished(events: queue.Queue, steps: _Steps) -> None:
    """Interrupted (Ctrl-C, a failing commit): the messages other connections finished
    meanwhile are still recorded, so they do not come back as ambiguous. Best effort: what
    cannot be recorded now is settled by the next run's recovery."""
    while True:
        try:
            kind, row, payload, carried = events.get_nowait()
        except queue.Empty:
            return
        finished = [(row, payload)] if kind == "done" else list(carried or [])
        for done_row, outcome in finished:
            if outcome is None or isinstance(outcome, Exception):
                with suppress(Exception), steps.store.begin() as conn:
                    steps.committed(steps.finish(conn, [(done_row, outcome)]))
