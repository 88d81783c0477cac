"""`career-relay serve`: the web app plus the same cycle as `run`, every few minutes.

The port is bound before anything starts, so a port in use is a clear ConfigError (exit 2)
instead of a uvicorn traceback; then one startup line says where it listens, which sources it
polls or receives, and whether the console is on. Each cycle is logged (counts and case-free
messages); `--log-format json` turns every line into a JSON object (commands/logs.py).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from relay_core import __version__
from relay_core.cycle import control
from relay_core.cycle.run import run_cycle
from relay_core.errors import ConfigError, LockedError, RelayError
from relay_core.runtime import Runtime
from relay_core.store.admin import count_accounts
from relay_core.web.app import create_app

log = logging.getLogger("career_relay.service")


STOP_WAIT = 50   # seconds for the cycle to finish its message in hand (the unit allows 60)


def cycle_loop(rt: Runtime, stop: threading.Event) -> None:
    interval = rt.config.web.cycle_minutes * 60
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = run_cycle(rt.config, rt.store, rt.connectors, transport=rt.transport(),
                               stop=stop)
            summary = report.summary()
            seconds = round(time.monotonic() - started, 1)
            log.info("cycle %s in %.1f s: new %d, scheduled %d, skipped %d, sent %d, failed %d, "
                     "cancelled %d, retry later %d, late %d",
                     "ok" if report.ok else "with problems", seconds, summary["detected"],
                     summary["scheduled"], summary["skipped"], report.sent, report.failed,
                     report.cancelled, report.retry_later, report.late,
                     extra={"event": "cycle", "ok": report.ok, "seconds": seconds,
                            **{k: summary[k] for k in ("detected", "scheduled", "skipped",
                                                       "sent", "failed", "cancelled",
                                                       "retry_later", "late")}})
            for problem in summary["errors"]:
                log.warning("cycle: %s", problem, extra={"event": "cycle_problem"})
        except LockedError as exc:
            log.info("cycle skipped: %s", exc, extra={"event": "cycle"})
        except (ConfigError, RelayError) as exc:
            # A secret that stopped resolving must not end the loop: the consent pages and
            # webhooks keep being served while the operator fixes it.
            log.error("cycle failed: %s", exc, extra={"event": "cycle", "ok": False})
        stop.wait(interval)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a ConfigError that says what to do when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    # Without it every answer on a kept-alive connection after the first waited ~40 ms for
    # the client's delayed ACK (Nagle: uvicorn writes the head and the body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError("web.port", f"{host}:{port} is already in use (another "
                              "`career-relay serve`, or another program)",
                              "Stop the other process, or set another web.port") from None
        if exc.errno == errno.EACCES:
            raise ConfigError("web.port", f"no permission to listen on {host}:{port}",
                              "Use a port above 1023 behind your reverse proxy") from None
        raise ConfigError("web.host", f"cannot listen on {host}:{port} ({exc.strerror})",
                          "Use an address of this machine, e.g. 127.0.0.1") from None
    return sock


def startup_line(rt: Runtime) -> tuple[str, dict[str, Any]]:
    config = rt.config
    sources = []
    for name, connector in rt.connectors.items():
        modes = [m for m, on in (("poll", connector.polls),
                                 ("webhook", connector.receives_webhooks)) if on]
        sources.append(f"{name} ({'+'.join(modes) or 'idle'})")
    if not config.admin.enabled:
        console = "off (admin.enabled = false)"
    else:
        accounts = count_accounts(rt.store)
        console = (f"on at {config.relay.public_base_url}/admin/ ({accounts} account(s))"
                   if accounts else "on, but no account yet: run `career-relay admin add NAME`")
    listen = f"http://{config.web.host}:{config.web.port}"
    text = (f"career-relay {__version__} serving on {listen} (public "
            f"{config.relay.public_base_url}); sources: {', '.join(sources) or 'none'}; "
            f"console {console}; a cycle every {config.web.cycle_minutes} min")
    return text, {"event": "startup", "listen": listen, "sources": sources,
                  "console": console, "version": __version__}


def serve_forever(rt: Runtime, workers: int = 1) -> None:
    """Serve until stopped. `workers` > 1 forks that many processes sharing the listening
    socket (Python runs one page at a time per process): only this first one runs the cycle
    and processes the webhook inbox, the others answer requests only."""
    # The cycle and the inbox processor are Python threads beside the event loop: a thread
    # that wants the interpreter waits up to the switch interval for it (5 ms by default),
    # and an ack crosses threads twice (to the inbox writer and back), which showed as 10 ms
    # added to an ack whenever processing ran.
    sys.setswitchinterval(0.0005)
    sock = bind(rt.config.web.host, rt.config.web.port)
    children = _fork_workers(rt, sock, workers - 1)
    app = create_app(rt.config, rt.store, rt.connectors)
    text, fields = startup_line(rt)
    log.info(text + (f"; {workers} worker processes" if workers > 1 else ""), extra=fields)
    stop = threading.Event()
    worker = threading.Thread(target=cycle_loop, args=(rt, stop), name="relay-cycle",
                              daemon=True)
    server = _server(app)
    # uvicorn catches SIGTERM/SIGINT while it runs, shuts down, then raises the signal again:
    # our handler takes it (instead of the default, which would kill us mid-message) and
    # only sets `stop`, so the cycle finishes the message in hand and releases the lock.
    with control.stop_on_signals(stop, also=lambda: setattr(server, "should_exit", True)):
        worker.start()
        # Deliveries acknowledged but not yet processed (a crash, a restart) are taken at
        # once; the other workers' deliveries are looked for every second.
        processor = app.state.relay.inbox_processor
        processor.start(scan_seconds=1 if children else 30)
        try:
            server.run(sockets=[sock])
        finally:
            stop.set()
            processor.stop()
            for pid in children:
                _stop_child(pid)
            sock.close()
            worker.join(STOP_WAIT)
            if worker.is_alive():
                log.warning("stopped with the cycle still busy; the next start takes its "
                            "lock over", extra={"event": "stopped"})
            else:
                log.info("stopped", extra={"event": "stopped"})


def _server(app: Any) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(
        app, proxy_headers=False, server_header=False, log_config=None, log_level="warning",
        access_log=False))   # access lines would carry relay tokens in their paths


def _fork_workers(rt: Runtime, sock: socket.socket, count: int) -> list[int]:
    """Fork before any thread starts; each child serves the shared socket and exits with it."""
    children = []
    for _ in range(max(count, 0)):
        pid = os.fork()
        if pid:
            children.append(pid)
            continue
        code = 0
        try:
            _die_with_parent()
            rt.store.engine.dispose(close=False)    # the parent's connections stay its own
            _server(create_app(rt.config, rt.store, rt.connectors)).run(sockets=[sock])
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return children


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the first process dies, so none is left behind."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop_child(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
