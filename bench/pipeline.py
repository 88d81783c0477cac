"""End-to-end throughput and memory of the main job.

N rejections in an HRMOS export → eligibility → scheduling → rendering → delivery over SMTP to
a local aiosmtpd server (a separate process) → recorded in SQLite. Each `career-relay run` is a
child process so its peak RSS is measured alone.

    .venv/bin/python bench/pipeline.py --rows 10000
    .venv/bin/python bench/pipeline.py --rows 100000
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


def run_child(config: Path) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of one `career-relay run` child process."""
    log = config.parent / "run.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / ".venv/bin/career-relay"), "run", "--config",
                                 str(config), "--now", NOW, "--json"], stdout=out, stderr=out)
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
url = "sqlite:///relay.db"
[schedule]
delay_hours = 0
[mail]
transport = "smtp"
[mail.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
[[sources]]
name = "hrmos"
type = "hrmos_export"
path = "export.tsv"
""", encoding="utf-8")
        first, rss1 = run_child(config)
        second, rss2 = run_child(config)
        sink.stdin.close()
        received = int(sink.stdout.read().strip() or 0)
        sink.wait()
    print(f"rows:                 {args.rows}")
    print(f"emails received:      {received}")
    print(f"first run:            {first:.1f} s  ({received / first:.0f} emails/s end to end, "
          f"process start included)")
    print(f"first run peak RSS:   {rss1:.0f} MB")
    print(f"second run:           {second:.2f} s  (peak RSS {rss2:.0f} MB)")
    print(f"reproduce:            .venv/bin/python bench/pipeline.py --rows {args.rows}")


if __name__ == "__main__":
    main()
