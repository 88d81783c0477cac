"""Webhook burst: 500 signed `reject_candidate` deliveries to `career-relay serve`'s app.

Starts the real FastAPI app (uvicorn, 127.0.0.1, a temporary SQLite store) with a Greenhouse
source, sends 500 deliveries signed like Greenhouse (`Signature: sha256 <hex HMAC of the raw
body>`, a unique `Greenhouse-Event-ID`) from `--concurrency` client threads, and prints the
acknowledgement latency percentiles and how many cases were stored.

    .venv/bin/python bench/greenhouse_webhooks.py
    .venv/bin/python bench/greenhouse_webhooks.py --concurrency 1
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay_core.connectors.greenhouse import Greenhouse  # noqa: E402

from relay_core.config import parse_config  # noqa: E402
from relay_core.store import open_store  # noqa: E402
from relay_core.web.app import create_app  # noqa: E402

SECRET = "bench-webhook-secret"
DELIVERIES = 500


def body_for(i: int) -> bytes:
    rejected = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"action": "reject_candidate", "payload": {"application": {
        "id": 900_000 + i, "rejected_at": rejected, "prospect": False, "status": "rejected",
        "rejection_reason": {"id": 8, "name": "Lacking skills",
                             "type": {"id": 1, "name": "We rejected them"}},
        "current_stage": {"id": 1, "name": "Interview"},
        "candidate": {"id": 800_000 + i, "first_name": "ベンチ", "last_name": f"候補者{i}",
                      "is_private": False, "can_email": True,
                      "email_addresses": [{"value": f"c{i}@example.com", "type": "personal"}]},
        "jobs": [{"id": 371417, "name": "Designer", "confidential": False}]}}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    os.environ.update({"BENCH_GH_SECRET": "unused", "BENCH_GH_WEBHOOK": SECRET})
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({
            "store": {"url": f"sqlite:///{tmp}/bench.db"},
            "schedule": {"delay_hours": 24},
            "sources": [{"name": "gh", "type": "greenhouse", "mode": "webhook",
                         "client_id": "bench", "client_secret": "env:BENCH_GH_SECRET",
                         "user_id": 1, "webhook_secret": "env:BENCH_GH_WEBHOOK"}]}, Path(tmp))
        store = open_store(config.store_url)
        app = create_app(config, store, {"gh": Greenhouse(config.sources[0], config, 0)})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(100):              # bounded wait for start-up
            if server.started:
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/webhooks/greenhouse/gh"
        bodies = [body_for(i) for i in range(DELIVERIES)]
        local = threading.local()

        def send(i: int) -> tuple[float, int]:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            body = bodies[i]
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            response = session.post(url, data=body, timeout=10, headers={
                "Signature": f"sha256 {signature}", "Greenhouse-Event-ID": f"bench-{i}",
                "Content-Type": "application/json"})
            return (time.perf_counter() - started) * 1000, response.status_code

        send(0)                          # warm-up delivery (stored; counted below)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(send, range(1, DELIVERIES)))
        wall = time.perf_counter() - started
        server.should_exit = True
        thread.join(timeout=10)
        latencies = sorted(ms for ms, _ in results)
        statuses = {s for _, s in results}
        stored = sum(store.counts_by_state().values())
        store.engine.dispose()
    q = statistics.quantiles(latencies, n=100)
    print(f"{DELIVERIES} signed reject_candidate deliveries, {args.concurrency} concurrent "
          f"clients, uvicorn on 127.0.0.1, SQLite store")
    print(f"statuses {sorted(statuses)}; cases stored {stored}/{DELIVERIES}; "
          f"{(DELIVERIES - 1) / wall:.0f} deliveries/s")
    print(f"latency ms: p50 {q[49]:.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}  "
          f"max {latencies[-1]:.1f}")
    print("reproduce: .venv/bin/python bench/greenhouse_webhooks.py"
          + (f" --concurrency {args.concurrency}" if args.concurrency != 8 else ""))


if __name__ == "__main__":
    main()
