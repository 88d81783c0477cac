"""How hard an API connector may press an ATS: the retry policy and the client-side rate
limiter (a sliding window of the vendor's published limit, narrowed by the `X-RateLimit-*`
headers and `Retry-After` when the ATS sends them). Used by `HttpConnector` (http.py)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests

from relay_core.contract import parse_retry_after, parse_time


# --- policies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5                 # total tries, the first one included
    initial_wait: float = 1.0         # seconds; doubles per attempt, full jitter
    max_wait: float = 30.0            # cap of one backoff wait
    max_retry_after: float = 300.0    # a longer Retry-After gives up now; the next run retries


@dataclass(frozen=True)
class RateLimit:
    """The vendor's published limit: `requests` per `per_seconds`.

    `reserve` requests of each window are left unused so that clock skew between us and the
    server's window cannot tip the last request over the limit."""

    requests: int
    per_seconds: float
    reserve: int = 1
    # Header names differ per vendor (Talentio: X-Remaining / X-Reset in seconds; HERP:
    # x-remaining-request / x-reset-at as an ISO time); the defaults are the common ones.
    limit_header: str | None = "X-RateLimit-Limit"     # None: the API sends no limit header
    remaining_header: str = "X-RateLimit-Remaining"
    reset_header: str = "X-RateLimit-Reset"


class RateLimiter:
    """Keeps one source under its limit before the server has to say 429.

    A sliding window of our own send times (no window of `per_seconds` ever holds more than
    the limit, whatever the server's window alignment), narrowed by what the server reports:
    a lower `X-RateLimit-Limit`, `X-RateLimit-Remaining` at the reserve (wait until
    `X-RateLimit-Reset`), and `Retry-After` on a 429. Thread-safe; `sleep`, `clock` and `wall`
    are injectable for tests."""

    def __init__(self, limit: RateLimit | None, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.limit = limit
        self._sleep, self._clock, self._wall = sleep, clock, wall
        self._sent: deque[float] = deque()
        self._server_limit: int | None = None
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def _capacity(self) -> int | None:
        if self.limit is None:
            return None
        allowed = self.limit.requests
        if self._server_limit is not None:
            allowed = min(allowed, self._server_limit)
        return max(1, allowed - self.limit.reserve)

    def _delay(self, now: float) -> float:
        wait = self._blocked_until - now
        capacity = self._capacity()
        if capacity is not None:
            window = self.limit.per_seconds
            while self._sent and self._sent[0] <= now - window:
                self._sent.popleft()
            if len(self._sent) >= capacity:
                wait = max(wait, self._sent[0] + window - now)
        return wait

    def acquire(self) -> None:
        """Block until one more request fits, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._delay(now)
                if wait <= 0:
                    self._sent.append(now)
                    return
            self._sleep(wait)

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        names = self.limit or RateLimit(0, 1)
        limit = _int_header(headers, names.limit_header) if names.limit_header else None
        remaining = _int_header(headers, names.remaining_header)
        block = 0.0
        if response.status_code == 429:
            block = _first(parse_retry_after(headers.get("Retry-After")),
                           self._reset_delay(headers), 1.0)
        elif remaining is not None and remaining <= (self.limit.reserve if self.limit else 0):
            block = _first(self._reset_delay(headers),
                           self.limit.per_seconds if self.limit else 1.0)
        with self._lock:
            if limit:
                self._server_limit = limit
            if block > 0:
                self._blocked_until = max(self._blocked_until, self._clock() + block)

    def _reset_delay(self, headers: Mapping[str, str]) -> float | None:
        name = self.limit.reset_header if self.limit else "X-RateLimit-Reset"
        reset = _int_header(headers, name)
        if reset is None:
            when = parse_time(headers.get(name))        # an ISO time (HERP's x-reset-at)
            if when is None:
                return None
            return max(0.0, min(when.timestamp() - self._wall(), 3600.0))
        # Most APIs send an epoch timestamp; a few send seconds-until-reset.
        delay = reset - self._wall() if reset > 1_000_000_000 else float(reset)
        return max(0.0, min(delay, 3600.0))


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None
