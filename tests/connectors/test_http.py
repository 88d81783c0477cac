"""The shared HTTP layer: retries, rate limiting, status mapping, paginators."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from contract import ManualClock, Reply, attach
from pydantic import ValidationError
from relay_core.connectors.http import (
    USER_AGENT,
    CursorPaginator,
    HttpConnector,
    HttpSettings,
    LinkHeaderPaginator,
    Lookup,
    OffsetTokenPaginator,
    PageNumberPaginator,
    RateLimit,
    RateLimiter,
    RetryPolicy,
    WriteBackSettings,
)

from relay_core.contract import iso_utc
from relay_core.contract.base import ApplicationStatus, ConnectorSettings, Page
from relay_core.errors import AuthError, FatalError, RetriableError
from relay_core.models import Category

BASE = "https://api.example.test"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)


class ExampleSettings(ConnectorSettings):
    base_url: str = BASE


class Example(HttpConnector):
    type = "example"
    Settings = ExampleSettings
    rate_limit = RateLimit(requests=5, per_seconds=10, reserve=0)

    refreshes = 0

    def auth_headers(self):
        return {"Authorization": "Bearer <filtered>"}

    def refresh_auth(self):
        self.refreshes += 1
        return True

    def listing(self, since):
        return self.paginate("/items", {"since": iso_utc(since)}, LinkHeaderPaginator())

    def page_from(self, response, since):
        return Page.of(self.json(response, list), lambda record: None)

    def poll(self, cursor) -> Iterator[Page]:      # a connector may still write its own
        for response in self.paginate("/items", {"since": cursor}, LinkHeaderPaginator()):
            self.json(response, list)
        yield Page([], "done")


@pytest.fixture
def example(make_config):
    config = make_config({"sources": [{"name": "ex", "type": "example"}]})
    connector = Example(config.sources[0], config, 0)
    adapter, clock = attach(connector)
    return connector, adapter, clock


def test_session_sends_user_agent_and_timeout(example):
    connector, adapter, _ = example
    adapter.script.append(Reply(200, []))
    connector.request("GET", "/items")
    sent = adapter.requests[0]
    assert sent.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("career-relay/")
    assert connector.timeout[0] > 0 and connector.timeout[1] > 0


def test_429_waits_retry_after_then_succeeds(example):
    connector, adapter, clock = example
    adapter.script += [Reply(429, {}, {"Retry-After": "3"}), Reply(200, [1])]
    assert connector.request("GET", "/items").json() == [1]
    assert 3 in clock.sleeps
    assert connector.request_count == 2


def test_5xx_retried_then_exhausted(example):
    connector, adapter, _ = example
    adapter.script += [Reply(500), Reply(502), Reply(503)]
    with pytest.raises(RetriableError, match="HTTP 503"):
        connector.request("GET", "/items")
    assert connector.request_count == 3


def test_backoff_is_capped_and_jittered(example):
    connector, adapter, clock = example
    connector.retry_policy = RetryPolicy(attempts=6, initial_wait=1, max_wait=4)
    connector.limiter.limit = None      # only backoff waits here, not the 5-per-10-s limit
    adapter.script += [Reply(500)] * 5 + [Reply(200, [])]
    connector.request("GET", "/items")
    assert len(clock.sleeps) == 5
    assert all(0 <= s <= 4 for s in clock.sleeps)


def test_timeouts_and_connection_errors_are_retried(example):
    connector, adapter, _ = example
    adapter.script += [requests.ReadTimeout(), requests.ConnectionError(), Reply(200, [])]
    assert connector.request("GET", "/items").status_code == 200
    adapter.script += [requests.ConnectTimeout()] * 3
    with pytest.raises(RetriableError, match="did not answer"):
        connector.request("GET", "/items")


def test_retry_after_beyond_the_cap_gives_up_at_once(example):
    connector, adapter, _ = example
    adapter.script += [Reply(429, {}, {"Retry-After": "3600"})]
    with pytest.raises(RetriableError) as info:
        connector.request("GET", "/items")
    assert info.value.retry_after == 3600
    assert connector.request_count == 1


def test_post_is_retried_only_on_429(example):
    connector, adapter, _ = example
    adapter.script += [Reply(503)]
    with pytest.raises(RetriableError):
        connector.request("POST", "/notes", json={"body": "x"})
    assert connector.request_count == 1
    adapter.script += [Reply(429, {}, {"Retry-After": "1"}), Reply(201, {"id": 1})]
    assert connector.request("POST", "/notes", json={"body": "x"}).status_code == 201


def test_401_refreshes_once_then_auth_error(example):
    connector, adapter, _ = example
    adapter.script += [Reply(401), Reply(200, [])]
    assert connector.request("GET", "/items").status_code == 200
    assert connector.refreshes == 1
    adapter.script += [Reply(401), Reply(401)]
    with pytest.raises(AuthError, match="refused the credentials"):
        connector.request("GET", "/items")


# --- authentication, worked out lazily -------------------------------------------------------
class Tokened(Example):
    """Authenticates through the base: a numbered token per login."""

    auth_headers = HttpConnector.auth_headers
    refresh_auth = HttpConnector.refresh_auth
    reauthenticate_on_401 = True
    lifetime: float | None = None
    logins = 0

    def authenticate(self):
        self.logins += 1
        if self.lifetime is not None:
            self.auth_expires = self.clock() + self.lifetime
        return {"Authorization": f"Bearer t{self.logins}"}


@pytest.fixture
def tokened(make_config):
    def make(**attributes) -> tuple[Tokened, object, ManualClock]:
        config = make_config({"sources": [{"name": "ex", "type": "example"}]})
        connector = Tokened(config.sources[0], config, 0)
        for name, value in attributes.items():
            setattr(connector, name, value)
        adapter, clock = attach(connector)
        return connector, adapter, clock

    return make


def test_authenticates_once_and_only_when_a_request_needs_it(tokened):
    connector, adapter, _ = tokened()
    assert connector.logins == 0                   # building reads no secret
    adapter.script += [Reply(200, []), Reply(200, [])]
    connector.request("GET", "/items")
    connector.request("GET", "/items")
    assert connector.logins == 1
    assert [r.headers["Authorization"] for r in adapter.requests] == ["Bearer t1"] * 2


def test_authenticates_again_once_the_credentials_expire(tokened):
    connector, adapter, clock = tokened(lifetime=60)
    adapter.script += [Reply(200, []), Reply(200, []), Reply(200, [])]
    connector.request("GET", "/items")
    clock.now += 59
    connector.request("GET", "/items")
    clock.now += 1
    connector.request("GET", "/items")
    assert [r.headers["Authorization"] for r in adapter.requests] == [
        "Bearer t1", "Bearer t1", "Bearer t2"]


def test_a_401_authenticates_again_once_when_credentials_expire(tokened):
    connector, adapter, _ = tokened()
    adapter.script += [Reply(401), Reply(200, [])]
    assert connector.request("GET", "/items").status_code == 200
    assert [r.headers["Authorization"] for r in adapter.requests] == ["Bearer t1", "Bearer t2"]


def test_a_401_on_a_static_key_is_an_auth_error_at_once(tokened):
    connector, adapter, _ = tokened(reauthenticate_on_401=False)
    adapter.script += [Reply(401)]
    with pytest.raises(AuthError):
        connector.request("GET", "/items")
    assert (connector.logins, connector.request_count) == (1, 1)


def test_403_names_the_permission_and_is_not_retried(example):
    connector, adapter, _ = example
    adapter.script += [Reply(403, {"message": "Forbidden"})]
    with pytest.raises(AuthError, match="scope or role"):
        connector.request("GET", "/items")
    assert connector.request_count == 1


def test_accepted_status_is_returned(example):
    connector, adapter, _ = example
    adapter.script += [Reply(403)]
    assert connector.request("GET", "/items", accept=(403,)).status_code == 403


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_client_errors_are_fatal_without_retry(example, status):
    connector, adapter, _ = example
    adapter.script += [Reply(status, {"message": "Validation error"})]
    with pytest.raises(FatalError) as info:
        connector.request("GET", "/items", params={"email": "taro@example.com"})
    assert "taro@example.com" not in str(info.value)       # no query string in messages
    assert "/items" in str(info.value)
    assert connector.request_count == 1


def test_non_json_body_is_fatal(example):
    connector, adapter, _ = example
    adapter.script += [Reply(200, b"<html>login</html>")]
    with pytest.raises(FatalError, match="JSON"):
        connector.json(connector.request("GET", "/items"))
    adapter.script += [Reply(200, {"a": 1})]
    with pytest.raises(FatalError, match="expected list"):
        connector.json(connector.request("GET", "/items"), list)


def test_client_credentials_grant_sets_the_expiry_and_names_the_fix(tokened):
    connector, adapter, clock = tokened()
    adapter.script += [Reply(200, {"access_token": "tok", "expires_in": 3600}),
                       Reply(401, {"error": "invalid_client"})]
    headers = connector.client_credentials("https://auth.example.test/token", "id", "pw",
                                           fix="check the client", sub="7")
    assert headers == {"Authorization": "Bearer tok"}
    assert connector.auth_expires == clock.now + 3600 - 60
    sent = adapter.requests[0]
    assert (sent.body, "Authorization" in sent.headers) == (
        "grant_type=client_credentials&sub=7", True)           # Basic id:pw, not the token
    with pytest.raises(AuthError, match="refused the client credentials.*check the client"):
        connector.client_credentials("https://auth.example.test/token", "id", "bad", fix=(
            "check the client"))


# --- account-wide lookups and write-back -------------------------------------------------------
def test_lookup_lists_again_for_an_unknown_id_once_the_table_is_stale():
    clock, listed = ManualClock(), []
    lookup = Lookup(lambda: listed.append(1) or {"a": 1}, clock)
    assert (lookup.get("a", 0), lookup.get("b", 0), lookup.get("", 0)) == (1, 0, 0)
    assert len(listed) == 1                       # "b" unknown, but the table is fresh
    clock.now += 3600
    assert lookup.get("a", 0) == 1 and len(listed) == 1      # known: no listing
    assert lookup.get("b", 0) == 0 and len(listed) == 2


def test_eager_lookup_refreshes_when_stale_and_asks_once_per_unknown_id():
    clock, listed = ManualClock(), []
    lookup = Lookup(lambda: listed.append(1) or {"a": 1}, clock, eager=True)
    lookup.get("a", 0)
    lookup.get("b", 0)
    lookup.get("b", 0)
    assert len(listed) == 2                       # once for "b", not twice
    clock.now += 3600
    lookup.get("a", 0)
    assert len(listed) == 3                       # stale: listed again though "a" is known


class Annotated(Example):
    Settings = type("AnnotatedSettings", (ExampleSettings, WriteBackSettings), {})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written: list[tuple] = []

    def annotation_target(self, application_id):
        return f"target-{application_id}"

    def write_note(self, target, text):
        self.written.append(("note", target, text))

    def write_tag(self, target):
        self.written.append(("tag", target))


@pytest.mark.parametrize("mode, written", [
    ("off", []), ("note", [("note", "target-1", "hi")]), ("tag", [("tag", "target-1")]),
    ("both", [("note", "target-1", "hi"), ("tag", "target-1")])])
def test_write_back_follows_the_setting(make_config, mode, written):
    config = make_config({"sources": [{"name": "ex", "type": "example", "write_back": mode}]})
    connector = Annotated(config.sources[0], config, 0)
    assert connector.annotate("1", "hi") is (mode != "off")
    assert connector.written == written


class Rechecked(Example):
    detail_path = "/items/{id}"

    def status_from(self, record):
        return ApplicationStatus.of(Category(record["category"]))


def test_recheck_reads_each_application_and_a_deleted_one_is_not_rejected(make_config):
    config = make_config({"sources": [{"name": "ex", "type": "example"}]})
    connector = Rechecked(config.sources[0], config, 0)
    adapter, _ = attach(connector)
    adapter.script += [Reply(200, {"category": "we_rejected"}), Reply(404),
                       Reply(200, {"category": "hired"})]
    assert connector.recheck(["1", "2", "3"]) == {
        "1": ApplicationStatus.of(Category.WE_REJECTED), "2": ApplicationStatus.NOT_REJECTED,
        "3": ApplicationStatus.of(Category.HIRED)}
    assert [r.path_url for r in adapter.requests] == ["/items/1", "/items/2", "/items/3"]


def test_without_a_detail_path_recheck_cannot_ask(example):
    connector, adapter, _ = example
    assert connector.recheck(["1"]) == {"1": ApplicationStatus.UNKNOWN}
    assert not adapter.requests


# --- settings and `check` ---------------------------------------------------------------------
class HostSettings(HttpSettings):
    base_url: str = "https://api.example.test"
    auth_url: str = "https://auth.example.test"
    url_keys = ("base_url", "auth_url")
    host_only = True


class RootSettings(HttpSettings):
    base_url: str = "https://example.test/api/v1"


def test_url_settings_are_checked_with_the_default_as_example():
    assert HostSettings(base_url="https://eu.example.test/").base_url == "https://eu.example.test"
    assert RootSettings(base_url="https://x.test/api/v2/").base_url == "https://x.test/api/v2"
    with pytest.raises(ValidationError, match='host only.*"https://api.example.test"'):
        HostSettings(base_url="https://api.example.test/v1")
    with pytest.raises(ValidationError, match='(?s)auth_url.*"https://auth.example.test"'):
        HostSettings(auth_url="auth.example.test")
    with pytest.raises(ValidationError, match='API root.*"https://example.test/api/v1"'):
        RootSettings(base_url="example.test/api/v1?x=1")


class Probed(Example):
    credential_name = "API key"

    def access_probes(self):
        return [("items", "/items", {"limit": 1}), ("notes", "/notes", {}),
                ("tags", "/tags", {}), ("jobs", "/jobs", {})]


def test_check_probes_each_resource_and_stops_at_refused_credentials(make_config):
    config = make_config({"sources": [{"name": "ex", "type": "example"}]})
    connector = Probed(config.sources[0], config, 0)
    adapter, _ = attach(connector)
    adapter.script += [Reply(200, []), Reply(403), *[Reply(503)] * 3, Reply(401), Reply(401)]
    results = connector.check()
    assert [(r.what, r.ok) for r in results] == [
        ("ex (example): items", True), ("ex (example): notes", False),
        ("ex (example): tags", False), ("ex (example): API key", False)]
    assert "scope or role" in results[1].detail and "HTTP 503" in results[2].detail


def test_check_tries_the_credentials_first(tokened):
    connector, adapter, _ = tokened()
    connector.authenticated_note = lambda: "token granted"
    assert [(r.what, r.ok, r.detail) for r in connector.check()] == [
        ("ex (example): credentials", True, "token granted")]
    connector, adapter, _ = tokened()

    def refuse():
        raise AuthError("the token endpoint said no")

    connector.authenticate = refuse
    assert [(r.ok, r.detail) for r in connector.check()] == [(False, "the token endpoint said no")]
    assert not adapter.requests


# --- rate limiter -----------------------------------------------------------------------------
def test_sliding_window_keeps_under_the_limit():
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(requests=5, per_seconds=10, reserve=0),
                          sleep=clock.sleep, clock=clock)
    stamps = []
    for _ in range(12):
        limiter.acquire()
        stamps.append(clock.now)
    for i in range(len(stamps)):
        in_window = [s for s in stamps if stamps[i] <= s < stamps[i] + 10]
        assert len(in_window) <= 5
    assert stamps[-1] - stamps[0] >= 20


def _response(status=200, **headers) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def test_server_headers_narrow_the_limit():
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(requests=100, per_seconds=10, reserve=1),
                          sleep=clock.sleep, clock=clock, wall=lambda: 1_700_000_000)
    limiter.observe(_response(**{"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "2"}))
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps, "the server's lower limit (3, minus a reserve of 1) applies"
    clock.sleeps.clear()
    limiter.observe(_response(**{"X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": str(1_700_000_000 + 25)}))
    limiter.acquire()
    assert sum(clock.sleeps) >= 25


def test_429_blocks_the_limiter_for_retry_after():
    clock = ManualClock()
    limiter = RateLimiter(None, sleep=clock.sleep, clock=clock)
    limiter.observe(_response(429, **{"Retry-After": "4"}))
    limiter.acquire()
    assert clock.sleeps == [4]


def test_real_clock_limiter_is_fast_when_under_the_limit():
    limiter = RateLimiter(RateLimit(requests=1000, per_seconds=1))
    started = time.monotonic()
    for _ in range(100):
        limiter.acquire()
    assert time.monotonic() - started < 0.5


# --- paginators -------------------------------------------------------------------------------
def test_link_header_follows_next_verbatim(example):
    connector, adapter, _ = example
    adapter.script += [
        Reply(200, [1], {"Link": f'<{BASE}/items?cursor=abc>; rel="next"'}),
        Reply(200, [2], {"Link": f'<{BASE}/items?cursor=def>; rel="next"'}),
        Reply(200, [3]),
    ]
    pages = list(connector.paginate("/items", {"status": "x", "per_page": 2},
                                    LinkHeaderPaginator()))
    assert [p.json() for p in pages] == [[1], [2], [3]]
    assert adapter.requests[1].url == f"{BASE}/items?cursor=abc"     # nothing added
    assert "status=x" in adapter.requests[0].url


def test_repeated_token_is_refused(example):
    connector, adapter, _ = example
    looping = {"Link": f'<{BASE}/items?cursor=same>; rel="next"'}
    adapter.script += [Reply(200, [], looping), Reply(200, [], looping)]
    with pytest.raises(FatalError, match="already sent"):
        list(connector.paginate("/items", None, LinkHeaderPaginator()))


def test_cursor_paginator(example):
    connector, adapter, _ = example
    adapter.script += [Reply(200, {"data": [1], "meta": {"next": "c2"}}),
                       Reply(200, {"data": [2], "meta": {"next": None}})]
    pages = list(connector.paginate("/items", {"q": "a"},
                                    CursorPaginator(cursor_field="meta.next")))
    assert len(pages) == 2
    assert "q=a" in adapter.requests[1].url and "cursor=c2" in adapter.requests[1].url
    adapter.script += [Reply(200, {"next": "c2"}), Reply(200, {})]
    list(connector.paginate("/items", {"q": "a"},
                            CursorPaginator(cursor_field="next", only_cursor=True)))
    assert adapter.requests[-1].url == f"{BASE}/items?cursor=c2"


def test_offset_token_paginator_stops_on_has_next_false(example):
    connector, adapter, _ = example
    adapter.script += [Reply(200, {"data": [1], "next": "t1", "hasNext": True}),
                       Reply(200, {"data": [2], "next": "t2", "hasNext": False})]
    pages = list(connector.paginate("/opportunities", {"limit": 1}, OffsetTokenPaginator()))
    assert len(pages) == 2
    assert "offset=t1" in adapter.requests[1].url


def test_page_number_paginator(example):
    connector, adapter, _ = example
    adapter.script += [Reply(200, [1, 2]), Reply(200, [3, 4]), Reply(200, [5])]
    pages = list(connector.paginate("/items", {"page": 1, "per_page": 2},
                                    PageNumberPaginator(page_size=2)))
    assert len(pages) == 3
    assert "page=3" in adapter.requests[2].url
    adapter.script += [Reply(200, {"items": [1], "total_pages": 2}),
                       Reply(200, {"items": [2], "total_pages": 2})]
    pages = list(connector.paginate("/items", None, PageNumberPaginator(
        records_field="items", total_pages_field="total_pages")))
    assert len(pages) == 2


def test_poll_through_the_base(example):
    connector, adapter, _ = example
    adapter.script += [Reply(200, [], {"Link": f'<{BASE}/items?cursor=2>; rel="next"'}),
                       Reply(200, [])]
    assert [p.cursor for p in connector.poll(None)] == ["done"]


class Listed(Example):
    poll = HttpConnector.poll


class ListedSettings(ExampleSettings):
    overlap_minutes: int = 10


@pytest.fixture
def listed(make_config):
    config = make_config({"sources": [{"name": "ex", "type": "example"}],
                          "eligibility": {"max_age_days": 14}})
    connector = Listed(config.sources[0], config, 0)
    connector.now = lambda: NOW
    adapter, _ = attach(connector)
    return connector, adapter


def test_the_base_poll_yields_a_page_per_response_then_the_cursor(listed):
    connector, adapter = listed
    adapter.script += [Reply(200, [1, 2], {"Link": f'<{BASE}/items?cursor=2>; rel="next"'}),
                       Reply(200, [3])]
    pages = list(connector.poll("2026-08-31T00:00:00Z"))
    assert [p.cursor for p in pages] == [None, None, "2026-09-01T03:00:00Z"]
    assert "since=2026-08-31T00%3A00%3A00Z" in adapter.requests[0].url


def test_the_first_poll_looks_back_max_age_days_only(listed):
    connector, adapter = listed
    adapter.script += [Reply(200, [])]
    list(connector.poll(None))
    assert "since=2026-08-18T03%3A00%3A00Z" in adapter.requests[0].url    # 14 days back


def test_an_unreadable_cursor_starts_like_a_first_poll(listed):
    connector, _ = listed
    assert connector.poll_since("not a time", NOW) == connector.poll_since(None, NOW)


def test_the_overlap_reads_again_before_the_cursor(make_config):
    config = make_config({"sources": [{"name": "ex", "type": "example"}]})
    connector = type("Overlapping", (Listed,), {"Settings": ListedSettings})(
        config.sources[0], config, 0)
    assert connector.poll_since("2026-09-01T00:00:00Z", NOW) == datetime(
        2026, 8, 31, 23, 50, tzinfo=UTC)
