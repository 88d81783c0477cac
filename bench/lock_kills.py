"""SIGKILL `career-relay run` at random moments and count the rounds in which the next run was
blocked by the dead run's lock (issue 13, point 3: it used to be more than half of them).

    python bench/lock_kills.py --rounds 30                      # SQLite
    python bench/lock_kills.py --rounds 30 --pg postgresql+psycopg://postgres@127.0.0.1/test

Each round copies the shipped example (4 emails due at --now) into a fresh database, starts
`run` against a real aiosmtpd that takes 0.5 s per message, kills it after a random 1-4 s,
then starts the next run at once and records its exit code (75 = blocked) and whether the
killed run had left its lock behind.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW = "2025-06-23T11:00:00+09:00"


class Sink:
    async def handle_DATA(self, server, session, envelope):
        import asyncio

        await asyncio.sleep(0.5)
        return "250 OK"


def config_for(folder: Path, url: str, port: int) -> Path:
    (folder / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", folder / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for old, new in (('url = "sqlite:///examples/career-relay.db"', f'url = "{url}"'),
                     ('transport = "file"', 'transport = "smtp"'),
                     ('host = "smtp.example.co.jp"', 'host = "127.0.0.1"'),
                     ("port = 587", f"port = {port}"),
                     ('security = "starttls"', 'security = "none"\nconnections = 1'),
                     ('username = "relay@example.co.jp"', 'username = ""'),
                     ('password = "env:CAREER_RELAY_SMTP_PASSWORD"', "")):
        text = text.replace(old, new, 1)
    path = folder / "career-relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def installed(url: str) -> None:
    """An installation polling since 2000, so the example's rejections are mailed."""
    from datetime import UTC, datetime

    from relay_core.store import installs, open_store

    store = open_store(url)
    with store.begin() as conn:
        installs.record_installed(conn, "hrmos", datetime(2000, 1, 1, tzinfo=UTC))
    store.engine.dispose()


def run(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", "run", "--config",
                             str(config), "--now", NOW], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def main() -> None:
    from sqlalchemy import create_engine

    from tests.smtp import EphemeralController

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pg", default="", help="a PostgreSQL URL (a schema per round)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    controller = EphemeralController(Sink(), hostname="127.0.0.1", port=0)
    controller.start()
    blocked, killed_holding, codes = 0, 0, []
    started = time.monotonic()
    try:
        for _ in range(args.rounds):
            folder = Path(tempfile.mkdtemp(prefix="lock-kills-"))
            if args.pg:
                schema = f"k_{uuid.uuid4().hex[:10]}"
                with create_engine(args.pg, isolation_level="AUTOCOMMIT").connect() as c:
                    c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                url = f"{args.pg}?options=-csearch_path%3D{schema}"
            else:
                url = f"sqlite:///{folder / 'relay.db'}"
            config = config_for(folder, url, controller.port)
            installed(url)
            victim = run(config)
            time.sleep(rng.uniform(1, 4))   # start-up takes about 1.5 s of it
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            from relay_core.store import open_store  # noqa: I001

            store = open_store(url)
            with store.engine.connect() as conn:
                held = conn.exec_driver_sql("SELECT count(*) FROM locks").scalar_one()
            store.engine.dispose()
            killed_holding += bool(held)
            nxt = run(config)
            _, errors = nxt.communicate(timeout=120)
            codes.append(nxt.returncode)
            blocked += nxt.returncode == 75
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        controller.stop()
    print(f"rounds: {args.rounds} on {'PostgreSQL' if args.pg else 'SQLite'}; killed while "
          f"holding the lock: {killed_holding}; next run blocked (exit 75): {blocked}; "
          f"next run exit codes: { {c: codes.count(c) for c in sorted(set(codes))} }; "
          f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
