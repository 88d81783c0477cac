"""Requests per Lever poll, and no 429 for a 2,000-rejection backlog under 10 requests/s.

Runs the real connector against a local Lever Data API v1 stand-in on 127.0.0.1 that follows
the documentation (see tests/connectors/cassettes/test_lever/README.md): Basic auth with the key
as user name, `{"data", "next", "hasNext"}` lists of at most 100 (`limit` > 100 → 400), opaque
offset tokens bound to the query (another query → 400 "Invalid offset token"), the
`archived`/`archived_at_start`/`contact_id`/`expand` filters, and a rate limit of 10 requests in
any one-second window answered with 429 (no Retry-After: Lever documents none). That is stricter
than Lever's token bucket, which also allows bursts to 20 [DOC "Rate Limits"].

    .venv/bin/python bench/lever_poll.py                  # budget table, backlog, recheck 200
    .venv/bin/python bench/lever_poll.py --recheck 0      # skip the (≈25 s) recheck phase
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay_core.connectors.lever import Lever  # noqa: E402

from relay_core.config import parse_config  # noqa: E402
from relay_core.errors import RetriableError  # noqa: E402

KEY = "bench-key"
REASONS = [{"id": "r-under", "text": "Underqualified", "status": "active", "type": "non-hired"},
           {"id": "r-withdrew", "text": "Withdrew", "status": "active", "type": "non-hired"},
           {"id": "r-hired", "text": "Hired", "status": "active", "type": "hired"}]
POSTINGS = [{"id": f"p{i}", "text": f"Job {i}", "state": "published"} for i in range(20)]


class LeverV1:
    """The stand-in's state: R archived opportunities and a one-second sliding window."""

    def __init__(self, per_second: int = 10):
        self.per_second = per_second
        self.opps: list[dict] = []
        self.lock = threading.Lock()
        self.window: deque[float] = deque()
        self.requests = self.throttled = self.peak = 0

    def load(self, count: int) -> None:
        archived_at = int(time.time() * 1000) - 2 * 3600 * 1000
        self.opps = [{
            "id": f"opp-{i:05d}", "name": f"Bench Person {i}", "emails": [f"p{i}@example.com"],
            "contact": f"contact-{i:05d}", "origin": "applied",
            "confidentiality": "non-confidential", "isAnonymized": False,
            "dataProtection": None, "stage": "applicant-new",
            "archived": {"reason": "r-under", "archivedAt": archived_at - i},
            "applications": [f"app-{i:05d}"], "posting": f"p{i % 20}"} for i in range(count)]
        self.by_id = {o["id"]: o for o in self.opps}

    def admit(self) -> bool:
        with self.lock:
            self.requests += 1
            now = time.monotonic()
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= self.per_second:
                self.throttled += 1
                return False
            self.window.append(now)
            self.peak = max(self.peak, len(self.window))
            return True

    def expand(self, opp: dict, expand: list[str]) -> dict:
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


