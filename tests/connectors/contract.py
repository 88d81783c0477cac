"""The contract every HTTP connector passes, as a mixin (django-anymail style), plus the small
test doubles it needs: a manual clock and a scripted `requests` adapter.

A connector's test module subclasses `HttpConnectorContract` and fills in the few hooks at
the bottom of the class (what valid settings look like, how its API pages an empty listing,
how a webhook is signed). The mixin then checks, for every connector alike: config errors
name the key; plaintext secrets are refused; credentials are worked out once, lazily; 401 is
an AuthError; 429 then success waits the Retry-After and succeeds; 5xx is retried a bounded
number of times and then raised as RetriableError; pagination walks to the end; the first
poll looks back `max_age_days` only and the next starts at its cursor less the overlap; an unknown
status maps to `other` and keeps the raw record; `mode` decides whether the source polls and
receives webhooks; a bad webhook signature is refused before any of the delivery is read; a
missing abstract method fails at instantiation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import requests
from relay_core.connectors.http import HttpConnector, RetryPolicy
from requests.adapters import BaseAdapter

from relay_core.contract import parse_time
from relay_core.contract.base import Page, WebhookSettings
from relay_core.errors import AuthError, ConfigError, RetriableError, SignatureError
from relay_core.models import Category, RejectionEvent

TINY_RETRIES = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001,
                           max_retry_after=300)


class ManualClock:
    """A monotonic clock for tests: `sleep` records the wait and advances time instantly."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=list)       # JSON-able, or bytes sent verbatim
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedAdapter(BaseAdapter):
    """Answers a connector's requests without a network. `routes` answer by predicate (e.g.
    the token endpoint, every time); everything else takes the next scripted reply in order.
    An Exception instance in the script is raised instead (timeouts, connection errors)."""

    def __init__(self):
        super().__init__()
        self.script: list[Reply | Exception] = []
        self.routes: list[tuple[Callable[[requests.PreparedRequest], bool],
                                Callable[[requests.PreparedRequest], Reply]]] = []
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        for matches, answer in self.routes:
            if matches(request):
                return self._build(request, answer(request))
        if not self.script:
            raise AssertionError(f"unscripted request {request.method} {request.url}")
        reply = self.script.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return self._build(request, reply)

    @staticmethod
    def _build(request, reply: Reply) -> requests.Response:
        response = requests.Response()
        response.status_code = reply.status
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        response._content = body
        response.headers.update({"Content-Type": "application/json", **reply.headers})
        response.url, response.request = request.url, request
        return response

    def close(self):
        pass

    def api_requests(self) -> list[requests.PreparedRequest]:
        """The requests the script answered (not the routed ones such as tokens)."""
        return [r for r in self.requests if not any(m(r) for m, _ in self.routes)]


def pinned(connector: HttpConnector, now: datetime) -> ManualClock:
    """Freeze a connector in time for a cassette test: wall clock `now`, waits recorded and
    instant, tiny retry back-off."""
    clock = ManualClock()
    connector.sleep, connector.clock = clock.sleep, clock
    connector.limiter._wall = now.timestamp
    connector.retry_policy = TINY_RETRIES
    connector.now = lambda: now
    return clock


def attach(connector: HttpConnector) -> tuple[ScriptedAdapter, ManualClock]:
    adapter, clock = ScriptedAdapter(), ManualClock()
    connector.session.mount("http://", adapter)
    connector.session.mount("https://", adapter)
    connector.sleep, connector.clock = clock.sleep, clock
    connector.retry_policy = TINY_RETRIES
    return adapter, clock


