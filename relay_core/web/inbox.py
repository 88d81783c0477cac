"""The webhook inbox's two threads in `serve`: one writer that group-commits, one processor.

A burst of deliveries (a bulk reject in Greenhouse fires one webhook per candidate) must each be
durable before its 200, but a commit per request on ~40 threads fights over SQLite's one write
lock. So requests hand their row to one writer thread and await a future; the writer takes
whatever has queued up (up to `MAX_BATCH`), inserts it in one statement, commits once (SQLite:
with `synchronous=FULL`, so the commit survives a power loss, not just a crash) and resolves
every future of the batch. While it commits, the next batch queues: the batch grows with the
load, with no timer to wait for.

After each commit the processor thread is woken; it translates and ingests the rows
(cycle/webhooks.py), and at start it takes whatever a previous process left unprocessed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from relay_core.config import Config
from relay_core.cycle.webhooks import BATCH, InboxReport, process_inbox
from relay_core.store import Store, inbox

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay.webhooks")
MAX_BATCH = 500
RETRY_SCAN_SECONDS = 30     # rows waiting for an ATS that was down are looked at this often
QUIET = 0.5                 # no delivery for this long: processing takes full batches
DURING_BURST = 4            # rows per transaction while deliveries keep coming
PATIENCE = 1.0              # the longest processing waits for the acks to let it in


class InboxWriter:
    """Group commit: `await writer.append(row)` returns once the row is committed."""

    def __init__(self, store: Store, on_commit: Any = None):
        self.store = store
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0          # how many group commits (the bench and tests read it)
        self.last_append = 0.0    # monotonic time of the latest delivery
        self.idle = threading.Event()   # set when nothing waits for a commit (may lag a put)
        self.idle.set()

    async def append(self, row: dict) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._start()
        self.last_append = time.monotonic()
        self.idle.clear()
        self._queue.put((row, loop, future))
        await future

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="relay-inbox-writer",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:        # a fresh connection after a failed commit (the database went away)
            try:
                self._serve_batches()
            except Exception as exc:
                log.error("webhook inbox: writer restarting (%s)", type(exc).__name__)

    def _serve_batches(self) -> None:
        with self.store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()
            while True:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    with self.store.writing():
                        inbox.append(conn, [row for row, _, _ in batch])
                        conn.commit()
                except Exception as exc:   # the requests answer 503; the ATS retries them
                    log.error("webhook inbox: could not store %d deliveries (%s)", len(batch),
                              type(exc).__name__)
                    _resolve(batch, exc)
                    raise
                self.commits += 1
                if self._queue.empty():
                    self.idle.set()
                _resolve(batch, None)
                if self.on_commit is not None:
                    self.on_commit()


def _resolve(batch: list, error: BaseException | None) -> None:
    for _, loop, future in batch:
        try:
            loop.call_soon_threadsafe(_settle, future, error)
        except RuntimeError:     # that request's event loop is gone (server stopping)
            pass


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():          # the request was cancelled (client gone)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class InboxProcessor:
    """Processes the inbox in a background thread, woken after each commit. `drain()` does the
    same in the caller's thread (tests; one at a time, so neither waits on the other's rows)."""

    def __init__(self, store: Store, config: Config, connectors: Mapping[str, Connector],
                 writer: InboxWriter | None = None):
        self.store, self.config, self.connectors = store, config, connectors
        self.writer = writer
        self.wake = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.scan_seconds = RETRY_SCAN_SECONDS
        self._batch_started = 0.0

    def drain(self) -> InboxReport:
        with self._busy:
            self._batch_started = time.monotonic()
            return process_inbox(self.store, self.config, self.connectors, pace=self._pace)

    def _pace(self) -> int:
        """Acks go first. While deliveries keep coming (one in the last `QUIET` seconds),
        processing rests as long as its previous batch took (so it has at most half the
        interpreter), waits until no delivery is waiting for its commit (up to `PATIENCE`),
        and then takes only `DURING_BURST` rows in a transaction: an ack never waits long
        behind ingest for SQLite's one write lock. Full batches resume once the deliveries
        stop."""
        now = time.monotonic()
        took, self._batch_started = now - self._batch_started, now
        if self.writer is None or now - self.writer.last_append > QUIET:
            return BATCH
        time.sleep(min(took, QUIET))
        self.writer.idle.wait(PATIENCE)     # woken by the writer, not by polling it
        self._batch_started = time.monotonic()
        return DURING_BURST

    def start(self, scan_seconds: float = RETRY_SCAN_SECONDS) -> None:
        self.scan_seconds = scan_seconds
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="relay-inbox", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def notify(self) -> None:
        self.wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.clear()
            try:
                report = self.drain()
                if report.processed:
                    log.info("webhooks processed %d: new %d, cancelled %d, duplicate %d, "
                             "ignored %d, unusable %d, retry later %d", report.processed,
                             report.new_cases, report.cancelled, report.duplicates,
                             report.ignored, report.unusable, report.retry_later,
                             extra={"event": "webhooks", "processed": report.processed,
                                    "new": report.new_cases})
            except Exception as exc:   # the database went away: try again later
                log.error("webhook inbox: processing failed (%s)", type(exc).__name__)
                self._stop.wait(5)
            self.wake.wait(self.scan_seconds)
