"""One relay cycle: RejectionEvent → eligibility → schedule → render → send → record.

`run_cycle` is what `career-relay run` and each of `serve`'s cycles call: poll every source
(ingest.py), send what is due (sending.py, outbox.py), expire invitations, deliver handoffs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from relay_core.config import Config
from relay_core.cycle.ingest import poll_source
from relay_core.cycle.outbox import recover_interrupted
from relay_core.cycle.report import CycleReport, SourceReport
from relay_core.cycle.sending import send_due
from relay_core.errors import RelayError
from relay_core.mail.transports import Transport
from relay_core.records.consent.records import expire_invitations
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.rendering.emails import Renderer
from relay_core.store import Store, utcnow

if TYPE_CHECKING:
    from relay_core.contract.base import Connector

log = logging.getLogger("career_relay")


def run_cycle(config: Config, store: Store, connectors: dict[str, Connector], *,
              transport: Transport, renderer: Renderer | None = None,
              now: datetime | None = None,
              progress: Callable[[int], None] | None = None) -> CycleReport:
    """Poll every source, schedule, send what is due. Holds the run lock throughout."""
    now = now or utcnow()
    renderer = renderer or Renderer(config)
    report = CycleReport()
    with store.lock():
        recover_interrupted(store, transport, now)
        for name, connector in connectors.items():
            source_report = report.sources.setdefault(name, SourceReport(name))
            if not connector.polls:
                continue
            try:
                poll_source(store, config, connector, now=now, report=source_report)
            except RelayError as exc:
                source_report.error = f"{type(exc).__name__}: {exc}"
                log.warning("source %s: %s", name, source_report.error)
        send_due(store, config, connectors, renderer, transport, now=now, report=report,
                 progress=progress)
        expire_invitations(store, now)
        try:
            deliver_handoffs(store, config, transport, now=now, report=report)
        finally:
            transport.close()   # the email channel may have reopened the SMTP connection
    return report
