"""API requests per poll, Greenhouse and Lever, against loopback stand-ins that enforce the
documented rate limits, model private candidates and expiring cursors (issue 14 items 1-2,
issue 13 item 7).

The stand-ins are plain `http.server`s on 127.0.0.1, each in a thread of this process (the
connector under test talks real HTTP to them):

- **Harvest v3** (shared/reference/greenhouse.md; tests/connectors/cassettes/test_greenhouse/
  README.md): OAuth token endpoint, bare-array lists, `Link: <…?cursor=…>; rel="next"` with the
  cursor the only parameter allowed (else 422), `ids`/`*_ids` ≤ 50 (else 422), a fixed window of
  75 requests per 30 s with X-RateLimit-Limit/-Remaining/-Reset and 429 + Retry-After [S21]. A
  private candidate: a `/v3/candidates` batch that would answer it is refused with 403 "You don't
  have access to that record" [S1], unless asked with `private=false`, which leaves it out
  [S23][S21]; the same for `/v3/applications?candidate_ids=`. A cursor expires `cursor_ttl`
  seconds after it was issued (422, as Airbyte's message for "an expired cursor" [S24]), and
  `expire_first` makes the first one issued expire at once (a slow client).
- **Lever v1** (shared/reference/lever.md; tests/connectors/cassettes/test_lever/README.md):
  Basic auth, `{"data", "next", "hasNext"}` lists of ≤ 100, offset tokens bound to the query
  (else 400 "Invalid offset token"), `archived`/`archived_at_start`/`contact_id` (repeatable,
  a union), 10 requests in any one-second window else 429 (stricter than Lever's bucket, which
  allows bursts to 20 [§7]).

Each figure is set against its budget (issue 14) and against a naive per-rejection client run
against the same stand-in (the anchor; run without the rate limit, only its requests count).

    .venv/bin/python bench/connectors.py                # Greenhouse at 75 per 30 s (~2 min)
    .venv/bin/python bench/connectors.py --window 3     # the same limit per 3 s (quick)

Importable: `run_greenhouse(R, private_share)`, `run_greenhouse_no_news(R, private_share)`,
`run_greenhouse_expired_cursor(R)`, `run_lever(R)`, `naive_greenhouse(R, private_share)`,
`naive_lever(R)` each return a dict of figures (bench/compare.py may call them).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay_core.connectors.greenhouse import Greenhouse  # noqa: E402
from relay_core.connectors.http import RateLimit  # noqa: E402
from relay_core.connectors.lever import Lever  # noqa: E402

from relay_core.config import parse_config  # noqa: E402
from relay_core.contract import parse_time  # noqa: E402

GH_REASONS = [{"id": 8, "name": "Lacking skills",
               "type": {"id": 1, "key": "WE_REJECTED_THEM", "name": "We rejected them"}}]
JOBS_IN_USE = 20
FORBIDDEN = {"message": "You don't have access to that record"}
LEVER_KEY = "bench-key"
LEVER_REASONS = [{"id": "r-under", "text": "Underqualified", "status": "active",
                  "type": "non-hired"}]
LEVER_POSTINGS = [{"id": f"p{i}", "text": f"Job {i}", "state": "published"} for i in range(20)]


def gh_budget(r: int) -> int:
    return math.ceil(r / 500) + 2 * math.ceil(r / 50) + 3


def lever_budget(r: int) -> int:
    return math.ceil(r / 100) + math.ceil(r / 50) + 3


# --- the Harvest v3 stand-in ----------------------------------------------------------------------
class HarvestV3:
    """R rejected applications, the private candidates among them, the rate-limit window."""

    def __init__(self, *, limit: int | None = 75, window: float = 30.0,
                 cursor_ttl: float | None = None, expire_first: bool = False):
        self.limit, self.window, self.cursor_ttl = limit, window, cursor_ttl
        self.expire_first = expire_first
        self.apps: list[dict] = []
        self.private: set[int] = set()
        self.lock = threading.Lock()
        self.window_start, self.used = time.time(), 0
        self.calls: Counter[str] = Counter()
        self.throttled = self.forbidden = self.expired = 0

    def load(self, count: int, private_share: float = 0.0, *, rejected_at: datetime,
             seed: int = 14) -> None:
        stamp = rejected_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.apps = [{"id": 10_000_000 + i, "candidate_id": 20_000_000 + i,
                      "job_id": 500 + i % JOBS_IN_USE, "status": "rejected", "prospect": False,
                      "rejected_at": stamp, "updated_at": stamp, "rejection_reason_id": 8,
                      "stage_name": "Interview"} for i in range(count)]
        self.apps.sort(key=lambda a: -a["id"])       # v3 orders by id, descending [S21]
        rng = random.Random(seed)
        self.private = {a["candidate_id"] for a in self.apps if rng.random() < private_share}

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def admit(self) -> tuple[bool, dict[str, str]]:
        with self.lock:
            if self.limit is None:
                return True, {}
            now = time.time()
            if now - self.window_start >= self.window:
                self.window_start, self.used = now, 0
            reset = self.window_start + self.window
            allowed = self.used < self.limit
            self.used += allowed
            self.throttled += not allowed
            headers = {"X-RateLimit-Limit": str(self.limit),
                       "X-RateLimit-Remaining": str(max(0, self.limit - self.used)),
                       "X-RateLimit-Reset": str(math.ceil(reset))}
            if not allowed:
                headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            return allowed, headers

    def cursor(self, offset: int, per_page: int, since: str) -> str:
        issued = -1.0 if self.expire_first and not self.expired else time.time()
        state = {"offset": offset, "per_page": per_page, "since": since, "issued": issued}
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    def is_expired(self, state: dict) -> bool:
        if state["issued"] < 0:
            return True
        return self.cursor_ttl is not None and time.time() - state["issued"] > self.cursor_ttl


def harvest_handler(api: HarvestV3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with api.lock:
                api.calls["POST " + urlsplit(self.path).path] += 1
            if urlsplit(self.path).path == "/token":
                return self.reply(200, {"access_token": "bench-token", "token_type": "Bearer",
                                        "expires_in": 3600})
            self.reply(404, {"message": "not found"})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            with api.lock:
                api.calls[url.path] += 1
            allowed, headers = api.admit()
            if not allowed:
                return self.reply(429, {"message": "Rate limit exceeded"}, headers)
            if self.headers.get("Authorization") != "Bearer bench-token":
                return self.reply(401, {"message": "Unauthorized"}, headers)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            ids_param = next((k for k in ("ids", "application_ids", "candidate_ids", "job_ids")
                              if k in query), None)
            ids = [int(x) for x in (query.get(ids_param) or "").split(",") if x]
            if len(ids) > 50:
                return self.reply(422, {"message": "at most 50 ids"}, headers)
            keep_private = query.get("private") != "false"
            if url.path == "/v3/applications" and "candidate_ids" in query:
                if keep_private and api.private & set(ids):
                    return self.forbid(headers)
                return self.reply(200, [], headers)       # nobody in process elsewhere
            if url.path == "/v3/applications":
                return self.applications(query, headers)
            if url.path == "/v3/candidates":
                if keep_private and api.private & set(ids):
                    return self.forbid(headers)
                return self.reply(200, [
                    {"id": i, "first_name": "Bench", "last_name": f"Person {i}",
                     "can_email": True, "private": False,
                     "email_addresses": [{"value": f"c{i}@example.com", "type": "personal"}]}
                    for i in ids if i not in api.private], headers)
            if url.path == "/v3/job_posts":
                return self.reply(200, [{"id": 9000 + i, "job_id": i, "title": f"Public {i}",
                                         "language": "ja", "internal": False, "live": True,
                                         "active": True} for i in ids], headers)
            if url.path == "/v3/rejection_details":
                by_id = {a["id"]: a for a in api.apps}
                return self.reply(200, [{"id": i + 1, "application_id": i,
                                         "rejection_reason_id": 8,
                                         "rejected_at": by_id[i]["rejected_at"]}
                                        for i in ids if i in by_id], headers)
            if url.path == "/v3/rejection_reasons":
                return self.reply(200, GH_REASONS, headers)
            if url.path == "/v3/jobs":
                return self.reply(200, [{"id": i, "name": f"Job {i}"} for i in ids], headers)
            self.reply(404, {"message": "not found"}, headers)

        def forbid(self, headers: dict[str, str]) -> None:
            with api.lock:
                api.forbidden += 1
            self.reply(403, FORBIDDEN, headers)

        def applications(self, query: dict[str, str], headers: dict[str, str]) -> None:
            if "cursor" in query:
                if len(query) > 1:         # v3: the cursor must be the only parameter [S12]
                    return self.reply(422, {"message": "cursor must be alone"}, headers)
                state = json.loads(base64.urlsafe_b64decode(query["cursor"]))
                if api.is_expired(state):
                    with api.lock:
                        api.expired += 1
                    return self.reply(422, {"message": "Invalid or expired cursor"}, headers)
                offset, per_page, since = state["offset"], state["per_page"], state["since"]
            else:
                offset, per_page = 0, min(500, int(query.get("per_page", 100)))
                since = query.get("updated_at", "gte|1970-01-01T00:00:00Z").partition("|")[2]
            floor = parse_time(since)
            rows = [a for a in api.apps if parse_time(a["updated_at"]) >= floor]
            page = rows[offset:offset + per_page]
            if offset + per_page < len(rows):
                token = api.cursor(offset + per_page, per_page, since)
                headers = {**headers, "Link": f'<http://{self.headers.get("Host")}'
                                              f'/v3/applications?cursor={token}>; rel="next"'}
            self.reply(200, page, headers)

    return Handler


# --- the Lever v1 stand-in ----------------------------------------------------------------------
class LeverV1:
    """R archived opportunities, one contact each, and a one-second sliding window."""

    def __init__(self, per_second: int | None = 10):
        self.per_second = per_second
        self.opps: list[dict] = []
        self.by_id: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.sent: deque[float] = deque()
        self.calls: Counter[str] = Counter()
        self.throttled = 0

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def load(self, count: int, archived_at: datetime) -> None:
        ms = int(archived_at.timestamp() * 1000)
        self.opps = [{"id": f"opp-{i:05d}", "name": f"Bench Person {i}",
                      "emails": [f"p{i}@example.com"], "contact": f"contact-{i:05d}",
                      "origin": "applied", "confidentiality": "non-confidential",
                      "isAnonymized": False, "dataProtection": None, "stage": "applicant-new",
                      "archived": {"reason": "r-under", "archivedAt": ms - i},
                      "applications": [f"app-{i:05d}"], "posting": f"p{i % 20}"}
                     for i in range(count)]
        self.by_id = {o["id"]: o for o in self.opps}

    def admit(self) -> bool:
        with self.lock:
            if self.per_second is None:
                return True
            now = time.monotonic()
            while self.sent and self.sent[0] <= now - 1.0:
                self.sent.popleft()
            if len(self.sent) >= self.per_second:
                self.throttled += 1
                return False
            self.sent.append(now)
            return True

    @staticmethod
    def expand(opp: dict, expand: list[str]) -> dict:
        out = {k: v for k, v in opp.items() if k != "posting"}
        if "contact" in expand:
            out["contact"] = {"id": opp["contact"], "name": opp["name"], "isAnonymized": False,
                              "emails": opp["emails"], "phones": []}
        if "stage" in expand:
            out["stage"] = {"id": opp["stage"], "text": "New applicant"}
        if "applications" in expand:
            out["applications"] = [{"id": opp["applications"][0], "type": "posting",
                                    "opportunityId": opp["id"], "posting": opp["posting"]}]
        return out


def lever_handler(api: LeverV1) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{LEVER_KEY}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            key = url.path if url.path.count("/") < 3 else "/v1/opportunities/:id"
            with api.lock:
                api.calls[key] += 1
            if not api.admit():
                return self.reply(429, {"code": "TooManyRequests", "message": "slow down"})
            if self.headers.get("Authorization") != expected:
                return self.reply(401, {"code": "Unauthorized", "message": "bad key"})
            query = parse_qs(url.query)
            if url.path == "/v1/archive_reasons":
                return self.reply(200, {"data": LEVER_REASONS, "hasNext": False})
            if url.path == "/v1/postings":
                return self.reply(200, {"data": LEVER_POSTINGS, "hasNext": False})
            if url.path.startswith("/v1/opportunities/"):
                opp = api.by_id.get(url.path.rsplit("/", 1)[1])
                if opp is None:
                    return self.reply(404, {"code": "ResourceNotFound", "message": "gone"})
                return self.reply(200, {"data": api.expand(opp, query.get("expand", []))})
            if url.path == "/v1/opportunities":
                return self.listing(query)
            self.reply(404, {"code": "ResourceNotFound", "message": "no such path"})

        def listing(self, query: dict[str, list[str]]) -> None:
            limit = int(query.get("limit", ["100"])[0])
            if not 1 <= limit <= 100:
                return self.reply(400, {"code": "BadRequest", "message": "limit is 1-100"})
            rest = {k: v for k, v in query.items() if k != "offset"}
            fingerprint = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()
            start = 0
            if "offset" in query:    # opaque, and only valid for the query that issued it
                offset, _, bound = query["offset"][0].partition(".")
                if bound != fingerprint[:16]:
                    return self.reply(400, {"code": "BadRequest",
                                            "message": "Invalid offset token"})
                start = int(offset)
            rows = api.opps
            contacts = set(query.get("contact_id", []))
            if query.get("archived") == ["true"]:
                since = int(query.get("archived_at_start", ["0"])[0])
                rows = [o for o in rows if o["archived"]["archivedAt"] >= since]
            elif query.get("archived") == ["false"]:
                rows = [o for o in rows if not o["archived"] and o["contact"] in contacts]
            elif contacts:                     # no `archived`: both states [DOC]
                rows = [o for o in rows if o["contact"] in contacts]
            page = [api.expand(o, query.get("expand", [])) for o in rows[start:start + limit]]
            body: dict[str, Any] = {"data": page, "hasNext": start + limit < len(rows)}
            if body["hasNext"]:
                body["next"] = f"{start + limit}.{fingerprint[:16]}"
            self.reply(200, body)

    return Handler


# --- plumbing ------------------------------------------------------------------------------------
@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def greenhouse_connector(base: str, window: float = 30.0) -> Greenhouse:
    os.environ.setdefault("BENCH_GH_SECRET", "bench-secret")
    config = parse_config({"sources": [{
        "name": "gh", "type": "greenhouse", "mode": "poll", "client_id": "bench",
        "client_secret": "env:BENCH_GH_SECRET", "user_id": 1, "base_url": base,
        "auth_url": base}]}, Path("."))
    connector = Greenhouse(config.sources[0], config, 0)
    if window != 30:   # the declared 75 per 30 s, scaled with the stand-in's window
        connector.limiter.limit = RateLimit(requests=75, per_seconds=window)
    return connector


def lever_connector(base: str) -> Lever:
    os.environ.setdefault("BENCH_LEVER_KEY", LEVER_KEY)
    config = parse_config({"sources": [{"name": "lever", "type": "lever",
                                        "api_key": "env:BENCH_LEVER_KEY", "base_url": base}]},
                          Path("."))
    return Lever(config.sources[0], config, 0)


class Held:
    """What the core's store would hold after a poll: (application id → rejected_at), and the
    `Connector.known` answer the core gives (cycle/ingest.py with store/cases.py)."""

    def __init__(self) -> None:
        self.stamps: dict[str, datetime] = {}

    def add(self, events: list) -> None:
        self.stamps.update({e.application_id: e.rejected_at for e in events})

    def known(self, stamps: dict[str, datetime]) -> set[str]:
        return {k for k, v in stamps.items() if self.stamps.get(k) == v}


def _poll(connector: Any, cursor: str | None) -> tuple[list, list[str], str | None]:
    events, problems, last = [], [], None
    for page in connector.poll(cursor):
        events += page.events
        problems += [str(p) for p in page.problems]
        last = page.cursor or last
    return events, problems, last


# --- Greenhouse runs -----------------------------------------------------------------------------
def run_greenhouse(r: int, private_share: float = 0.05, *, window: float = 30.0,
                   burst_age: timedelta = timedelta(minutes=5)) -> dict:
    """A first poll over R new rejections (a share of private candidates), then the poll
    right after (a new process, as cron's `run`), with nothing new."""
    api = HarvestV3(window=window)
    now = datetime.now(UTC)
    api.load(r, private_share, rejected_at=now - burst_age)
    held = Held()
    with serving(harvest_handler(api)) as base:
        first = greenhouse_connector(base, window)
        first.known = held.known
        started = time.monotonic()
        events, problems, cursor = _poll(first, None)
        took = time.monotonic() - started
        held.add(events)
        first_requests, forbidden, throttled = api.requests, api.forbidden, api.throttled
        api.calls.clear()
        second = greenhouse_connector(base, window)
        second.known = held.known
        again, _, _ = _poll(second, cursor)
        first.close()
        second.close()
    private = sum(1 for e in events if e.flags.private)
    return {"R": r, "private_candidates": len(api.private), "requests": first_requests,
            "budget": gh_budget(r), "events": len(events), "private_events": private,
            "forbidden": forbidden, "throttled": throttled, "seconds": round(took, 1),
            "problems": problems, "no_news_requests": api.requests, "no_news_events": len(again),
            "no_news_throttled": api.throttled - throttled, "no_news_budget": 3}


def run_greenhouse_no_news_inside_overlap(r: int, window: float = 30.0) -> dict:
    """The poll right after a burst stamped inside the re-read overlap: the listing is read
    again, nothing is looked up again."""
    api = HarvestV3(window=window)
    api.load(r, 0.0, rejected_at=datetime.now(UTC) - timedelta(seconds=30))
    held = Held()
    with serving(harvest_handler(api)) as base:
        first = greenhouse_connector(base, window)
        first.known = held.known
        events, _, cursor = _poll(first, None)
        held.add(events)
        api.calls.clear()
        second = greenhouse_connector(base, window)
        second.known = held.known
        again, _, _ = _poll(second, cursor)
    return {"R": r, "requests": api.requests, "listing_pages": api.calls["/v3/applications"],
            "looked_up": api.calls["/v3/candidates"], "events": len(again),
            "skipped_known": second.skipped_known}


def run_greenhouse_expired_cursor(r: int = 1000, window: float = 30.0) -> dict:
    """The first next-page link expires (a slow client): the window is listed again once."""
    api = HarvestV3(window=window, expire_first=True)
    api.load(r, 0.0, rejected_at=datetime.now(UTC) - timedelta(minutes=5))
    with serving(harvest_handler(api)) as base:
        connector = greenhouse_connector(base, window)
        events, problems, _ = _poll(connector, None)
    return {"R": r, "events": len(events), "expired": api.expired, "requests": api.requests,
            "problems": problems}


def naive_greenhouse(r: int, private_share: float = 0.05) -> dict:
    """The anchor: per listed rejection its candidate and that person's other active
    applications, each asked on its own (rate limit off: only the count matters)."""
    api = HarvestV3(limit=None)
    api.load(r, private_share, rejected_at=datetime.now(UTC) - timedelta(minutes=5))
    with serving(harvest_handler(api)) as base:
        client = greenhouse_connector(base)
        client.limiter.limit = None
        since = datetime.now(UTC) - timedelta(days=1)
        apps = [a for response in client.listing(since) for a in client.records_from(response)]
        client._reasons.current()
        for job in {a["job_id"] for a in apps}:
            client.request("GET", "/v3/job_posts", params={"job_ids": job})
        for app in apps:
            cid = str(app["candidate_id"])
            got = client.request("GET", "/v3/candidates", params={"ids": cid}, accept=(403,))
            if got.status_code != 403:
                client.request("GET", "/v3/applications",
                               params={"candidate_ids": cid, "status": "active"})
    return {"R": r, "requests": api.requests}


# --- Lever runs ---------------------------------------------------------------------------
def run_lever(r: int, *, per_second: int | None = 10) -> dict:
    """A first poll over R archived opportunities, then the re-check of all R before sending
    (what cycle/sending.py `_recheck` asks: {opportunity id: contact id})."""
    api = LeverV1(per_second=per_second)
    api.load(r, datetime.now(UTC) - timedelta(minutes=5))
    with serving(lever_handler(api)) as base:
        connector = lever_connector(base)
        time.sleep(1.05)                    # an empty server window to start with
        started = time.monotonic()
        events, _, _ = _poll(connector, None)
        poll_requests = api.requests
        states = connector.recheck_cases({e.application_id: e.candidate_id for e in events})
        took = time.monotonic() - started
    return {"R": r, "poll_requests": poll_requests, "recheck_requests": api.requests -
            poll_requests, "requests": api.requests, "budget": lever_budget(r),
            "events": len(events), "rechecked": len(states), "throttled": api.throttled,
            "single_reads": api.calls["/v1/opportunities/:id"], "seconds": round(took, 1)}


def naive_lever(r: int) -> dict:
    """The anchor: the listing, then per rejection its person's active opportunities at
    detection and a read of the opportunity at the re-check (rate limit off)."""
    api = LeverV1(per_second=None)
    api.load(r, datetime.now(UTC) - timedelta(minutes=5))
    with serving(lever_handler(api)) as base:
        client = lever_connector(base)
        client.limiter.limit = None
        opps = [o for response in client.listing(datetime.now(UTC) - timedelta(days=1))
                for o in client.records_from(response)]
        client._reasons.current()
        client._postings.current()
        for opp in opps:
            contact = opp["contact"]["id"] if isinstance(opp["contact"], dict) else opp["contact"]
            client.request("GET", "/v1/opportunities",
                           params={"contact_id": contact, "archived": "false"})
        for opp in opps:
            client._opportunity(opp["id"])
    return {"R": r, "requests": api.requests}


# --- the report ---------------------------------------------------------------------------
def _row(what: str, got: int, budget: int, anchor: int | str, extra: str = "") -> str:
    verdict = "PASS" if got <= budget else "FAIL"
    ratio = f"{got / anchor:.3f}" if isinstance(anchor, int) and anchor else "-"
    return f"{what:<52} {got:>8} {budget:>7} {anchor!s:>7} {ratio:>6}  {verdict}  {extra}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0,
                        help="Greenhouse stand-in window in seconds (75 requests per window)")
    parser.add_argument("--gh", type=int, default=5000, help="Greenhouse R")
    parser.add_argument("--private", type=float, default=0.05,
                        help="share of private candidates (Greenhouse)")
    parser.add_argument("--lever", type=int, default=2000, help="Lever R")
    args = parser.parse_args(argv)
    ok = True
    print(f"{'figure':<52} {'requests':>8} {'budget':>7} {'naive':>7} {'ratio':>6}  verdict")
    gh = run_greenhouse(args.gh, args.private, window=args.window)
    naive = naive_greenhouse(args.gh, args.private)["requests"]
    ok &= gh["requests"] <= gh["budget"] and gh["throttled"] == 0 and gh["events"] == args.gh
    print(_row(f"Greenhouse first poll, R={args.gh}, {gh['private_candidates']} private",
               gh["requests"], gh["budget"], naive,
               f"{gh['forbidden']} × 403, {gh['throttled']} × 429, {gh['seconds']} s, "
               f"{gh['events']} events ({gh['private_events']} private)"))
    ok &= gh["no_news_requests"] <= 3 and gh["no_news_events"] == 0
    print(_row("Greenhouse poll right after (new process, 0 new)", gh["no_news_requests"], 3,
               "-", f"{gh['no_news_events']} events, {gh['no_news_throttled']} × 429"))
    inside = run_greenhouse_no_news_inside_overlap(args.gh, args.window)
    print(f"  the same with the burst inside the 2-minute overlap: {inside['requests']} "
          f"requests ({inside['listing_pages']} listing pages read again, "
          f"{inside['looked_up']} candidate look-ups, {inside['skipped_known']} known skipped)")
    expired = run_greenhouse_expired_cursor(1000, args.window)
    ok &= expired["events"] == 1000 and expired["expired"] == 1
    print(f"  an expired cursor (R=1000): {expired['expired']} × 422, all "
          f"{expired['events']} detected after one restart; report: {expired['problems']}")
    lever = run_lever(args.lever)
    naive = naive_lever(args.lever)["requests"]
    ok &= lever["requests"] <= lever["budget"] and lever["throttled"] == 0
    print(_row(f"Lever poll + re-check, R={args.lever}", lever["requests"], lever["budget"],
               naive, f"poll {lever['poll_requests']} + re-check {lever['recheck_requests']}, "
               f"{lever['single_reads']} single reads, {lever['throttled']} × 429, "
               f"{lever['seconds']} s"))
    print(f"\nall rows {'PASS' if ok else 'FAIL'}; the naive anchor is counted without the rate "
          "limit; 429s are the stand-ins' refusals")
    print("reproduce: .venv/bin/python bench/connectors.py" +
          (f" --window {args.window:g}" if args.window != 30 else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