def handler_for(api: LeverV1):
    expected_auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):     # quiet
            pass

        def reply(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if not api.admit():
                return self.reply(429, {"code": "TooManyRequests", "message": "slow down"})
            if self.headers.get("Authorization") != expected_auth:
                return self.reply(401, {"code": "Unauthorized", "message": "bad key"})
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/v1/archive_reasons":
                return self.reply(200, {"data": REASONS, "hasNext": False})
            if url.path == "/v1/postings":
                return self.reply(200, {"data": POSTINGS, "hasNext": False})
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
            if "offset" in query:   # opaque, and only valid for the query that issued it
                offset, _, bound_to = query["offset"][0].partition(".")
                if bound_to != fingerprint[:16]:
                    return self.reply(400, {"code": "BadRequest",
                                            "message": "Invalid offset token"})
                start = int(offset)
            rows = api.opps
            if query.get("archived") == ["true"]:
                since = int(query.get("archived_at_start", ["0"])[0])
                rows = [o for o in rows if o["archived"]["archivedAt"] >= since]
            elif query.get("archived") == ["false"]:
                contacts = set(query.get("contact_id", []))
                rows = [o for o in rows if not o["archived"] and o["contact"] in contacts]
            elif "contact_id" in query:      # no `archived`: both states [DOC]
                contacts = set(query["contact_id"])
                rows = [o for o in rows if o["contact"] in contacts]
            page = [api.expand(o, query.get("expand", [])) for o in rows[start:start + limit]]
            more = start + limit < len(rows)
            body = {"data": page, "hasNext": more}
            if more:
                body["next"] = f"{start + limit}.{fingerprint[:16]}"
            self.reply(200, body)

    return Handler


def connector_for(base: str) -> Lever:
    os.environ.setdefault("BENCH_LEVER_KEY", KEY)
    config = parse_config({"sources": [{"name": "lever", "type": "lever",
                                        "api_key": "env:BENCH_LEVER_KEY", "base_url": base}]},
                          Path("."))
    return Lever(config.sources[0], config, 0)


def run(api: LeverV1, work) -> tuple[object, int, float, int]:
    """(result, 429s, seconds, peak requests in one second) of one phase."""
    time.sleep(1.05)                  # every phase starts with an empty server window
    throttled, api.peak = api.throttled, 0
    started = time.monotonic()
    try:
        result = work()
    except RetriableError as exc:
        result = exc
    return result, api.throttled - throttled, time.monotonic() - started, api.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recheck", type=int, default=200,
                        help="due cases re-checked in one batch (0 skips; 200 = SEND_BATCH)")
    args = parser.parse_args()
    api = LeverV1(per_second=10)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"stand-in Lever v1 on {base}: at most 10 requests in any 1 s window, else 429")
    print(f"{'R':>6} {'requests':>9} {'budget':>7} {'events':>7} {'429s':>5} "
          f"{'peak/s':>7} {'seconds':>8}")
    ok = True
    try:
        for r in (0, 1, 99, 100, 101, 250, 2000):
            api.load(r)
            connector = connector_for(base)
            events, throttled, took, peak = run(
                api, lambda c=connector: sum(len(p.events) for p in c.poll(None)))
            budget = math.ceil(r / 100) + math.ceil(r / 50) + 3
            ok &= connector.request_count <= budget and throttled == 0 and events == r
            print(f"{r:>6} {connector.request_count:>9} {budget:>7} {events:>7} "
                  f"{throttled:>5} {peak:>7} {took:>8.2f}")
        if args.recheck:
            ids = {o["id"]: o["contact"] for o in api.opps[:args.recheck]}
            connector = connector_for(base)
            states, throttled, took, peak = run(api, lambda: connector.recheck_cases(ids))
            ok &= isinstance(states, dict) and len(states) == len(ids)
            need = math.ceil(len(ids) / 50) + 2
            ok &= throttled == 0 and connector.request_count <= need
            print(f"\nrecheck of {len(ids)} due cases: {connector.request_count} requests "
                  f"(≤ {need}), {throttled} × 429, peak {peak}/s, {took:.1f} s "
                  f"({connector.request_count / took:.1f} req/s)")
            control = connector_for(base)
            control.limiter.limit = None      # the same burst without the client-side limiter
            result, throttled, took, _ = run(api, lambda: control.recheck(list(ids)[:60]))
            outcome = ("gave up (RetriableError)" if isinstance(result, RetriableError)
                       else "recovered by retries")
            print(f"control, limiter off, 60 re-checks: {throttled} × 429, {outcome} — the "
                  "stand-in does enforce the limit")
    finally:
        server.shutdown()
    print("\nbudget: poll requests ≤ ceil(R/100) + ceil(R/50) + 3 (listing pages, archive "
          "reasons, postings; still active elsewhere is asked at the re-check, per 50 people; "
          "bench/connectors.py counts poll plus re-check); "
          f"all rows {'PASS' if ok else 'FAIL'}")
    print("reproduce: .venv/bin/python bench/lever_poll.py")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
