"""Requests per Greenhouse poll, and no 429 for a 5,000-rejection backlog.

Runs the real connector against a local Harvest v3 stand-in on 127.0.0.1 that follows the v3
documentation (see tests/connectors/cassettes/test_greenhouse/README.md): OAuth token
endpoint, bare-array lists, `Link: <…?cursor=…>; rel="next"` with the cursor as the only
allowed parameter (anything else → 422), ids filters of at most 50 (more → 422), a fixed
rate-limit window with X-RateLimit-Limit/-Remaining/-Reset and 429 + Retry-After.

    .venv/bin/python bench/greenhouse_poll.py                 # real 75 per 30 s window (~90 s)
    .venv/bin/python bench/greenhouse_poll.py --window 3      # same limit per 3 s (quick)
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay_core.connectors.greenhouse import Greenhouse  # noqa: E402
from relay_core.connectors.http import RateLimit  # noqa: E402

from relay_core.config import parse_config  # noqa: E402

REASONS = [{"id": 8, "name": "Lacking skills", "type": {"id": 1, "key": "WE_REJECTED_THEM",
                                                        "name": "We rejected them"}}]
JOBS_IN_USE = 20


class HarvestV3:
    """The state of the stand-in: R rejected applications and the rate-limit window."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.apps: list[dict] = []
        self.lock = threading.Lock()
        self.window_start = time.time()
        self.used = 0
        self.requests = 0
        self.throttled = 0

    def load(self, count: int) -> None:
        now = datetime.now(UTC)
        rejected = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.apps = [{"id": 10_000_000 + i, "candidate_id": 20_000_000 + i,
                      "job_id": 500 + i % JOBS_IN_USE, "status": "rejected", "prospect": False,
                      "rejected_at": rejected, "updated_at": rejected, "rejection_reason_id": 8,
                      "stage_name": "Interview"} for i in range(count)]
        self.apps.sort(key=lambda a: -a["id"])       # v3 orders by id, descending [S21]

    def admit(self) -> tuple[bool, dict[str, str]]:
        with self.lock:
            self.requests += 1
            now = time.time()
            if now - self.window_start >= self.window:
                self.window_start, self.used = now, 0
            reset = self.window_start + self.window
            allowed = self.used < self.limit
            if allowed:
                self.used += 1
            else:
                self.throttled += 1
            headers = {"X-RateLimit-Limit": str(self.limit),
                       "X-RateLimit-Remaining": str(max(0, self.limit - self.used)),
                       "X-RateLimit-Reset": str(math.ceil(reset))}
            if not allowed:
                headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            return allowed, headers


