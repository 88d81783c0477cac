"""End-to-end throughput and memory of the main job.

N rejections in an HRMOS export → eligibility → scheduling → rendering → delivery over SMTP to
a local aiosmtpd server (a separate process) → recorded in SQLite. Each `career-relay run` is a
child process so its peak RSS is measured alone.

    .venv/bin/python bench/pipeline.py --rows 10000
    .venv/bin/python bench/pipeline.py --rows 100000

bench/sending.py measures the sending run against a plain render-and-send loop.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-23T11:00:00+09:00"
CONNECTIONS = 4   # SMTP connections, in the product and in the plain loop it is compared with
HEADER = ["応募ID", "選考ポジション名", "氏名", "メールアドレス", "言語", "応募経路",
          "選考ステータス",
          "1次ステップ", "辞退日", "不合格・重複終了日"]


def write_export(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(HEADER) + "\r\n")
        for i in range(rows):
            day = 16 + i % 7                        # 2025-06-16 … 06-22: all recent
            lang = "en" if i % 5 == 0 else "ja"
            name = f"Candidate {i}" if lang == "en" else f"山田 太郎{i}"
            f.write("\t".join([str(1_000_000 + i), "法人営業_中途", name,
                               f"cand{i}@example.com", lang, "自社サイト", "不合格", "1次面接", "",
                               f"2025年6月{day}日"]) + "\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
try:
    sys.stdin.read()
finally:
    c.stop()
    print(Count.n)
"""


def write_config(work: Path, port: int, url: str = "sqlite:///relay.db") -> Path:
    """The bench configuration: SMTP to the sink, one agency (so the invitation goes), the
    export as the source."""
    config = work / "bench.toml"
    config.write_text(f"""
[company]
sender = "採用担当 <recruit@example.co.jp>"
reply_to = "recruit@example.co.jp"
privacy_policy_url = "https://example.co.jp/privacy"
legal_name = "株式会社サンプル"
address = "東京都千代田区丸の内1-1-1"
representative = "代表取締役 山田太郎"
[store]
url = "{url}"
[schedule]
delay_hours = 0
[mail]
transport = "smtp"
[mail.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {CONNECTIONS}
[relay]
public_base_url = "https://relay.example.co.jp"
[[agencies]]
id = "agency-b"
legal_name = "株式会社キャリアB"
address = "大阪府大阪市北区梅田1-1-1"
representative = "代表取締役 鈴木花子"
country = "JP"
licence_number = "27-ユ-000000"
deletion_contact = "privacy@agency-b.example"
purpose = "ご希望に合う求人のご紹介"
channel = "email"
email = "intake@agency-b.example"
fields = ["name", "email"]
retention = "ご登録から2年間"
[[sources]]
name = "hrmos"
type = "hrmos_export"
path = "export.tsv"
""", encoding="utf-8")
    return config


def run_child(config: Path, command: str = "run", *extra: str) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of one `career-relay` child process (this checkout's code,
    with the interpreter running the bench)."""
    log = config.parent / "run.log"
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", command,
                                 "--config", str(config), "--now", NOW, *extra],
                                stdout=out, stderr=out, env=env, cwd=config.parent)
        _, status, usage = os.wait4(proc.pid, 0)   # reaps it and gives its own rusage
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"run failed: {log.read_text(errors='replace')[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_export(work / "export.tsv", args.rows)
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        config = write_config(work, port)
        # A new installation skips what was rejected before it (issue 10): the first run
        # records the backlog, `backfill --yes` opts it in (as scripts/example.sh does), and
        # the run after that mails it.
        ingest, _ = run_child(config, "run", "--json")
        run_child(config, "backfill", "--since", "2025-06-01", "--yes")
        first, rss1 = run_child(config, "run", "--json")
        second, rss2 = run_child(config, "run", "--json")
        sink.stdin.close()
        received = int(sink.stdout.read().strip() or 0)
        sink.wait()
    print(f"rows:                 {args.rows}")
    print(f"emails received:      {received}")
    print(f"ingest run:           {ingest:.1f} s (records the backlog; then backfill --yes)")
    print(f"sending run:          {first:.1f} s  ({received / first:.0f} emails/s end to end, "
          f"process start included)")
    print(f"sending run peak RSS: {rss1:.0f} MB")
    print(f"second run:           {second:.2f} s  (peak RSS {rss2:.0f} MB)")
    print(f"reproduce:            .venv/bin/python bench/pipeline.py --rows {args.rows}")


if __name__ == "__main__":
    main()
