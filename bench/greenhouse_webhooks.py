"""Webhook bursts: signed Greenhouse `reject_candidate` deliveries at a fixed rate, open loop,
from this process to `career-relay serve` running as a child process (issue 14 item 3).

The server is the real command (uvicorn, the cycle thread, the inbox writer and processor) on a
fresh SQLite file or a fresh PostgreSQL database. Each delivery is signed like Greenhouse
(`Signature: sha256 <hex HMAC of the raw body>`, a unique `Greenhouse-Event-ID`) before the
clock starts. Printed: acknowledgement latency p50/p99/max from each delivery's due time,
errors, how many deliveries the inbox holds (every 200 must be there), how long processing
took to turn them all into cases, and GET /healthz at the same rate on the same server as the
anchor. Targets: 500/s for 20 s with p99 < 100 ms, 100/s with p99 < 20 ms, none lost.

    python bench/greenhouse_webhooks.py --rate 500 --seconds 20
    python bench/greenhouse_webhooks.py --rate 100 --seconds 20 --db postgresql

`measure_webhooks(rate, seconds, db)` returns the figures as a dict (for bench/compare.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import loadgen  # noqa: E402

SECRET = "bench-webhook-secret"
PG_SERVER = os.environ.get("CR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


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
        # No `jobs`: a job would make processing ask Greenhouse for its public title (once
        # per job), and this bench has no Greenhouse to ask.
        "jobs": []}}}).encode()


def signed(i: int) -> bytes:
    body = body_for(i)
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return loadgen.http_request("POST", "/webhooks/greenhouse/gh", body, {
        "Signature": f"sha256 {signature}", "Greenhouse-Event-ID": f"bench-{i}",
        "Content-Type": "application/json"})


def write_config(folder: Path, url: str, port: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(f"""
[store]
url = "{url}"
[web]
host = "127.0.0.1"
port = {port}
cycle_minutes = 60
[admin]
enabled = false
[schedule]
delay_hours = 24
[[sources]]
name = "gh"
type = "greenhouse"
mode = "webhook"
client_id = "bench"
client_secret = "env:BENCH_GH_SECRET"
user_id = 1
webhook_secret = "env:BENCH_GH_WEBHOOK"
""", encoding="utf-8")
    return path


class Database:
    """A fresh SQLite file in `folder`, or a fresh PostgreSQL database dropped afterwards."""

    def __init__(self, kind: str, folder: Path):
        self.kind = kind
        self.name = f"bench_webhooks_{os.getpid()}"
        if kind == "postgresql":
            self._admin(f"CREATE DATABASE {self.name}")
            self.url = f"{PG_SERVER}/{self.name}"
        else:
            self.url = f"sqlite:///{folder / 'relay.db'}"

    def _admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.kind == "postgresql":
            self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def counts(url: str) -> tuple[int, int, int]:
    """(rows in the inbox, of which processed, cases)."""
    from relay_core.store import inbox, open_store
    store = open_store(url, upgrade=False)
    try:
        with store.connect() as conn:
            by_outcome = inbox.counts(conn)
        cases = sum(store.counts_by_state().values())
    finally:
        store.engine.dispose()
    total = sum(by_outcome.values())
    return total, total - by_outcome.get("pending", 0), cases


def measure_webhooks(rate: float, seconds: float, db: str = "sqlite") -> dict:
    """Deliveries at `rate` per second for `seconds`, open loop, against a fresh `serve`."""
    os.environ.update({"BENCH_GH_SECRET": "unused", "BENCH_GH_WEBHOOK": SECRET})
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        folder = Path(tmp)
        database = Database(db, folder)
        port = loadgen.free_port()
        server = loadgen.start_serve(write_config(folder, database.url, port), port,
                                     folder / "serve.log")
        try:
            anchor = loadgen.healthz(port, rate, min(seconds, 10))
            requests = [signed(i) for i in range(count)]
            result = asyncio.run(loadgen.open_loop(port, count, rate, loadgen.fixed(
                requests, "webhook", 200)))
            acked = len(result.latencies.get("webhook", [])) - sum(
                e.startswith("webhook: HTTP") for e in result.errors)
            stored, processed, cases = counts(database.url)
            started = time.monotonic()
            while processed < stored and time.monotonic() - started < 300:
                time.sleep(0.5)
                stored, processed, cases = counts(database.url)
            drained = time.monotonic() - started
        finally:
            loadgen.stop_serve(server)
            database.drop()
    return {"what": "webhook acks", "db": db, "rate": rate, "seconds": seconds,
            "sent": result.sent, "acknowledged": acked, "errors": len(result.errors),
            "error_kinds": sorted(set(result.errors)), "stored": stored, "cases": cases,
            "processed_within_s": round(drained, 1), "achieved_rate": round(
                result.sent / result.seconds, 1), **loadgen.summary(result.every()),
            "healthz": anchor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    r = measure_webhooks(args.rate, min(args.seconds, 120), args.db)
    target = 100 if args.rate >= 500 else 20
    print(f"Greenhouse webhook deliveries at {args.rate:g}/s for {r['seconds']:g} s, open loop "
          f"from a separate process; `career-relay serve` on {args.db}")
    print(f"sent {r['sent']} (achieved {r['achieved_rate']}/s), acknowledged "
          f"{r['acknowledged']}, errors {r['errors']} {r['error_kinds'] or ''}")
    print(f"in the inbox {r['stored']}; cases after processing {r['cases']} "
          f"(all processed {r['processed_within_s']} s after the last ack)")
    print(f"ack latency ms: p50 {r['p50_ms']:.1f}  p99 {r['p99_ms']:.1f}  max {r['max_ms']:.1f}"
          f"   (target p99 < {target})")
    h = r["healthz"]
    print(f"anchor GET /healthz at the same rate: p50 {h['p50_ms']:.1f}  p99 {h['p99_ms']:.1f}"
          f"  max {h['max_ms']:.1f}")
    print(f"reproduce: python bench/greenhouse_webhooks.py --rate {args.rate:g} "
          f"--seconds {r['seconds']:g} --db {args.db}")
    ok = r["errors"] == 0 and r["stored"] == r["sent"] and r["p99_ms"] < target
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
