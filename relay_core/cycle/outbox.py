"""Delivering the outbox: every rendered message waits here as exact bytes until a transport
has taken it. Rejection mails, consent confirmations and anything else queued go this way.

A row is claimed (`pending → sending`) before it is handed over and marked `sent` after, in
small groups. If the process dies in between, `recover_interrupted` finds the row: a file
transport simply writes it again (idempotent); for SMTP we cannot know whether the server took
it, and a duplicate is worse than a question, so the case fails with a reason saying how to
check. Sending runs on `transport.connections` threads (SMTP waits on the network, and the
GIL is free meanwhile); the database is only touched from the calling thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

from relay_core.cycle import control
from relay_core.cycle.quota import within_daily_limit
from relay_core.cycle.report import CycleReport
from relay_core.errors import PermanentMailError, RetriableError
from relay_core.mail.message import OutgoingMail
from relay_core.mail.transports import Transport
from relay_core.models import CaseState
from relay_core.store import Store, cases, outbox, person_key
from relay_core.store.outbox import OutboxMessage

RETRY_AFTER = timedelta(minutes=15)
MARK_EVERY = 25          # at most this many sent-but-unrecorded messages if the process dies
CASE_KINDS = ("rejection", "invite_only")   # outbox kinds whose delivery completes a case


@dataclass
class Outcome:
    row: OutboxMessage
    error: Exception | None = None


def recover_interrupted(store: Store, transport: Transport, now: datetime) -> int:
    with store.begin() as conn:
        rows = outbox.interrupted(conn)
        if transport.idempotent:
            outbox.requeue(conn, [row.id for row in rows])
            return len(rows)
        outbox.mark_interrupted(conn, [row.id for row in rows])
        for row in rows:
            if row.case_id is not None and row.kind in CASE_KINDS:
                cases.transition(conn, row.case_id, CaseState.FAILED, actor="recover", now=now,
                                 allowed_from=[CaseState.SENDING],
                                 reason=f"interrupted while handing {row.message_id} to the "
                                        "mail server; look it up in the server log before "
                                        "resending")
    return len(rows)


def _envelope_from(data: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(data)
    return parseaddr(headers.get("From", ""))[1]


def _send_all(transport: Transport, rows: list[OutboxMessage]) -> Iterator[Outcome]:
    """Hand every row to the transport, on as many threads as it allows; yields outcomes as
    they complete. An error other than retriable/permanent (bad credentials, say) stops the
    rest, which are yielded back unsent with that error."""
    mails = [(row, OutgoingMail(row.message_id, _envelope_from(row.message), row.recipient,
                                row.message)) for row in rows]
    if transport.connections <= 1 or len(mails) <= 1:
        try:
            for i, (row, mail) in enumerate(mails):
                try:
                    control.ensure()   # a stop or a lost lock: hand over nothing more
                    transport.send(mail)
                    yield Outcome(row)
                except (RetriableError, PermanentMailError) as exc:
                    yield Outcome(row, exc)
                except Exception as exc:
                    yield from (Outcome(r, exc) for r, _ in mails[i:])
                    return
        finally:
            transport.close()
        return
    local = threading.local()
    opened: list[Transport] = []
    lock = threading.Lock()

    def send(mail: OutgoingMail) -> None:
        if not hasattr(local, "transport"):
            local.transport = transport.clone()
            with lock:
                opened.append(local.transport)
        control.ensure()   # CycleStopped stops the rest, which go back to the queue
        local.transport.send(mail)   # connects on first use, with the transport's retries

    workers = min(transport.connections, len(mails))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-send") as pool:
        try:
            futures: dict[Future, OutboxMessage] = {pool.submit(send, mail): row
                                                    for row, mail in mails}
            pending = set(futures)
            stop: Exception | None = None
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    exc = future.exception()
                    if exc is not None and not isinstance(
                            exc, RetriableError | PermanentMailError):
                        stop = stop or exc
                    yield Outcome(futures[future], exc)
                if stop is not None:
                    for future in pending:
                        future.cancel()
                    for future in [f for f in pending if f.cancelled()]:
                        yield Outcome(futures[future], stop)
                    pending = {f for f in pending if not f.cancelled()}
        finally:
            pool.shutdown(wait=True)
            for each in opened:
                each.close()


def deliver_outbox(store: Store, transport: Transport, *, now: datetime,
                   report: CycleReport, progress: Callable[[int], None] | None = None) -> None:
    with store.begin() as conn:
        rows = outbox.claim(conn, now)
    rows = within_daily_limit(store, transport, rows, now, report)
    if not rows:
        return
    batch: list[Outcome] = []
    for outcome in _send_all(transport, rows):
        batch.append(outcome)
        if len(batch) >= MARK_EVERY:
            _record(store, batch, now, report, progress)
            batch = []
    _record(store, batch, now, report, progress)


def _record(store: Store, outcomes: list[Outcome], now: datetime, report: CycleReport,
            progress: Callable[[int], None] | None) -> None:
    if not outcomes:
        return
    sent = [o.row for o in outcomes if o.error is None]
    retry = [o for o in outcomes if isinstance(o.error, RetriableError)]
    refused = [o for o in outcomes if isinstance(o.error, PermanentMailError)]
    stopped = [o for o in outcomes if o.error is not None and o not in retry + refused]
    with store.begin() as conn:
        if sent:
            # The bytes are personal data and no longer needed once delivered.
            outbox.mark_sent(conn, [r.id for r in sent])
            done = cases.transition_many(
                conn, [{"id": r.case_id, "sent_at": now} for r in sent
                       if r.case_id is not None and r.kind in CASE_KINDS],
                CaseState.SENT, from_state=CaseState.SENDING, actor="send", now=now)
            report.sent += len(done)
        for o in retry + stopped:
            # Not handed over: back in the queue (a stopped batch is retried next cycle).
            outbox.mark_retry(conn, o.row.id, now + RETRY_AFTER, str(o.error))
        report.retry_later += len(retry)
        for o in refused:
            exc = o.error
            outbox.mark_refused(conn, o.row.id, str(exc))
            if exc.suppress_address and o.row.recipient:
                cases.suppress(conn, person_key(o.row.recipient), f"SMTP {exc.code}")
            if o.row.case_id is not None and o.row.kind in CASE_KINDS:
                cases.transition(conn, o.row.case_id, CaseState.FAILED, actor="send",
                                 reason=f"the mail server refused it: {exc}", now=now,
                                 allowed_from=[CaseState.SENDING])
        report.failed += len(refused)
    if stopped:
        report.errors.append(f"mail delivery stopped: {stopped[0].error}; "
                             f"{len(stopped)} message(s) wait for the next run")
    if progress and sent:
        progress(len(sent))