class HttpConnectorContract:
    """Mixin: `class TestGreenhouseContract(HttpConnectorContract)` runs these for Greenhouse."""

    connector_class: ClassVar[type[HttpConnector]]
    secret_keys: ClassVar[list[str]] = []               # settings that must be SecretRefs
    invalid_settings: ClassVar[list[tuple[dict[str, Any], str]]] = []  # (overrides, bad key)

    # -- hooks a connector's test module fills in ------------------------------------------
    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def route_auth(self, adapter: ScriptedAdapter) -> None:
        """Install routes for the auth server (token endpoint), if the API has one."""

    def empty_listing(self) -> Reply:
        return Reply(200, [])

    def listing_pages(self, count: int) -> list[Reply]:
        raise NotImplementedError

    def event_with_unknown_status(self, connector: HttpConnector) -> RejectionEvent:
        raise NotImplementedError

    def webhook_delivery(self, connector: HttpConnector, *, valid: bool
                         ) -> tuple[dict[str, str], bytes]:
        raise NotImplementedError

    def forged_malformed_delivery(self, connector: HttpConnector
                                  ) -> tuple[dict[str, str], bytes]:
        """A delivery with a wrong signature whose payload translation would choke on."""
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------------
    def build(self, make_config, **overrides: Any) -> HttpConnector:
        options = {**self.settings(), **overrides}
        config = make_config({"sources": [{"name": "src", "type": self.connector_class.type,
                                           **options}]})
        return self.connector_class(config.sources[0], config, 0)

    def scripted(self, make_config, **overrides: Any):
        connector = self.build(make_config, **overrides)
        adapter, clock = attach(connector)
        self.route_auth(adapter)
        return connector, adapter, clock

    @staticmethod
    def drain(connector: HttpConnector, cursor: str | None = None) -> list[Page]:
        return list(connector.poll(cursor))

    # -- the contract ----------------------------------------------------------------------
    def test_config_errors_name_the_key(self, make_config):
        for overrides, key in self.invalid_settings:
            with pytest.raises(ConfigError) as info:
                self.build(make_config, **overrides)
            assert f"sources[0].{key}" in str(info.value)

    def test_plaintext_secrets_refused_without_echo(self, make_config):
        for key in self.secret_keys:
            with pytest.raises(ConfigError) as info:
                self.build(make_config, **{key: "s3cr3t-plaintext-value"})
            assert f"sources[0].{key}" in str(info.value)
            assert "s3cr3t-plaintext-value" not in str(info.value)

    def test_401_is_auth_error(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        adapter.script += [Reply(401, {"message": "Unauthorized"})] * 4
        with pytest.raises(AuthError):
            self.drain(connector)
        assert len(adapter.api_requests()) <= 2       # at most one retry after re-auth

    def test_429_then_success_honours_retry_after(self, make_config):
        connector, adapter, clock = self.scripted(make_config)
        adapter.script += [Reply(429, {"message": "Rate limit exceeded"},
                                 {"Retry-After": "7"}), self.empty_listing()]
        pages = self.drain(connector)
        assert not any(p.events for p in pages)
        assert 7 in clock.sleeps

    def test_5xx_exhausted_raises_retriable(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        adapter.script += [Reply(503, {"message": "unavailable"})] * TINY_RETRIES.attempts
        with pytest.raises(RetriableError):
            self.drain(connector)
        assert len(adapter.api_requests()) == TINY_RETRIES.attempts

    def test_pagination_walks_to_the_end(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        adapter.script += self.listing_pages(3)
        self.drain(connector)
        assert not adapter.script
        assert len(adapter.api_requests()) == 3

    def test_first_poll_window_then_the_cursor(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        now = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
        connector.now = lambda: now
        starts: list[datetime] = []
        listing = connector.listing
        connector.listing = lambda since: starts.append(since) or listing(since)
        adapter.script += [self.empty_listing(), self.empty_listing()]
        first = self.drain(connector)
        max_age = timedelta(days=connector.config.eligibility.max_age_days)
        assert starts == [now - max_age - connector.overlap()]   # never the whole history
        assert (first[-1].cursor, first[-1].events) == (connector.cursor_at(now), [])
        self.drain(connector, first[-1].cursor)
        assert starts[1] == parse_time(first[-1].cursor, connector.zone) - connector.overlap()
        assert now - max_age < starts[1] <= now - connector.overlap()

    def test_unknown_status_maps_to_other_and_keeps_raw(self, make_config):
        connector, _, _ = self.scripted(make_config)
        event = self.event_with_unknown_status(connector)
        assert event.category is Category.OTHER
        assert event.raw

    def test_bad_webhook_signature_refused(self, make_config):
        connector, _, _ = self.scripted(make_config)
        if not connector.receives_webhooks:
            pytest.skip("this connector does not receive webhooks")
        headers, body = self.webhook_delivery(connector, valid=True)
        assert connector.parse_webhook(headers, body).kind
        headers, body = self.webhook_delivery(connector, valid=False)
        with pytest.raises(SignatureError):
            connector.parse_webhook(headers, body)
        with pytest.raises(SignatureError):
            connector.parse_webhook({}, body)

    def test_signature_is_checked_before_the_delivery_is_read(self, make_config, monkeypatch):
        connector, _, _ = self.scripted(make_config)
        if not connector.receives_webhooks:
            pytest.skip("this connector does not receive webhooks")
        translated: list[Any] = []
        monkeypatch.setattr(connector, "translate_webhook",
                            lambda headers, body: translated.append(body))
        headers, body = self.forged_malformed_delivery(connector)
        with pytest.raises(SignatureError):          # never a complaint about the payload
            connector.parse_webhook(headers, body)
        assert translated == [] and connector.request_count == 0

    def test_mode_decides_what_the_source_does(self, make_config):
        connector = self.build(make_config)
        if not isinstance(connector.settings, WebhookSettings):
            assert (connector.mode, connector.polls, connector.receives_webhooks) == (
                "poll", True, False)
            return
        for mode, polls, receives in [("poll", True, False), ("webhook", False, True),
                                      ("both", True, True)]:
            connector = self.build(make_config, mode=mode)
            assert (connector.polls, connector.receives_webhooks) == (polls, receives)

    def test_authenticates_once_and_lazily(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        logins: list[int] = []
        authenticate = connector.authenticate
        connector.authenticate = lambda: logins.append(1) or authenticate()
        assert not adapter.requests                   # building the connector asks nothing
        adapter.script += [self.empty_listing(), self.empty_listing()]
        self.drain(connector)
        self.drain(connector)
        assert len(logins) == 1
        assert all(r.headers.get("Authorization") for r in adapter.api_requests())

    def test_missing_abstract_method_fails_at_instantiation(self, make_config):
        assert not getattr(self.connector_class, "__abstractmethods__", None)
        incomplete = type("Incomplete", (HttpConnector,), {"type": "incomplete"})
        config = make_config({"sources": [{"name": "x", "type": "incomplete"}]})
        with pytest.raises(TypeError, match="abstract"):
            incomplete(config.sources[0], config, 0)

    def test_repr_and_errors_hold_no_secret(self, make_config):
        connector, adapter, _ = self.scripted(make_config)
        adapter.script += [Reply(403, {"message": "Forbidden"})]
        with pytest.raises(AuthError) as info:
            self.drain(connector)
        text = repr(connector) + str(info.value)
        for value in self.secret_values():
            assert value not in text

    def secret_values(self) -> list[str]:
        """Resolved secret values the test environment holds (checked absent from output)."""
        return []
