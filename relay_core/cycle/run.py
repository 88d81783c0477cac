"""One relay cycle: RejectionEvent → eligibility → schedule → render → send → record.

`run_cycle` is what `career-relay run` and each of `serve`'s cycles call: poll every source
(ingest.py), send what is due (sending.py, outbox.py), expire invitations, deliver handoffs,
and, at most once a day, purge what is past retention (records/retention.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.cycle import control
from relay_core.cycle.ingest import poll_source
from relay_core.cycle.outbox import recover_interrupted
from relay_core.cycle.report import CycleReport, SourceReport
from relay_core.cycle.sending import send_due
from relay_core.errors import (
    AuthError,
    ConfigError,
    LockedError,
    RelayError,
    RetriableError,
)
from relay_core.mail.transports import Transport
from relay_core.records.consent.records import expire_invitations
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.retention import purge_if_due
from relay_core.rendering.emails import Renderer
from relay_core.store import Store, utcnow
from relay_core.store.runs import record_cycle

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay")


def run_cycle(config: Config, store: Store, connectors: dict[str, Connector], *,
              transport: Transport, renderer: Renderer | None = None,
              now: datetime | None = None,
              progress: Callable[[int], None] | None = None,
              poll_progress: Callable[[str, int, int], None] | None = None,
              stop: threading.Event | None = None) -> CycleReport:
    """Poll every source, schedule, send what is due. Holds the run lock throughout.
    `progress(n)` counts messages sent; `poll_progress(source, pages, records)` follows a poll.
    When `stop` (or `control.stopping`) is set, or the lock is lost, the cycle ends after the
    message in hand (cycle/control.py) and `report.stopped` says why.
    The outcome is kept in the store (store/runs.py) for the console and `serve`'s log."""
    started = utcnow()
    try:
        report = _locked_cycle(config, store, connectors, transport=transport,
                               renderer=renderer, now=now, progress=progress,
                               poll_progress=poll_progress, stop=stop)
    except LockedError:
        raise
    except (ConfigError, RelayError) as exc:
        record_cycle(store, started_at=started, finished_at=utcnow(), ok=False,
                     summary={"errors": [str(exc)]}, polls={})
        raise
    record_cycle(store, started_at=started, finished_at=utcnow(), ok=report.ok,
                 summary=report.summary(), polls={
                     name: s.error for name, s in report.sources.items() if s.polled})
    return report


def _locked_cycle(config: Config, store: Store, connectors: dict[str, Connector], *,
                  transport: Transport, renderer: Renderer | None,
                  now: datetime | None, progress: Callable[[int], None] | None,
                  poll_progress: Callable[[str, int, int], None] | None,
                  stop: threading.Event | None) -> CycleReport:
    now = now or utcnow()
    renderer = renderer or Renderer(config)
    report = CycleReport()
    with store.lock() as lease, control.active(stop, lease):
        try:
            _steps(config, store, connectors, transport, renderer, now, report, progress,
                   poll_progress)
        except control.CycleStopped:
            pass
        report.stopped = control.stop_reason()
        if report.stopped:
            report.errors.append(report.stopped)
    return report


def _steps(config: Config, store: Store, connectors: dict[str, Connector],
           transport: Transport, renderer: Renderer, now: datetime, report: CycleReport,
           progress: Callable[[int], None] | None,
           poll_progress: Callable[[str, int, int], None] | None) -> None:
    """The cycle's steps; between them (and between sources) a stop is honoured."""
    recover_interrupted(store, transport, now, on_ambiguous=config.mail.on_ambiguous,
                        report=report)
    for name, connector in connectors.items():
        control.ensure()
        source_report = report.sources.setdefault(name, SourceReport(name))
        if not connector.polls:
            continue
        source_report.polled = True
        try:
            poll_source(store, config, connector, now=now, report=source_report,
                        progress=poll_progress)
        except RelayError as exc:
            source_report.error = describe_error(exc)
            log.warning("source %s: %s", name, source_report.error)
        except ConfigError as exc:   # a secret of this source: name the source's key
            raise source_config_error(config, name, exc) from None
    control.ensure()
    send_due(store, config, connectors, renderer, transport, now=now, report=report,
             progress=progress)
    control.ensure()
    expire_invitations(store, now)
    try:
        deliver_handoffs(store, config, transport, now=now, report=report)
    finally:
        transport.close()   # the email channel may have reopened the SMTP connection
    control.ensure()
    purged = purge_if_due(store, config, now)
    report.purged = purged.cases_blanked if purged else None
    store.reclaim()      # the bytes of the messages just sent (SQLite: incremental)


def describe_error(exc: RelayError) -> str:
    """A source's failure as a person reads it: what to do, then the message (no class name)."""
    if isinstance(exc, AuthError):
        return f"credentials refused: {exc}"
    if isinstance(exc, RetriableError):
        return f"temporarily unavailable, tried again next cycle: {exc}"
    return str(exc)


def source_config_error(config: Config, name: str, exc: ConfigError) -> ConfigError:
    """The same error with the source's key path (`sources[1].client_secret`), as in `check`."""
    index = next((i for i, s in enumerate(config.sources) if s.name == name), None)
    if index is None or exc.key.startswith("sources["):
        return exc
    key = f"sources[{index}]" + (f".{exc.key}" if exc.key else "")
    return type(exc)(key, exc.problem, exc.fix)
