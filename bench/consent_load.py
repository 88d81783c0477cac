"""Consent pages at a fixed rate, open loop, from this process to `career-relay serve`
running as a child process on a SQLite store (issue 14 item 4).

Each simulated candidate opens the invitation link (GET /r/{token} → 303), loads the page
(GET /relay → 200) and consents to one agency (POST /relay/consent → 303), with its own
session cookie and CSRF token. Candidates start open loop at `rate / 3` per second (the first
request's latency counts from its due time), so the server sees about `rate` requests per
second. GET /healthz at the same rate on the same server is the anchor. Targets: p99 < 20 ms
at 100 req/s and < 100 ms at 300 req/s, no errors. Bounded by --seconds.

    python bench/consent_load.py --rate 100 --seconds 20
    python bench/consent_load.py --rate 300 --seconds 20 --workers 2

`measure_consent(rate, seconds, workers)` returns the figures as a dict (bench/compare.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402

AGENCIES = [
    {"id": "agency-a", "legal_name": "株式会社エージェントA", "address": "東京都港区芝公園4-2-8",
     "representative": "代表取締役 佐藤一郎", "country": "JP", "licence_number": "13-ユ-000000",
     "deletion_contact": "privacy@agency-a.example", "channel": "email",
     "email": "intake@agency-a.example", "retention": "ご登録から2年間",
     "fields": ["name", "email", "desired_role", "location", "message"]},
    {"id": "agency-b", "legal_name": "Global Talent Partners Pte. Ltd.",
     "address": "1 Example Street, Singapore", "representative": "Jane Doe, CEO",
     "country": "SG", "deletion_contact": "privacy@agency-b.example",
     "fields": ["name", "email"]},
]


def config_data(folder: Path, base: str) -> dict[str, Any]:
    return {
        "company": {"name": "株式会社サンプル", "legal_name": "株式会社サンプル",
                    "address": "東京都千代田区丸の内1-1-1", "representative": "代表取締役 山田太郎",
                    "privacy_policy_url": "https://example.co.jp/privacy"},
        "store": {"url": f"sqlite:///{folder / 'relay.db'}"},
        "mail": {"transport": "file", "outbox_dir": str(folder / "outbox")},
        "relay": {"public_base_url": base},
        "agencies": AGENCIES,
    }


def prepare(folder: Path, base: str, count: int) -> list[str]:
    """`count` sent cases, each with a consent link; returns the tokens."""
    from relay_core.config import parse_config
    from relay_core.models import Category, Person, RejectionEvent
    from relay_core.records.consent import tokens
    from relay_core.store import open_store, utcnow

    config = parse_config(config_data(folder, base), folder)
    store = open_store(config.store_url)
    now = utcnow()
    out = []
    with store.begin() as conn:
        key = tokens.signing_key(config, conn)
        for i in range(count):
            event = RejectionEvent(
                ats="bench", source="bench", application_id=str(i), candidate_id=f"c{i}",
                person=Person(last_name="山田", first_name=f"太郎{i}", full_name=f"山田 太郎{i}",
                              emails=[f"cand{i}@example.com"], language="ja"),
                job_title="法人営業", stage="1次面接", category=Category.WE_REJECTED,
                rejected_at=datetime.now(UTC) - timedelta(days=1))
            case_id = store.insert_case(conn, event, email=f"cand{i}@example.com",
                                        language="ja", now=now, actor="bench")
            out.append(tokens.mint(conn, key, case_id, "consent", timedelta(days=30), now))
    store.engine.dispose()
    return out


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TEXT = re.compile(r'name="text_sha256" value="([0-9a-f]{64})"')


async def candidate(pool: loadgen.Pool, i: int, due: float, result: loadgen.Result,
                    tokens: list[str], base: str) -> None:
    """One candidate: invitation link, page, consent. The first request is timed from its
    due time (open loop); the next two from when the candidate sends them."""
    loop = asyncio.get_running_loop()

    async def timed(kind: str, request: bytes, expect: int, since: float) -> loadgen.Reply | None:
        reply = await pool.send(request)
        result.add(kind, (loop.time() - since) * 1000)
        if reply.status != expect:
            result.errors.append(f"{kind}: HTTP {reply.status}")
            return None
        return reply

    first = await timed("GET /r/{token}", loadgen.http_request("GET", f"/r/{tokens[i]}"), 303,
                        due)
    if first is None:
        return
    cookie = first.headers["set-cookie"].split(";", 1)[0]
    page = await timed("GET /relay", loadgen.http_request("GET", "/relay", headers={
        "Cookie": cookie}), 200, loop.time())
    if page is None:
        return
    html = page.body.decode()
    form = urlencode({"csrf": CSRF.search(html).group(1),
                      "text_sha256": TEXT.search(html).group(1), "lang": "ja",
                      "agency": "agency-a", "desired_role": "法人営業"}).encode()
    await timed("POST /relay/consent", loadgen.http_request("POST", "/relay/consent", form, {
        "Cookie": cookie, "Origin": base,
        "Content-Type": "application/x-www-form-urlencoded"}), 303, loop.time())


def measure_consent(rate: float, seconds: float, workers: int = 1) -> dict:
    """Candidates at `rate / 3` per second (about `rate` requests per second) for `seconds`,
    open loop, against a fresh `serve` on SQLite; the /healthz anchor at `rate` first."""
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        folder = Path(tmp)
        port = loadgen.free_port()
        base = f"http://127.0.0.1:{port}"
        flows = int(rate / 3 * seconds)
        tokens = prepare(folder, base, flows + 10)
        # `serve` needs a source; a webhook-only one polls nothing during the run.
        os.environ.setdefault("BENCH_GH_SECRET", "bench-secret")
        os.environ.setdefault("BENCH_GH_WEBHOOK", "bench-webhook-secret")
        data = {**config_data(folder, base), "web": {"host": "127.0.0.1", "port": port,
                                                      "cycle_minutes": 60},
                "admin": {"enabled": False},
                "sources": [{"name": "gh", "type": "greenhouse", "mode": "webhook",
                             "client_id": "bench", "client_secret": "env:BENCH_GH_SECRET",
                             "user_id": 1, "webhook_secret": "env:BENCH_GH_WEBHOOK"}]}
        config = folder / "bench.toml"
        config.write_text(loadgen.toml_dumps(data), encoding="utf-8")
        extra = ["--workers", str(workers)] if workers > 1 else []
        server = loadgen.start_serve(config, port, folder / "serve.log", extra)
        try:
            anchor = loadgen.healthz(port, rate, min(seconds, 10))

            def flow(warm: list[str]):
                async def run(pool, i, due, result):
                    await candidate(pool, i, due, result, warm, base)
                return run

            asyncio.run(loadgen.open_loop(port, 10, 10, flow(tokens[-10:])))     # warm-up
            result = asyncio.run(loadgen.open_loop(port, flows, rate / 3, flow(tokens)))
        finally:
            loadgen.stop_serve(server)
        log = (folder / "serve.log").read_text(errors="replace").splitlines()
        server_errors = sorted({line.strip()[:200] for line in log
                                if "Error" in line and not line.startswith(" ")})[:5]
    requests = sum(len(v) for v in result.latencies.values())
    return {"what": "consent pages", "db": "sqlite", "rate": rate, "seconds": seconds,
            "workers": workers, "requests": requests,
            "achieved_rate": round(requests / result.seconds, 1),
            "errors": len(result.errors), "error_kinds": sorted(set(result.errors)),
            **loadgen.summary(result.every()),
            "by_request": {k: loadgen.summary(v) for k, v in result.latencies.items()},
            "healthz": anchor, "server_errors": server_errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100, help="requests per second in total")
    parser.add_argument("--seconds", type=float, default=20, help="length of the run (bounded)")
    parser.add_argument("--workers", type=int, default=1, help="`serve --workers`")
    args = parser.parse_args()
    r = measure_consent(args.rate, min(args.seconds, 120), args.workers)
    target = 20 if args.rate <= 100 else 100
    print(f"consent pages, open loop from a separate process at {args.rate:g} req/s for "
          f"{r['seconds']:g} s; `career-relay serve --workers {args.workers}` on SQLite")
    print(f"{r['requests']} requests = {r['achieved_rate']} req/s; errors: {r['errors']} "
          f"{r['error_kinds'] or ''}")
    print(f"{'request':22} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, s in [*r["by_request"].items(), ("all", r)]:
        print(f"{kind:22} {s['n']:5d} {s['p50_ms']:8.1f} {s['p99_ms']:8.1f} {s['max_ms']:8.1f}")
    h = r["healthz"]
    print(f"{'anchor GET /healthz':22} {h['n']:5d} {h['p50_ms']:8.1f} {h['p99_ms']:8.1f} "
          f"{h['max_ms']:8.1f}")
    for line in r["server_errors"]:
        print(f"server: {line}")
    print(f"target: p99 < {target} ms, no errors")
    print(f"reproduce: python bench/consent_load.py --rate {args.rate:g} --seconds "
          f"{r['seconds']:g} --workers {args.workers}")
    return 0 if not r["errors"] and r["p99_ms"] < target else 1


if __name__ == "__main__":
    raise SystemExit(main())
