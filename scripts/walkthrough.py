"""The whole relay on this machine, step by step, as the README's walk-through describes:

1. an HRMOS export with two candidates rejected yesterday;
2. `career-relay serve` (webhooks, consent page, the cycle) on 127.0.0.1; its first poll
   records the installation, so yesterday's rejections are skipped as made before it, and
   `career-relay backfill --since <yesterday> --yes` opts them in after showing them;
3. the rejection emails land in the file outbox;
4. one candidate opens the invitation link and consents to agency B (email channel);
5. the next cycle hands the candidate to agency B (its intake email lands in the outbox)
   and sends the candidate a confirmation with a withdrawal link;
6. agency B reports a placement to the signed events endpoint;
7. `career-relay report` shows the funnel and the credit, and writes report.html.

    .venv/bin/python scripts/walkthrough.py [--keep DIR]

Everything happens in a temporary folder (or DIR) on loopback; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "relay_core.commands.cli"]
AGENCY_SECRET = "walkthrough-agency-b-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_setup(work: Path, port: int) -> Path:
    yesterday = (datetime.now(ZoneInfo("Asia/Tokyo")) - timedelta(days=1)).date()
    day = f"{yesterday.year}年{yesterday.month}月{yesterday.day}日"
    rows = [["応募ID", "選考ポジション名", "氏名", "メールアドレス", "言語", "応募経路",
             "選考ステータス", "1次ステップ", "辞退日", "不合格・重複終了日"],
            ["2001", "法人営業", "山田 花子", "hanako.yamada@example.com", "ja", "自社サイト",
             "不合格", "1次面接", "", day],
            ["2002", "Backend Engineer", "Emily Carter", "emily.carter@example.com", "en",
             "自社サイト", "不合格", "書類選考", "", day]]
    (work / "export.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n",
                                     encoding="utf-8")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    replacements = {
        'url = "sqlite:///examples/career-relay.db"': 'url = "sqlite:///career-relay.db"',
        'path = "examples/hrmos_export.tsv"': 'path = "export.tsv"',
        'outbox_dir = "examples/outbox"': 'outbox_dir = "outbox"',
        'public_base_url = "https://relay.example.co.jp"':
            f'public_base_url = "http://127.0.0.1:{port}"',
        "port = 8080": f"port = {port}",
        "cycle_minutes = 10": "cycle_minutes = 1",
        # Any day, any hour: the walk-through sends at once whenever it is run.
        'business_hours = "10:00-18:00"': 'business_hours = "always"',
        "business_days = [0, 1, 2, 3, 4]": "business_days = [0, 1, 2, 3, 4, 5, 6]",
        'holidays = "JP"': 'holidays = ""',
        'rule = "off"': 'rule = "per_placement"',
        "yen_per_credit = 0 ": "yen_per_credit = 450000 ",
        "# [ledger.legal_review]\n": "[ledger.legal_review]\n",
        '# reviewer = "弁護士 田中一郎（田中法律事務所）"':
            'reviewer = "walk-through only: no real review"',
        "# reviewed_on = 2025-06-01": "reviewed_on = 2025-06-01",
        '# document = "意見書 2025-014"': 'document = "walk-through"',
        'email = "intake@agency-b.example"\n':
            'email = "intake@agency-b.example"\nsecret = "env:AGENCY_B_SECRET"\n',
    }
    for old, new in replacements.items():
        assert old in text, f"config.example.toml no longer has {old!r}"
        text = text.replace(old, new)
    config = work / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def wait_for(what: str, check, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    sys.exit(f"walk-through: timed out waiting for {what}")


def mails(outbox: Path) -> list:
    return [message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(outbox.glob("*.eml"))]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def cli(config: Path, *args: str) -> str:
    for _ in range(40):   # `serve` runs the same cycle: if it holds the lock, wait a moment
        done = subprocess.run(CLI + [args[0], "--config", str(config), *args[1:]],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 75:
            break
        time.sleep(0.5)
    if done.returncode != 0:
        sys.exit(f"walk-through: `career-relay {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="career-relay-walkthrough-"))
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_setup(work, port)
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AGENCY_B_SECRET": AGENCY_SECRET}
    os.environ["AGENCY_B_SECRET"] = AGENCY_SECRET
    server = subprocess.Popen(CLI + ["serve", "--config", str(config)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        print(f"1-2. serve is starting on {base}; work folder {work}")
        cli(config, "run")          # the first poll: the installation starts now
        yesterday = (datetime.now(ZoneInfo("Asia/Tokyo")) - timedelta(days=1)).date()
        shown = cli(config, "backfill", "--since", yesterday.isoformat(), "--yes")
        print("    rejections made before the first poll, opted in with backfill:\n" + shown)
        cli(config, "run")
        outbox = work / "outbox"
        sent = wait_for("the two rejection emails",
                        lambda: len(mails(outbox)) >= 2 and mails(outbox))
        print(f"3. {len(sent)} rejection emails in {outbox}: "
              + ", ".join(m["Subject"] for m in sent))
        hanako = next(m for m in sent if "hanako" in str(m["To"]))
        link = re.search(rf"{re.escape(base)}/r/[A-Za-z0-9_.-]+", text_of(hanako)).group(0)
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            page = browser.get(link).text
            form = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1),
                    "text_sha256": re.search(r'name="text_sha256" value="([0-9a-f]{64})"',
                                             page).group(1),
                    "lang": "ja", "agency": "agency-b", "desired_role": "法人営業",
                    "location": "東京"}
            done = browser.post("/relay/consent", data=form, headers={"Origin": base})
            assert done.status_code == 200 and "ご同意いただいた内容" in done.text, done.text
        print("4. 山田 花子 opened the link, ticked agency B and consented")
        cli(config, "run")
        intake = wait_for("agency B's intake email", lambda: [
            m for m in mails(outbox) if "intake@agency-b.example" in str(m["To"])])
        reference = re.search(r"cr_[A-Za-z0-9_-]+", text_of(intake[0])).group(0)
        confirmation = [m for m in mails(outbox) if "hanako" in str(m["To"])
                        and m["Subject"] != hanako["Subject"]]
        print(f"5. agency B received the candidate (reference {reference}); 山田 花子 got "
              f"{len(confirmation)} confirmation email with a withdrawal link")
        body = json.dumps({"events": [{"id": "walkthrough-1", "type": "placed",
                                       "reference": reference}]}).encode()
        from relay_core.records.handoff.channels import sign

        answer = httpx.post(f"{base}/agency/agency-b/events", content=body, headers={
            "Content-Type": "application/json",
            "X-Relay-Signature": sign(AGENCY_SECRET.encode(), body, int(time.time()))})
        assert answer.status_code == 200, answer.text
        print(f"6. agency B reported a placement: {answer.json()}")
        print("7. career-relay report:")
        print(cli(config, "report"))
        cli(config, "report", "-f", "html", "-o", str(work / "report.html"))
        print(f"   and {work / 'report.html'}")
    finally:
        server.terminate()
        server.wait(10)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
