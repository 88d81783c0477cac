"""The HTTP layer every API connector stands on (Greenhouse, Lever, HERP, Talentio).

Two layers (STYLE.md rule 3): `relay_core.contract.Connector` is transport-free; `HttpConnector`
below owns everything about talking HTTP, so an API connector only builds requests and parses
responses:

- one `requests.Session` per source, with timeouts and `User-Agent: career-relay/<version>`;
- authentication worked out lazily, once (`authenticate`), and again when it expires;
- retries decided in one place (tenacity): only 429, 5xx, 408, timeouts and connection errors,
  a bounded number of attempts, capped exponential backoff with full jitter, and `Retry-After`
  honoured (a wait longer than `RetryPolicy.max_retry_after` gives up at once: the next run
  will try again). A non-idempotent request (POST/PATCH) is retried only on 429, where the
  server says it did not process it (STYLE.md rule 6);
- a client-side rate limiter (`RateLimiter`): a sliding window of the vendor's published limit,
  narrowed by `X-RateLimit-Limit` / `-Remaining` / `-Reset` and `Retry-After` when sent;
- status codes mapped to the error tree of relay_core/errors.py:

      2xx/3xx, or a status the caller lists in `accept`   → the response
      401                → authenticate() again once if the credentials expire, then
                           AuthError (fix the credentials)
      403                → AuthError naming the missing scope/role (`missing_permission`)
      408, 429, 5xx, timeout, connection error → RetriableError (retried here first)
      404, 400, 409, 422, other 4xx            → FatalError (this request will not work)
      a body that is not the JSON we asked for → FatalError

  Messages name the source, method and path, never the query string or body (both can hold
  names or addresses) and never a credential;
- paginators as small objects with a guard against a repeated token (STYLE.md rule 7), in
  paging.py; the retry policy and rate limiter in limits.py;
- the poll itself: the first run's window, the overlap, a page per response, the cursor last;
  and `check`, one probe per resource the connector reads.

Declaring a connector::

    class Lever(HttpConnector):
        type = "lever"
        Settings = LeverSettings                             # an HttpSettings: base_url, ...
        rate_limit = RateLimit(requests=10, per_seconds=1)   # the vendor's published limit
        retry_policy = RetryPolicy(attempts=5)               # optional; this is the default

        def authenticate(self) -> dict[str, str]:            # once, before the first request
            return {"Authorization": "Basic ..."}

        def listing(self, since):                            # what changed since `since`
            params = {"archived_at_start": ..., "limit": 100}
            return self.paginate("/v1/opportunities", params, OffsetTokenPaginator())

        def page_from(self, response, since):                # one response, translated
            return Page.of(self.json(response)["data"], self.event_from)

Tests make waits tiny by assigning `connector.retry_policy = RetryPolicy(attempts=3,
initial_wait=0, max_wait=0)` and a manual clock: `connector.sleep = clock.sleep` (records the
wait and advances the clock) and `connector.clock = clock` (see tests/connectors/contract.py).
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import Field, ValidationInfo, field_validator
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from relay_core.contract import VERSION as __version__
from relay_core.contract import (
    ApplicationStatus,
    CheckResult,
    Connector,
    ConnectorSettings,
    Page,
    SecretRef,
    iso_utc,
    parse_retry_after,
    parse_time,
)
from relay_core.errors import AuthError, FatalError, RecordError, RelayError, RetriableError

from .limits import RateLimit, RateLimiter, RetryPolicy
from .paging import (
    CursorExpired,
    CursorPaginator,
    LinkHeaderPaginator,
    OffsetTokenPaginator,
    PageNumberPaginator,
    Paginator,
    dig,
)

if TYPE_CHECKING:
    from relay_core.contract import Config, SourceConfig

USER_AGENT = f"career-relay/{__version__}"
V = TypeVar("V")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TOKEN_MARGIN = 60     # renew an expiring token this many seconds early
log = logging.getLogger("career_relay.http")


# --- account-wide lookup tables ---------------------------------------------------------------
class Lookup(Generic[V]):
    """A small account-wide table (archive reasons, job titles) that one listing, `load`,
    reads whole: a thousand records with the same reason cost one request, not a thousand.

    `get` lists again when it meets an id the table does not know and the table is older than
    `max_age` seconds of `clock`. `eager` also lists again whenever the table is that old, and
    at once for an unknown id, but only once per id until the next listing."""

    def __init__(self, load: Callable[[], Mapping[str, V]], clock: Callable[[], float], *,
                 max_age: float = 3600.0, eager: bool = False):
        self._load, self._clock, self.max_age, self.eager = load, clock, max_age, eager
        self.table: dict[str, V] = {}
        self._loaded_at: float | None = None
        self._misses: set[str] = set()

    def get(self, key: str, default: V) -> V:
        if key and self._due(key):
            self.fill(self._load())
        if key not in self.table:
            self._misses.add(key)
        return self.table.get(key, default)

    def current(self) -> dict[str, V]:
        """The whole table, listed again when it is older than `max_age` (or never listed)."""
        if self._loaded_at is None or self._clock() - self._loaded_at >= self.max_age:
            self.fill(self._load())
        return self.table

    def fill(self, table: Mapping[str, V]) -> None:
        """Replace the table, as listed now."""
        self.table, self._loaded_at, self._misses = dict(table), self._clock(), set()

    def _due(self, key: str) -> bool:
        stale = self._loaded_at is None or self._clock() - self._loaded_at >= self.max_age
        if self.eager:
            return stale or (key not in self.table and key not in self._misses)
        return stale and key not in self.table


# --- settings ---------------------------------------------------------------------------------
_HOST = re.compile(r"^https?://[^/\s]+$")
_API_ROOT = re.compile(r"^https?://[^/\s]+(/[^\s?#]*)?$")


class HttpSettings(ConnectorSettings):
    """The keys every API source has. Each key in `url_keys` is checked as the configuration
    loads (a typo would otherwise surface as a puzzling 404 at the first poll): a scheme and
    host only when `host_only` (the vendor's paths start with their version, /v1/...), else an
    API root that may carry a path. The example in the message is the key's default."""

    base_url: str
    url_keys: ClassVar[tuple[str, ...]] = ("base_url",)
    host_only: ClassVar[bool] = False

    @field_validator("*")
    @classmethod
    def _urls(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in cls.url_keys:
            return value
        example = cls.model_fields[info.field_name].default
        if cls.host_only and not _HOST.match(value.rstrip("/")):
            raise ValueError(f"write the host only, without a path, e.g. \"{example}\"")
        if not cls.host_only and not _API_ROOT.match(value):
            raise ValueError(f"write the API root, e.g. \"{example}\"")
        return value.rstrip("/")


class WriteBackSettings(ConnectorSettings):
    """What `annotate` leaves on an invited candidate's application in the ATS."""

    write_back: Literal["off", "note", "tag", "both"] = "off"
    tag_name: str = Field("Career Relay invited", min_length=1, max_length=100)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_lifetime(body: Mapping[str, Any]) -> float:
    """Seconds an OAuth access token lives: `expires_in` (RFC 6749), or the variants some
    servers send instead, `expires` (seconds) or `expires_at` (a time); an hour if none."""
    for name in ("expires_in", "expires"):
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    expires_at = parse_time(body.get("expires_at"))
    if expires_at is not None:
        return max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
    return 3600.0


# --- the HTTP connector base -----------------------------------------------------------------
class HttpConnector(Connector):
    """Base of every API connector. A subclass declares `Settings` (an HttpSettings),
    `rate_limit` (and optionally `retry_policy`, `timeout`, `zone`, `token_key`, the hints),
    implements `listing` and `page_from`, and fills in the hooks its API needs:
    `authenticate`, `missing_permission`, `access_probes`, `cursor_at`, `source_rate_limit`,
    `status_from` (with `detail_path`), the write-back hooks."""

    rate_limit: ClassVar[RateLimit | None] = None
    retry_policy: RetryPolicy = RetryPolicy()
    timeout: ClassVar[tuple[float, float]] = (10.0, 60.0)     # connect, read (seconds)
    zone: ClassVar[tzinfo] = UTC            # where the API's times without an offset are
    token_key: ClassVar[str | None] = None  # the setting with a static token sent as Bearer
    reauthenticate_on_401: ClassVar[bool] = False   # credentials that expire (OAuth tokens)
    credential_name: ClassVar[str] = "credentials"  # what `check` calls them: "API key"
    quota_note: ClassVar[str] = ""  # for `check`: "{remaining} of {limit} requests left ..."
    detail_path: ClassVar[str | None] = None   # one application, for `recheck`: "/x/{id}"
    refused_hint: ClassVar[str] = ("the ATS refused the credentials; check them in the "
                                   "configuration")
    permission_hint: ClassVar[str] = ("the credentials lack a permission (scope or role) this "
                                      "request needs; grant it in the ATS's API settings")

    def __init__(self, source: SourceConfig, config: Config, index: int = 0):
        super().__init__(source, config, index)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # Every wait goes through these two, so a test can swap in a manual clock.
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        self.limiter = RateLimiter(self.source_rate_limit(), sleep=lambda s: self.sleep(s),
                                   clock=lambda: self.clock())
        self.request_count = 0          # HTTP requests actually sent (benchmarks, tests)
        self.skipped_known = 0          # listed records the core already held (last poll)
        self.auth_expires = math.inf    # clock() time; `authenticate` sets it for a token
        self._auth: dict[str, str] | None = None
        self._auth_lock = threading.Lock()

    # Hooks -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return str(getattr(self.settings, "base_url", "")).rstrip("/")

    def now(self) -> datetime:
        """The wall clock; tests replace it."""
        return datetime.now(UTC)

    def source_rate_limit(self) -> RateLimit | None:
        """The limit this source keeps: `rate_limit`, unless a setting (the plan's quota)
        changes it."""
        return self.rate_limit

    def authenticate(self) -> dict[str, str]:
        """Headers that authenticate requests; by default the `token_key` setting as a bearer
        token. Called once, just before the first request that needs them, so building a
        connector reads no secret; again once `auth_expires` has passed, and after a 401 if
        `reauthenticate_on_401`."""
        return bearer(self.secret(self.token_key)) if self.token_key else {}

    def auth_hint(self, status: int, method: str, path: str) -> str:
        """What to do about a 401 (`refused_hint`) or a 403 on this request."""
        return self.refused_hint if status == 401 else self.missing_permission(method, path)

    def missing_permission(self, method: str, path: str) -> str:
        """What a 403 means: `permission_hint`, or the scope or role `method` on `path` needs."""
        return self.permission_hint

    def client_credentials(self, token_url: str, client_id: str, client_secret: str, *,
                           fix: str, **form: str) -> dict[str, str]:
        """An OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) for `authenticate`:
        the bearer headers, with `auth_expires` set a minute before the token expires. `form`
        joins the request (e.g. Greenhouse's `sub`); a refusal is an AuthError ending in `fix`."""
        response = self.request(
            "POST", token_url, authenticate=False, rate_limited=False, idempotent=True,
            accept=(400, 401, 403), auth=(client_id, client_secret),
            data={"grant_type": "client_credentials", **form})
        body = self.json(response, dict) if response.status_code < 400 else {}
        if not body.get("access_token"):
            raise AuthError(f"{self.name}: {token_url} refused the client credentials "
                            f"(HTTP {response.status_code}); {fix}")
        self.auth_expires = self.clock() + max(0.0, token_lifetime(body) - TOKEN_MARGIN)
        return bearer(str(body["access_token"]))

    def lookup(self, load: Callable[[], Mapping[str, V]], *, eager: bool = False) -> Lookup[V]:
        """An account-wide table listed by `load`, on this connector's (replaceable) clock."""
        return Lookup(load, lambda: self.clock(), eager=eager)

    def secret(self, key: str) -> str:
        """The value of the setting `key`, from the keyring or the environment if it is a
        reference (SecretRef)."""
        value = getattr(self.settings, key)
        return value.resolve().get_secret_value() if isinstance(value, SecretRef) else value

    # Authentication --------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        with self._auth_lock:
            if self._auth is None or self.clock() >= self.auth_expires:
                self.auth_expires = math.inf
                self._auth = self.authenticate()
            return self._auth

    def refresh_auth(self) -> bool:
        """Called once on a 401: forget credentials that may have expired, to try again."""
        if not self.reauthenticate_on_401:
            return False
        with self._auth_lock:
            self._auth = None
        return True

    # Polling ---------------------------------------------------------------------------------
    # `list_first`: list the whole window before any look-up (`records_from`, then `page_of` per
    # `enrich_batch` records). A connector that looks records up (candidates, other
    # applications) sets it: a next-page link may expire while the look-ups run (Greenhouse's
    # cursor [S24]), and the whole window is needed to skip what the core already has.
    list_first: ClassVar[bool] = False
    enrich_batch: ClassVar[int] = 500
    # Statuses that, on a next-page request, mean the link expired (`CursorExpired`).
    expired_cursor_statuses: ClassVar[tuple[int, ...]] = ()

    def poll(self, cursor: str | None) -> Iterator[Page]:
        """The vendor's listing of records changed since the cursor, in pages. The new cursor
        (when this poll started) comes last, on a page of its own: the core stores each page in
        turn, so the cursor moves only once every page is stored."""
        started = self.now()
        since = self.poll_since(cursor, started)
        if not self.list_first:
            for response in self.listing(since):
                yield self.page_from(response, since)
        else:
            records, notices = self.window(since)
            if not records:
                self.empty_window()
            fresh = self.drop_known(records)
            for start in range(0, len(fresh), self.enrich_batch):
                page = self.page_of(fresh[start:start + self.enrich_batch], since)
                page.problems[:0], notices = notices, []
                yield page
            if notices:
                yield Page(events=[], cursor=None, problems=notices)
        yield Page(events=[], cursor=self.cursor_at(started))

    def window(self, since: datetime) -> tuple[list[Any], list[RecordError]]:
        """Every record of the listing since `since`, all pages read before any look-up. A
        next-page link refused as expired restarts the listing once, and says so (a problem
        line in the run's report, and the log); a second expiry ends the poll."""
        notices: list[RecordError] = []
        for attempt in range(2):
            records: list[Any] = []
            try:
                for response in self.listing(since):
                    records.extend(self.records_from(response))
                return records, notices
            except CursorExpired as exc:
                if attempt:
                    raise FatalError(f"{exc}; it expired again after the window was listed "
                                     "anew; the next run tries again") from None
                log.warning("%s: a next-page link of the listing expired after %d records; "
                            "listing the window again from its first page", self.name,
                            len(records))
                notices.append(RecordError(f"{self.name}: listing", (
                    f"a next-page link expired after {len(records)} records "
                    f"(HTTP {exc.status}); "
                    "the window was listed again from its first page")))
        raise AssertionError("unreachable")

    def records_from(self, response: requests.Response) -> list[Any]:
        """The records of one listing response (`list_first`)."""
        raise NotImplementedError(f"{self.type} sets list_first but not records_from")

    def page_of(self, records: list[Any], since: datetime) -> Page:
        """Up to `enrich_batch` listed records, looked up and translated (`list_first`)."""
        raise NotImplementedError(f"{self.type} sets list_first but not page_of")

    def empty_window(self) -> None:
        """Called when a `list_first` listing found nothing at all (a hook for a visibility
        check)."""

    def record_stamp(self, record: Any) -> tuple[str, datetime] | None:
        """(application id, rejection time) as the listing shows it, for `drop_known`; None
        when the listing lacks either (the record is then always read)."""
        return None

    def drop_known(self, records: list[Any]) -> list[Any]:
        """The records the core does not hold unchanged (`Connector.known`)."""
        stamps = dict(s for s in map(self.record_stamp, records) if s is not None)
        if self.known is None or not stamps:
            return records
        held = self.known(stamps)
        self.skipped_known = len(held)
        return [r for r in records
                if (s := self.record_stamp(r)) is None or s[0] not in held]

    def poll_since(self, cursor: str | None, started: datetime) -> datetime:
        """Where the listing starts: the cursor or, on the first run, `max_age_days` back
        (never the whole history), less `overlap()`."""
        since = parse_time(cursor, self.zone) if cursor else None
        if since is None:
            since = started - timedelta(days=self.config.eligibility.max_age_days)
        return since - self.overlap()

    def overlap(self) -> timedelta:
        """How far before the cursor a poll reads again, so a record stamped late or by a clock
        behind ours is not missed (the core ignores what it already has): the source's
        `overlap_minutes` or `overlap_days`."""
        return timedelta(minutes=getattr(self.settings, "overlap_minutes", 0),
                         days=getattr(self.settings, "overlap_days", 0))

    def cursor_at(self, started: datetime) -> str:
        """The cursor that makes the next poll start at `started`."""
        return iso_utc(started)

    @abstractmethod
    def listing(self, since: datetime) -> Iterator[requests.Response]:
        """The responses listing what changed since `since`: `self.paginate(...)`."""

    def page_from(self, response: requests.Response, since: datetime) -> Page:
        """One response translated, typically `Page.of(records, self.event_from)` (without
        `list_first`); by default its records through `page_of`."""
        return self.page_of(self.records_from(response), since)

    # Re-check ----------------------------------------------------------------------------------
    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        """One GET of `detail_path` per application: a deleted one (404) is NOT_REJECTED, the
        others as `status_from` reads them. Without a `detail_path`, UNKNOWN: send as planned."""
        if self.detail_path is None:
            return super().recheck(application_ids)
        states = {}
        for app_id in application_ids:
            response = self.request("GET", self.detail_path.format(id=app_id), accept=(404,))
            states[app_id] = (ApplicationStatus.NOT_REJECTED if response.status_code == 404
                              else self.status_from(self.json(response, dict)))
        return states

    def status_from(self, record: dict[str, Any]) -> ApplicationStatus:
        """An application's state now, from the record `detail_path` answers with."""
        raise NotImplementedError(f"{self.type} declares detail_path but not status_from")

    # Write-back ------------------------------------------------------------------------------
    def annotate(self, application_id: str, text: str) -> bool:
        """What the source's `write_back` asks for (WriteBackSettings): a note and/or a tag,
        each written by its hook only if it is not there yet, since the vendors' APIs have no
        idempotency keys and a repeated POST would write a second note."""
        mode = getattr(self.settings, "write_back", "off")
        if mode == "off":
            return False
        target = self.annotation_target(application_id)
        if mode in ("note", "both"):
            self.write_note(target, text)
        if mode in ("tag", "both"):
            self.write_tag(target)
        return True

    def annotation_target(self, application_id: str) -> Any:
        """What `write_note` and `write_tag` are handed: the id, or what they need of it."""
        return application_id

    def write_note(self, target: Any, text: str) -> None:
        raise NotImplementedError(f"{self.type} cannot write notes")

    def write_tag(self, target: Any) -> None:
        raise NotImplementedError(f"{self.type} cannot write tags")

    # `career-relay check` --------------------------------------------------------------------
    def access_probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(what, path, params): one small GET per resource the connector reads."""
        return []

    def authenticated_note(self) -> str | None:
        """For `check`: what accepted credentials mean, when that is worth a line (a token
        endpoint said yes); None adds no line."""
        return None

    def check(self) -> list[CheckResult]:
        """The credentials first (a token endpoint may refuse them), then a line per probe:
        readable, or which permission is missing (a 403, through `auth_hint`); refused
        credentials end the list. Then the webhook endpoint."""
        label = f"{self.name} ({self.type})"
        credentials = f"{label}: {self.credential_name}"
        try:
            self.auth_headers()
        except AuthError as exc:
            return [CheckResult(credentials, False, str(exc))]
        note = self.authenticated_note()
        results = [CheckResult(credentials, True, note)] if note else []
        for what, path, params in self.access_probes():
            try:
                response = self.request("GET", path, params=params, accept=(403,))
            except AuthError as exc:
                return [*results, CheckResult(credentials, False, str(exc))]
            except RelayError as exc:     # one unreachable endpoint must not hide the others
                results.append(CheckResult(f"{label}: {what}", False, str(exc)))
                continue
            results.append(self.access_result(f"{label}: {what}", path, response))
        if self.receives_webhooks:
            url = f"{self.config.relay.public_base_url}/webhooks/{self.type}/{self.name}"
            results.append(CheckResult(f"{label}: webhook", True, f"endpoint {url}"))
        return results

    def access_result(self, what: str, path: str, response: requests.Response) -> CheckResult:
        if response.status_code >= 400:
            return CheckResult(what, False, self.auth_hint(403, "GET", path))
        limit, detail = self.limiter.limit, "readable"
        if self.quota_note and limit is not None:
            remaining = response.headers.get(limit.remaining_header, "?")
            detail += "; " + self.quota_note.format(remaining=remaining, limit=limit.requests)
        return CheckResult(what, True, detail)

    # Requests --------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, data: Any = None, auth: Any = None,
                headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                accept: tuple[int, ...] = (), authenticate: bool = True,
                rate_limited: bool = True) -> requests.Response:
        """Send one request with retries, rate limiting and status mapping.

        `path` is joined to `base_url` unless it is an absolute URL. `accept` lists statuses
        handed back instead of raised (e.g. 403 on a batch the caller will split).
        `idempotent` defaults by method; a non-idempotent request is retried only on 429."""
        method = method.upper()
        url = path if "://" in path else f"{self.base_url}{path}"
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        policy = self.retry_policy

        def retry_allowed(exc: BaseException) -> bool:
            if not isinstance(exc, RetriableError):
                return False
            if exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
                return False
            return idempotent or getattr(exc, "status", None) == 429

        def wait(state) -> float:
            exc = state.outcome.exception()
            if getattr(exc, "retry_after", None) is not None:
                return exc.retry_after
            ceiling = min(policy.max_wait, policy.initial_wait * 2 ** (state.attempt_number - 1))
            return random.uniform(0, ceiling)

        retrying = Retrying(stop=stop_after_attempt(max(1, policy.attempts)), wait=wait,
                            retry=retry_if_exception(retry_allowed), sleep=self.sleep,
                            reraise=True)
        return retrying(self._attempt, method, url, params=params, json=json, data=data,
                        auth=auth, headers=headers, accept=accept, authenticate=authenticate,
                        rate_limited=rate_limited)

    def _attempt(self, method: str, url: str, *, accept: tuple[int, ...], authenticate: bool,
                 rate_limited: bool, headers: Mapping[str, str] | None,
                 **kwargs: Any) -> requests.Response:
        refreshed = False
        while True:
            sent_headers = dict(headers or {})
            if authenticate:
                sent_headers.update(self.auth_headers())
            if rate_limited:
                self.limiter.acquire()
            response = self._send(method, url, sent_headers, **kwargs)
            if rate_limited:
                self.limiter.observe(response)
            if (response.status_code == 401 and authenticate and 401 not in accept
                    and not refreshed and self.refresh_auth()):
                refreshed = True
                continue
            return self._check_status(response, method, url, accept)

    def _send(self, method: str, url: str, headers: dict[str, str],
              **kwargs: Any) -> requests.Response:
        self.request_count += 1
        where = f"{self.name}: {method} {urlsplit(url).path}"
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout,
                                        **kwargs)
        except requests.Timeout:
            raise RetriableError(f"{where} did not answer within {self.timeout[1]:g} s; "
                                 "the next run will try again") from None
        except requests.ConnectionError as exc:
            raise RetriableError(f"{where}: cannot connect ({type(exc).__name__}); check the "
                                 "network and the configured base_url") from None

    def _check_status(self, response: requests.Response, method: str, url: str,
                      accept: tuple[int, ...]) -> requests.Response:
        status = response.status_code
        if status < 400 or status in accept:
            return response
        path = urlsplit(url).path
        where = f"{self.name}: {method} {path} answered HTTP {status}"
        if status in (401, 403):
            raise AuthError(f"{where}: {self.auth_hint(status, method, path)}")
        if status in (408, 429) or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise RetriableError(f"{where}; retried and gave up, the next run will try again",
                                 status=status, retry_after=wait)
        if status == 404:
            raise FatalError(f"{where}: not found; check base_url, or the record was deleted")
        raise FatalError(f"{where}: the ATS refused this request as it is")

    def json(self, response: requests.Response, expect: type | None = None) -> Any:
        """The parsed body; FatalError when it is not JSON of the `expect`ed type."""
        try:
            body = response.json()
        except ValueError:
            raise FatalError(f"{self.name}: {urlsplit(response.url or '').path} did not answer "
                             "with JSON; check base_url") from None
        if expect is not None and not isinstance(body, expect):
            raise FatalError(f"{self.name}: {urlsplit(response.url or '').path} answered a "
                             f"JSON {type(body).__name__}, expected {expect.__name__}")
        return body

    def paginate(self, path: str, params: Mapping[str, Any] | None, paginator: Paginator,
                 *, expiring: bool = False, **request_args: Any) -> Iterator[requests.Response]:
        """GET every page of a listing, following `paginator`. `expiring`: a next-page request
        answered with one of `expired_cursor_statuses` raises CursorExpired (see `window`)."""
        url = path if "://" in path else f"{self.base_url}{path}"
        accept = tuple(request_args.pop("accept", ()))
        expired = tuple(s for s in self.expired_cursor_statuses if s not in accept) \
            if expiring else ()
        followed = [False]

        def fetch(u: str, p: dict[str, Any] | None) -> requests.Response:
            follow, followed[0] = followed[0], True
            response = self.request("GET", u, params=p,
                                    accept=accept + (expired if follow else ()), **request_args)
            if follow and response.status_code in expired:
                raise CursorExpired(f"{self.name}: GET {urlsplit(u).path} refused the "
                                    f"next-page link (HTTP {response.status_code})",
                                    status=response.status_code)
            return response

        return paginator.pages(fetch, url, dict(params) if params is not None else None)

    def close(self) -> None:
        self.session.close()


__all__ = ["CursorExpired", "CursorPaginator", "HttpConnector", "HttpSettings",
           "IDEMPOTENT_METHODS",
           "LinkHeaderPaginator", "Lookup", "OffsetTokenPaginator", "PageNumberPaginator",
           "Paginator", "RateLimit", "RateLimiter", "RetryPolicy", "USER_AGENT",
           "WriteBackSettings", "bearer", "dig", "token_lifetime"]
