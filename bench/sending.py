"""Sending throughput and memory: the product against a plain render-and-send loop, same run.

(a) the product: N rejections in an HRMOS export are ingested by a first `career-relay run`
    (a new installation skips that backlog), opted in with `backfill --yes`, and then mailed by
    a second `run`: re-check, render, build, queue, deliver over SMTP with its exactly-once
    steps, record. That second run is timed end to end, process start included.
(b) the anchor: render the same templates with the same context, build an `EmailMessage`,
    `smtplib.send_message` over 4 connections, nothing recorded.

Both go to one aiosmtpd sink in its own process, and both run as child processes so each
peak RSS (ru_maxrss) is its own.

    /work/main/.venv/bin/python bench/sending.py --rows 100000            # SQLite
    /work/main/.venv/bin/python bench/sending.py --rows 10000 --db postgresql
    from sending import measure_sending; measure_sending(100_000, "sqlite")  # bench/compare.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import CONNECTIONS, NOW, SINK, free_port, write_config, write_export  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("CR_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

ANCHOR = """
import smtplib, sys, threading, time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from relay_core.config import load_config
from relay_core.rendering.emails import Renderer, build_context, template_names
config = load_config(sys.argv[1]); port = int(sys.argv[2]); rows = int(sys.argv[3])
renderer = Renderer(config); kind = template_names("rejection", mode=config.mail.mode)
now = datetime.now(timezone.utc)

def one(i, smtp):
    lang = "en" if i % 5 == 0 else "ja"
    name = f"Candidate {i}" if lang == "en" else f"山田 太郎{i}"
    ctx = build_context(config, display_name=name, last_name="", first_name="",
                        job_title="法人営業_中途", stage="1次面接",
                        invitation_url=f"https://relay.example.co.jp/r/token{i}",
                        invitation_expires=now, language=lang)
    r = renderer.render(kind, lang, ctx)
    msg = EmailMessage()
    msg["From"] = config.company.sender
    msg["To"] = f"cand{i}@example.com"
    msg["Subject"] = r.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="example.co.jp")
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    smtp.send_message(msg)

def worker(k):
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(k, rows, CONNECTIONS):
            one(i, smtp)

threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONNECTIONS)]
for t in threads: t.start()
for t in threads: t.join()
""".replace("CONNECTIONS", str(CONNECTIONS))

SINK_COUNTING = SINK.replace("""try:
    sys.stdin.read()""", """try:
    for _ in sys.stdin:
        print(Count.n, flush=True)""")


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (the build helper), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def _child(argv: list[str], log: Path, cwd: Path) -> tuple[float, float, float]:
    """Wall time (s), peak RSS (MB, ru_maxrss of the process itself) and the peak of its
    process tree's RSS (MB, sampled every 50 ms: the process plus its build helper) of one
    child process; exits with its log on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    tree = 0.0
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, cwd=cwd, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)   # its own rusage once reaped
            if pid:
                break
            tree = max(tree, _tree_rss_mb(proc.pid))
            time.sleep(0.05)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{argv[1:3]} failed: {log.read_text(errors='replace')[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, tree


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "relay_core.commands.cli", *args]


def _pg_database(name: str, create: bool) -> None:
    import sqlalchemy
    engine = sqlalchemy.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()


def measure_sending(rows: int, db: str = "sqlite", *, anchor: bool = True) -> dict:
    """Emails/s and peak RSS of the product's sending run and of the plain loop (same sink,
    same run). Keys: rows, db, received, product_s, product_per_s, product_rss_mb,
    product_tree_mb (with the build helper process), ingest_s,
    anchor_s, anchor_per_s, anchor_rss_mb, ratio, load."""
    result: dict = {"rows": rows, "db": db}
    pg_name = f"bench_send_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = work / "bench.log"
        write_export(work / "export.tsv", rows)
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK_COUNTING, str(port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def received() -> int:
            sink.stdin.write("\n")
            sink.stdin.flush()
            return int(sink.stdout.readline())

        if db == "postgresql":
            _pg_database(pg_name, create=True)
            url = f"{PG_URL}/{pg_name}"
        else:
            url = "sqlite:///relay.db"
        try:
            time.sleep(1.0)
            config = str(write_config(work, port, url))
            common = ["--config", config, "--now", NOW]
            result["ingest_s"], _, _ = _child(_cli("run", *common, "--json"), log, work)
            _child(_cli("backfill", "--since", "2025-06-01", "--yes", *common), log, work)
            before = received()
            result["load"] = os.getloadavg()[0]
            result["product_s"], result["product_rss_mb"], result["product_tree_mb"] = _child(
                _cli("run", *common, "--json"), log, work)
            result["received"] = received() - before
            result["product_per_s"] = result["received"] / result["product_s"]
            if anchor:
                before = received()
                result["anchor_s"], result["anchor_rss_mb"], _ = _child(
                    [sys.executable, "-c", ANCHOR, config, str(port), str(rows)], log, work)
                result["anchor_received"] = received() - before
                result["anchor_per_s"] = result["anchor_received"] / result["anchor_s"]
                result["ratio"] = result["product_per_s"] / result["anchor_per_s"]
        finally:
            sink.stdin.close()
            sink.wait()
            if db == "postgresql":
                _pg_database(pg_name, create=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-anchor", action="store_true", help="only the product")
    args = parser.parse_args()
    r = measure_sending(args.rows, args.db, anchor=not args.no_anchor)
    print(f"rows / db:            {r['rows']} / {r['db']}  (load average {r['load']:.2f})")
    print(f"ingest run:           {r['ingest_s']:.1f} s (not counted)")
    print(f"product sending run:  {r['received']} emails in {r['product_s']:.1f} s = "
          f"{r['product_per_s']:.0f} emails/s end to end")
    print(f"  peak RSS:           {r['product_rss_mb']:.0f} MB (the run process), "
          f"{r['product_tree_mb']:.0f} MB with its build helper (sampled)")
    if "anchor_s" in r:
        print(f"plain loop ({CONNECTIONS} conns):  {r['anchor_received']} emails in "
              f"{r['anchor_s']:.1f} s = {r['anchor_per_s']:.0f} emails/s, "
              f"peak RSS {r['anchor_rss_mb']:.0f} MB")
        print(f"ratio product/plain:  {r['ratio']:.2f}")
    print(f"reproduce:            /work/main/.venv/bin/python bench/sending.py --rows {r['rows']}"
          f" --db {r['db']}")


if __name__ == "__main__":
    main()
