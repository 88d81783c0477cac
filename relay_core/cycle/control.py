"""When a cycle must stop early: a stop was asked (SIGTERM, SIGINT, `serve` shutting down) or
the run lost its lock (store/lease.py). The cycle asks between sources, pages and messages,
never in the middle of one, so the message in hand is finished and recorded.

    from relay_core.cycle import control
    reason = control.stop_reason()     # None: carry on; else why to stop (for the report)
    control.ensure()                   # the same as an exception: raises CycleStopped

`run_cycle` makes its stop Event and its lease the active ones for the duration of the cycle
(`active(...)`); a process runs one cycle at a time (the lock), so module state is enough.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from relay_core.errors import RelayError

if TYPE_CHECKING:
    from relay_core.store.lease import Lease

# Set by the signal handlers of `run` and by `serve` on shutdown.
stopping = threading.Event()
_state: dict[str, object] = {"stop": None, "lease": None}


class CycleStopped(RelayError):
    """The cycle stopped early, on purpose; what was not done waits for the next run."""


@contextmanager
def active(stop: threading.Event | None, lease: Lease | None) -> Iterator[None]:
    saved = dict(_state)
    _state.update(stop=stop, lease=lease)
    try:
        yield
    finally:
        _state.update(saved)


def stop_reason() -> str | None:
    stop = _state["stop"] or stopping
    if stop.is_set() or stopping.is_set():   # type: ignore[union-attr]
        return "stopped on request (signal or shutdown); the rest waits for the next run"
    lease = _state["lease"]
    if lease is not None:
        try:
            lease.ensure()   # type: ignore[attr-defined]
        except RelayError as exc:
            return str(exc)
    return None


def ensure() -> None:
    reason = stop_reason()
    if reason:
        raise CycleStopped(reason)


@contextmanager
def stop_on_signals(stop: threading.Event | None = None,
                    also: Callable[[], None] | None = None) -> Iterator[list[int]]:
    """While inside, SIGTERM and SIGINT set `stop` (default: `stopping`) instead of killing
    the process, so the cycle finishes the message in hand, releases the lock and returns.
    Yields the list of signals caught. A second SIGINT interrupts at once (an impatient
    Ctrl-C); `also` is called on each signal (serve: tell uvicorn to stop). Only the main
    thread can install handlers; elsewhere this does nothing."""
    event = stop or stopping
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handle(signo: int, _frame: object) -> None:
        if signo == signal.SIGINT and caught:
            raise KeyboardInterrupt
        caught.append(signo)
        event.set()
        if also is not None:
            also()

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield caught
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
