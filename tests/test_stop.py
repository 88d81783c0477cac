"""`career-relay run` as cron or systemd starts it, stopped the hard and the polite way
(issue 13, point 3): SIGTERM finishes the message in hand, releases the lock and exits 143;
after a SIGKILL the next run takes the lock over at once instead of exiting 75 for an hour.
The mail server is a real aiosmtpd that takes a while over each message."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from relay_core.store import open_store
from relay_core.store import tables as t
from tests.smtp import serving

ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-23T11:00:00+09:00"


class SlowSink:
    """Takes each message after `delay` seconds; `first` is set when one arrives."""

    def __init__(self, delay: float):
        self.delay, self.messages = delay, []
        self.first = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.first.set()
        await asyncio.sleep(self.delay)
        self.messages.append(envelope.rcpt_tos[0])
        return "250 OK"


@pytest.fixture
def slow_smtp():
    sink = SlowSink(delay=1.0)
    with serving(sink):
        yield sink


@pytest.fixture
def smtp_example(tmp_path, store_url, installed_sources, slow_smtp):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    text = text.replace('transport = "file"', 'transport = "smtp"', 1)
    text = text.replace('host = "smtp.example.co.jp"', 'host = "127.0.0.1"')
    text = text.replace("port = 587", f"port = {slow_smtp.port}")
    # One connection: the messages go one after another, so a stop finds some still queued.
    text = text.replace('security = "starttls"', 'security = "none"\nconnections = 1')
    text = text.replace('username = "relay@example.co.jp"', 'username = ""')
    text = text.replace('password = "env:CAREER_RELAY_SMTP_PASSWORD"', "")
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def start_run(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "relay_core.commands.cli", "run", "--config", str(config),
         "--now", NOW, "--log-format", "json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def lock_rows(store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(t.locks.c.holder)))


def sent_cases(store) -> int:
    return store.counts_by_state().get("sent", 0)


def test_sigterm_finishes_the_message_in_hand_and_releases_the_lock(smtp_example, store_url,
                                                                    slow_smtp):
    proc = start_run(smtp_example)
    try:
        assert slow_smtp.first.wait(30), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        started, wall = time.monotonic(), time.time()
        out, errors = proc.communicate(timeout=15)
    finally:
        proc.kill()
    # the message in hand (1 s at this server), not the queue
    assert time.monotonic() - started < 5, (wall, time.time(), errors)
    assert proc.returncode == 128 + signal.SIGTERM, errors
    assert "stopped by SIGTERM" in errors
    store = open_store(store_url)
    assert lock_rows(store) == []
    delivered = len(slow_smtp.messages)
    assert delivered >= 1                          # the one in hand went
    assert sent_cases(store) == delivered          # and was recorded; nothing in between
    waiting = store.counts_by_state().get("sending", 0)
    assert waiting >= 1, (store.counts_by_state(), delivered)   # the rest waits...
    slow_smtp.delay = 0
    again = start_run(smtp_example)
    out, errors = again.communicate(timeout=120)
    assert again.returncode in (0, 1), errors      # ...which takes it without waiting
    assert "holds the run lock" not in errors


def test_after_sigkill_the_next_run_takes_the_lock_over_at_once(smtp_example, store_url,
                                                                slow_smtp):
    slow_smtp.delay = 5      # the holder is still busy while the second run starts
    proc = start_run(smtp_example)
    try:
        assert slow_smtp.first.wait(30), proc.communicate(timeout=5)
        store = open_store(store_url)
        assert len(lock_rows(store)) == 1
        blocked = start_run(smtp_example)             # the holder is alive: 75, named
        out, errors = blocked.communicate(timeout=60)
        assert blocked.returncode == 75, errors
        assert f"pid {proc.pid}" in errors and "since" in errors
        assert proc.poll() is None
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    assert len(lock_rows(store)) == 1                # left behind by the dead run
    slow_smtp.delay = 0
    after = start_run(smtp_example)
    out, errors = after.communicate(timeout=120)
    assert after.returncode != 75, errors
    assert "holds the run lock" not in errors
    assert lock_rows(store) == []


def test_an_empty_config_is_an_error_that_names_the_fix(tmp_path):
    from typer.testing import CliRunner

    from relay_core.commands.cli import app

    empty = tmp_path / "career-relay.toml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(empty)])
    assert result.exit_code == 2
    assert "empty" in result.output and "career-relay init" in result.output


def test_a_config_without_sources_is_an_error_that_names_what_is_missing(tmp_path):
    from typer.testing import CliRunner

    from relay_core.commands.cli import app

    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("[[sources]]")
    end = text.index("\n[", start + 1)
    config = tmp_path / "career-relay.toml"
    config.write_text(text[:start] + text[end:], encoding="utf-8")
    for command in (["run"], ["run", "--dry-run"], ["serve"]):
        result = CliRunner().invoke(app, [*command, "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert "sources: no [[sources]] table" in result.output
        assert "config.example.toml" in result.output


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_stopped_by_sigterm_finishes_the_message_in_hand(smtp_example, store_url,
                                                               slow_smtp):
    # A run stopped at its first message leaves three in the queue; serve's first cycle
    # takes them up, and is stopped in turn.
    first = start_run(smtp_example)
    assert slow_smtp.first.wait(30), first.communicate(timeout=5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 128 + signal.SIGTERM
    before = len(slow_smtp.messages)
    slow_smtp.first.clear()
    port = free_port()
    smtp_example.write_text(smtp_example.read_text(encoding="utf-8").replace(
        "port = 8080", f"port = {port}"), encoding="utf-8")
    serve = subprocess.Popen(
        [sys.executable, "-m", "relay_core.commands.cli", "serve", "--config",
         str(smtp_example), "--log-format", "json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert slow_smtp.first.wait(60), serve.communicate(timeout=5)
        serve.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, errors = serve.communicate(timeout=30)
    finally:
        serve.kill()
    assert time.monotonic() - started < 8, errors
    assert serve.returncode == 0, errors
    assert '"event": "stopped"' in errors and "still busy" not in errors
    store = open_store(store_url)
    assert lock_rows(store) == []
    assert len(slow_smtp.messages) - before == 1        # the one in hand, no more
    assert sent_cases(store) == len(slow_smtp.messages)


def test_a_holder_of_over_an_hour_makes_the_run_fail_not_succeed(smtp_example, store_url):
    from datetime import timedelta

    from sqlalchemy import insert

    from relay_core.store import utcnow
    from relay_core.store.lease import Holder

    store = open_store(store_url)
    now = utcnow()
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(
            name="run", holder=Holder("elsewhere/1", 4242, "9", now - timedelta(hours=3),
                                      "beef").encode(), expires_at=now + timedelta(minutes=2)))
    proc = start_run(smtp_example)
    out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 1, errors          # not 75, which the timer's unit counts as ok
    assert "host elsewhere, pid 4242 since" in errors and "hung" in errors


def test_several_instances_at_once_mail_everyone_exactly_once(smtp_example, store_url,
                                                              slow_smtp):
    """Three runs started together against one database (cron on three machines), then
    again: each person gets one email, and every run exits 0 or 75."""
    slow_smtp.delay = 0.3
    codes = []
    for _ in range(2):
        procs = [start_run(smtp_example) for _ in range(3)]
        for proc in procs:
            out, errors = proc.communicate(timeout=120)
            codes.append(proc.returncode)
            assert proc.returncode in (0, 75), errors
    assert codes.count(0) >= 2
    assert sorted(slow_smtp.messages) == sorted(set(slow_smtp.messages))
    store = open_store(store_url)
    assert sent_cases(store) == len(slow_smtp.messages) == 4
    assert lock_rows(store) == []


def test_two_serves_and_a_run_on_one_database_send_each_message_once(smtp_example, store_url,
                                                                     slow_smtp):
    """The documented way to outgrow one machine: several `serve`s (and the run timer) on one
    database. A stopped run leaves three messages queued; two serves and a run start at once;
    each message goes exactly once, and both serves say they are healthy."""
    import httpx

    first = start_run(smtp_example)
    assert slow_smtp.first.wait(30), first.communicate(timeout=5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 128 + signal.SIGTERM
    slow_smtp.delay = 0.3
    text = smtp_example.read_text(encoding="utf-8")
    serves, ports = [], []
    for i in range(2):
        ports.append(free_port())
        config = smtp_example.with_name(f"serve{i}.toml")
        config.write_text(text.replace("port = 8080", f"port = {ports[-1]}"), encoding="utf-8")
        serves.append(subprocess.Popen(
            [sys.executable, "-m", "relay_core.commands.cli", "serve", "--config", str(config),
             "--log-format", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}))
    run = start_run(smtp_example)
    try:
        assert run.wait(120) in (0, 75), run.communicate()[1]
        store = open_store(store_url)
        deadline = time.monotonic() + 60
        while sent_cases(store) < 4 and time.monotonic() < deadline:
            time.sleep(0.3)
        for port in ports:
            while True:
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert health.status_code == 200, health.text
    finally:
        for serve in serves:
            serve.send_signal(signal.SIGTERM)
        logs = [serve.communicate(timeout=60)[1] for serve in serves]
    assert [serve.returncode for serve in serves] == [0, 0], logs
    assert sent_cases(store) == 4
    assert sorted(slow_smtp.messages) == sorted(set(slow_smtp.messages))   # each once
    assert len(slow_smtp.messages) == 4
    assert lock_rows(store) == []
