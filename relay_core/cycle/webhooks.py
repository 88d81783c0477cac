"""Processing the webhook inbox: what a delivery means, after it was acknowledged.

The request only verified the signature and appended the raw delivery (web/inbox.py). Here each
row is translated by its connector (which may ask the ATS, e.g. Lever sends no data), then, in
arrival order and in one transaction per batch: de-duplicated by event id (`record_inbound`),
ingested like a polled page, and an un-rejection cancels the pending send. A row is claimed in
the same transaction, so a crash before the commit leaves it to the next start, and two
processors never both ingest it. An ATS that is down leaves the row for a later attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.contract.base import WebhookResult
from relay_core.cycle.ingest import cancel_pending, ingest
from relay_core.errors import ConfigError, FatalError, RelayError
from relay_core.models import RejectionEvent
from relay_core.store import Connection, Store, inbox, utcnow

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay.webhooks")
BATCH = 50              # rows per transaction when no delivery is waiting for its ack
MAX_ATTEMPTS = 12           # with the backoff below: retried for about a day


@dataclass
class InboxReport:
    processed: int = 0
    new_cases: int = 0
    cancelled: int = 0
    duplicates: int = 0
    ignored: int = 0
    unusable: int = 0
    retry_later: int = 0
    outcomes: list[str] = field(default_factory=list, repr=False)


def process_inbox(store: Store, config: Config, connectors: Mapping[str, Connector], *,
                  now: datetime | None = None, limit: int | None = None,
                  pace: Callable[[], int] | None = None) -> InboxReport:
    """Process every due row (or up to `limit`), batch by batch. `pace` is called before each
    batch and returns how many rows it may take (serve: it waits for a lull in the acks, and
    during a burst allows only a few rows, so the write lock is never held for long)."""
    report = InboxReport()
    while limit is None or report.processed + report.retry_later < limit:
        size = BATCH if pace is None else max(1, min(BATCH, pace()))
        if limit is not None:
            size = min(size, limit - report.processed - report.retry_later)
        moment = now or utcnow()
        with store.connect() as conn:
            rows = inbox.pending(conn, moment, size)
        if not rows:
            break
        _process_batch(store, config, connectors, rows, moment, report)
    return report


def _translate(connector: Connector | None, row: inbox.InboxRow
               ) -> WebhookResult | str:
    """The connector's reading of the delivery, or the outcome when there is none."""
    if connector is None or not connector.receives_webhooks:
        return "no such source"
    try:
        return connector.translate_webhook(row.headers, connector.webhook_body(row.body))
    except (FatalError, KeyError, TypeError, ValueError) as exc:
        # Never log the body or the exception text: both may quote personal data.
        log.warning("webhook %s: unusable delivery (%s)", row.source, type(exc).__name__)
        return f"unusable: {type(exc).__name__}"
    except (RelayError, ConfigError) as exc:
        # The ATS is down or refused us, or a secret stopped resolving: the delivery is fine,
        # so it waits (`retry`) until that is fixed.
        log.warning("webhook %s: could not complete, retried later (%s)", row.source,
                    type(exc).__name__)
        return "retry"


def _process_batch(store: Store, config: Config, connectors: Mapping[str, Connector],
                   rows: list[inbox.InboxRow], now: datetime, report: InboxReport) -> None:
    # The ATS is asked (if at all) before the transaction: no write lock held over the network.
    translated = [(row, _translate(connectors.get(row.source), row)) for row in rows]
    with store.begin() as conn:
        waiting: dict[str, list[RejectionEvent]] = {}
        for row, result in translated:
            if result == "retry":
                _retry(conn, row, now, report)
                continue
            if isinstance(result, str):
                if inbox.claim(conn, row.id, now, result):
                    report.processed += 1
                    report.unusable += 1
                continue
            if not inbox.claim(conn, row.id, now, "stored", result.event_id, result.kind):
                continue      # another processor got there first
            report.processed += 1
            if result.event_id and not store.record_inbound(conn, row.source, result.event_id,
                                                            result.kind):
                inbox.set_outcome(conn, row.id, "duplicate")
                report.duplicates += 1
                continue
            if not result.events and not result.unrejected:
                inbox.set_outcome(conn, row.id, "ignored")
                report.ignored += 1
                continue
            if result.unrejected:
                # Arrival order matters (reject, un-reject, reject again): ingest what came
                # before this un-rejection first.
                _flush(store, config, conn, waiting, now, report)
            waiting.setdefault(row.source, []).extend(result.events)
            if result.unrejected:
                _flush(store, config, conn, waiting, now, report)
                report.cancelled += cancel_pending(
                    store, row.source, result.unrejected, "un-rejected in the ATS (webhook)",
                    f"webhook:{row.source}", conn)
        _flush(store, config, conn, waiting, now, report)


def _flush(store: Store, config: Config, conn: Connection,
           waiting: dict[str, list[RejectionEvent]], now: datetime, report: InboxReport) -> None:
    for source, events in waiting.items():
        if events:
            report.new_cases += ingest(store, config, events, now=now,
                                       actor=f"webhook:{source}", conn=conn).detected
    waiting.clear()


def _retry(conn: Connection, row: inbox.InboxRow, now: datetime, report: InboxReport) -> None:
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        if inbox.claim(conn, row.id, now, "gave up: ATS unavailable"):
            log.error("webhook %s: delivery %d given up after %d attempts; the next poll "
                      "finds the rejection if the source also polls", row.source, row.id,
                      attempts)
            report.processed += 1
            report.unusable += 1
        return
    delay = timedelta(seconds=min(30 * 2 ** row.attempts, 3600))
    inbox.retry_later(conn, row.id, attempts, now + delay, "retry later")
    report.retry_later += 1