def handler_for(api: HarvestV3):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):     # quiet
            pass

        def reply(self, status: int, body, headers: dict[str, str] | None = None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/token":
                with api.lock:
                    api.requests += 1
                return self.reply(200, {"access_token": "bench-token", "token_type": "Bearer",
                                        "expires_in": 3600})
            self.reply(404, {"message": "not found"})

        def do_GET(self):
            allowed, headers = api.admit()
            if not allowed:
                return self.reply(429, {"message": "Rate limit exceeded"}, headers)
            if self.headers.get("Authorization") != "Bearer bench-token":
                return self.reply(401, {"message": "Unauthorized"}, headers)
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            ids = [x for x in (query.get("ids") or query.get("application_ids")
                               or query.get("candidate_ids") or query.get("job_ids")
                               or "").split(",") if x]
            if len(ids) > 50:
                return self.reply(422, {"message": "at most 50 ids"}, headers)
            if url.path == "/v3/applications" and "candidate_ids" in query:
                return self.reply(200, [], headers)     # nobody in process elsewhere
            if url.path == "/v3/applications":
                return self.applications(query, headers)
            if url.path == "/v3/job_posts":
                return self.reply(200, [{"id": 9000 + int(i), "job_id": int(i),
                                         "title": f"Public title {i}", "language": "ja",
                                         "internal": False, "live": True, "active": True}
                                        for i in ids], headers)
            if url.path == "/v3/candidates":
                return self.reply(200, [{"id": int(i), "first_name": "Bench",
                                         "last_name": f"Person {i}", "can_email": True,
                                         "private": False, "email_addresses": [{
                                             "value": f"c{i}@example.com", "type": "personal"}]}
                                        for i in ids], headers)
            if url.path == "/v3/rejection_details":
                by_id = {str(a["id"]): a for a in api.apps}
                return self.reply(200, [{"id": int(i) + 1, "application_id": int(i),
                                         "rejection_reason_id": 8,
                                         "rejected_at": by_id[i]["rejected_at"]}
                                        for i in ids if i in by_id], headers)
            if url.path == "/v3/rejection_reasons":
                return self.reply(200, REASONS, headers)
            if url.path == "/v3/jobs":
                return self.reply(200, [{"id": int(i), "name": f"Job {i}"} for i in ids],
                                  headers)
            self.reply(404, {"message": "not found"}, headers)

        def applications(self, query: dict[str, str], headers: dict[str, str]):
            if "cursor" in query:
                if len(query) > 1:         # v3: the cursor must be the only parameter [S12]
                    return self.reply(422, {"message": "cursor must be alone"}, headers)
                state = json.loads(base64.urlsafe_b64decode(query["cursor"]))
                offset, per_page = state["offset"], state["per_page"]
            else:
                offset, per_page = 0, min(500, int(query.get("per_page", 100)))
            rows = api.apps[offset:offset + per_page]
            if offset + per_page < len(api.apps):
                token = base64.urlsafe_b64encode(json.dumps(
                    {"offset": offset + per_page, "per_page": per_page}).encode()).decode()
                host = self.headers.get("Host")
                headers = {**headers,
                           "Link": f'<http://{host}/v3/applications?cursor={token}>; rel="next"'}
            self.reply(200, rows, headers)

    return Handler


def connector_for(base: str, window: float) -> Greenhouse:
    os.environ.setdefault("BENCH_GH_SECRET", "bench-secret")
    config = parse_config({"sources": [{
        "name": "gh", "type": "greenhouse", "mode": "poll", "client_id": "bench",
        "client_secret": "env:BENCH_GH_SECRET", "user_id": 1, "base_url": base,
        "auth_url": base}]}, Path("."))
    connector = Greenhouse(config.sources[0], config, 0)
    if window != 30:   # scale the declared limit with the stand-in's window
        connector.limiter.limit = RateLimit(requests=75, per_seconds=window)
    return connector


def bound(r: int) -> int:
    """The budget: ceil(R/500) listing pages + 2·ceil(R/50) (candidates, and their other
    active applications) + 3 (token, rejection reasons, job posts)."""
    return math.ceil(r / 500) + 2 * math.ceil(r / 50) + 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0,
                        help="rate-limit window of the stand-in in seconds (75 per window)")
    args = parser.parse_args()
    api = HarvestV3(limit=75, window=args.window)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"stand-in Harvest v3 on {base}: 75 requests per {args.window:g} s fixed window")
    print(f"{'R':>6} {'requests':>9} {'budget':>7} {'events':>7} {'429s':>5} {'seconds':>8}")
    try:
        for r in (0, 50, 5000):
            api.load(r)
            connector = connector_for(base, args.window)
            throttled_before = api.throttled
            started = time.monotonic()
            events = sum(len(p.events) for p in connector.poll(None))
            took = time.monotonic() - started
            print(f"{r:>6} {connector.request_count:>9} {bound(r):>7} {events:>7} "
                  f"{api.throttled - throttled_before:>5} {took:>8.1f}")
            if r == 0:
                connector.request_count = 0
                list(connector.poll(None))
                print(f"{'0*':>6} {connector.request_count:>9} {3:>7} {0:>7} {0:>5}   "
                      "(* second poll: token and the hourly visibility look-up cached)")
            connector.close()
        print(f"429 responses in total: {api.throttled}")
    finally:
        server.shutdown()
    print("reproduce: .venv/bin/python bench/greenhouse_poll.py" +
          (f" --window {args.window:g}" if args.window != 30 else ""))


if __name__ == "__main__":
    main()
