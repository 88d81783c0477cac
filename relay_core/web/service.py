"""`career-relay serve`: the web app plus the same cycle as `run`, every few minutes."""

from __future__ import annotations

import logging
import threading

import uvicorn

from relay_core.cycle.run import run_cycle
from relay_core.errors import ConfigError, LockedError, RelayError
from relay_core.runtime import Runtime
from relay_core.web.app import create_app

log = logging.getLogger("career_relay.service")


def cycle_loop(rt: Runtime, stop: threading.Event) -> None:
    interval = rt.config.web.cycle_minutes * 60
    while not stop.is_set():
        try:
            report = run_cycle(rt.config, rt.store, rt.connectors, transport=rt.transport())
            log.info("cycle: sent %d, failed %d, cancelled %d", report.sent, report.failed,
                     report.cancelled)
        except LockedError:
            log.info("cycle skipped: another run holds the lock")
        except (ConfigError, RelayError) as exc:
            # A secret that stopped resolving must not end the loop: the consent pages and
            # webhooks keep being served while the operator fixes it.
            log.error("cycle failed: %s", exc)
        stop.wait(interval)


def serve_forever(rt: Runtime) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=cycle_loop, args=(rt, stop), name="relay-cycle",
                              daemon=True)
    worker.start()
    app = create_app(rt.config, rt.store, rt.connectors)
    try:
        uvicorn.run(app, host=rt.config.web.host, port=rt.config.web.port,
                    proxy_headers=False, server_header=False, log_level="warning")
    finally:
        stop.set()
