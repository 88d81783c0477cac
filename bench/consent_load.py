"""Consent pages under concurrent load on loopback, with the SQLite store.

Each simulated candidate opens the invitation link (GET /r/{token} → 303), loads the page
(GET /relay → 200) and consents to one agency (POST /relay/consent → 303), with its own
session cookie and CSRF token. Candidates start open-loop at `rate / 3` per second, so the
server sees about `rate` requests per second in total, several in flight at once. The server
is `career-relay serve`'s app under uvicorn in a separate process; latency is measured by the
client from sending a request to reading the whole response. Bounded by --seconds.

    .venv/bin/python bench/consent_load.py --rate 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def serve(folder: str, base: str, port: int) -> None:
    import uvicorn

    from relay_core.config import parse_config
    from relay_core.store import open_store
    from relay_core.web.app import create_app

    config = parse_config(config_data(Path(folder), base), Path(folder))
    app = create_app(config, open_store(config.store_url), {})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                server_header=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TEXT = re.compile(r'name="text_sha256" value="([0-9a-f]{64})"')


async def candidate(client, base: str, token: str, timings: dict[str, list[float]],
                    errors: list[str]) -> None:
    async def timed(kind: str, method: str, url: str, expect: int, **kw):
        start = time.perf_counter()
        response = await client.request(method, url, **kw)
        await response.aread()
        timings[kind].append((time.perf_counter() - start) * 1000)
        if response.status_code != expect:
            errors.append(f"{kind}: HTTP {response.status_code}")
            return None
        return response

    try:
        first = await timed("GET /r/{token}", "GET", f"{base}/r/{token}", 303)
        if first is None:
            return
        cookie = first.headers["set-cookie"].split(";", 1)[0]
        page = await timed("GET /relay", "GET", f"{base}/relay", 200,
                           headers={"cookie": cookie})
        if page is None:
            return
        html = page.text
        form = {"csrf": CSRF.search(html).group(1), "text_sha256": TEXT.search(html).group(1),
                "lang": "ja", "agency": "agency-a", "desired_role": "法人営業"}
        await timed("POST /relay/consent", "POST", f"{base}/relay/consent", 303, data=form,
                    headers={"cookie": cookie, "origin": base})
    except Exception as exc:  # a timeout or a refused connection: count it, keep going
        errors.append(type(exc).__name__)


async def load(base: str, tokens: list[str], rate: float, seconds: float
               ) -> tuple[dict[str, list[float]], list[str], float]:
    import httpx

    timings: dict[str, list[float]] = {"GET /r/{token}": [], "GET /relay": [],
                                       "POST /relay/consent": []}
    errors: list[str] = []
    flows = min(len(tokens), int(rate / 3 * seconds))
    interval = 3 / rate
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    # One pooled client; each candidate's session travels in its own explicit Cookie header,
    # which takes precedence over the client's shared jar.
    async with httpx.AsyncClient(timeout=5, limits=limits, follow_redirects=False) as client:
        tasks = []
        start = time.perf_counter()
        for i in range(flows):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(candidate(client, base, tokens[i], timings,
                                                       errors)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return timings, errors, elapsed


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100, help="requests per second in total")
    parser.add_argument("--seconds", type=float, default=20, help="length of the run (bounded)")
    args = parser.parse_args()
    seconds = min(args.seconds, 120)
    with tempfile.TemporaryDirectory(prefix="consent-bench-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        count = int(args.rate / 3 * seconds) + 10
        tokens = prepare(Path(tmp), base, count)
        ctx = multiprocessing.get_context("spawn")
        server = ctx.Process(target=serve, args=(tmp, base, port), daemon=True)
        server.start()
        try:
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    print("server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            # Warm-up: compile templates, fill the connection pool.
            asyncio.run(load(base, tokens[-5:], 10, 1))
            timings, errors, elapsed = asyncio.run(load(base, tokens[:-5], args.rate, seconds))
        finally:
            server.terminate()
            server.join(10)
    total = sum(len(v) for v in timings.values())
    every = [x for v in timings.values() for x in v]
    print(f"consent pages on loopback, SQLite store, one uvicorn worker; target {args.rate:g} "
          f"req/s for {seconds:g} s")
    print(f"{total} requests in {elapsed:.1f} s = {total / elapsed:.1f} req/s; "
          f"errors: {len(errors)}" + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
    print(f"{'request':22} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in [*timings.items(), ("all", every)]:
        print(f"{kind:22} {len(values):5d} {statistics.median(values) if values else 0:8.1f} "
              f"{pct(values, 99):8.1f} {max(values, default=0):8.1f}")
    print(f"reproduce: .venv/bin/python bench/consent_load.py --rate {args.rate:g} "
          f"--seconds {seconds:g}")
    return 0 if not errors and pct(every, 99) < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
