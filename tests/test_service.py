"""`career-relay serve` as a user starts it: a real process, a real port."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_and_runs_the_cycle(tmp_path, store_url):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    port = free_port()
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    text = text.replace("port = 8080", f"port = {port}")
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", "serve", "--config",
                             str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
                assert time.monotonic() < deadline, "serve did not start within 20 s"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        # The cycle thread polls the export at start-up (the sample's rows are old by now, so
        # they are recorded and skipped as stale rather than mailed).
        from relay_core.store import open_store

        store = open_store(store_url)
        for _ in range(100):
            if store.counts_by_state():
                break
            time.sleep(0.2)
        assert sum(store.counts_by_state().values()) == 8
        assert "sent" not in store.counts_by_state()
    finally:
        proc.terminate()
        proc.wait(10)


def _example(tmp_path, store_url, port: int) -> Path:
    (tmp_path / "examples").mkdir(exist_ok=True)
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    text = text.replace("port = 8080", f"port = {port}")
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_serve_logs_a_startup_line_and_each_cycle_as_json(tmp_path, store_url):
    import json
    import queue
    import threading

    config = _example(tmp_path, store_url, free_port())
    proc = subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", "serve", "--config",
                             str(config), "--log-format", "json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events: dict[str, dict] = {}
    lines: list[str] = []
    # A thread reads the lines: several may arrive in one write, and a selector on the pipe
    # would not wake again for those already in the reader's buffer.
    received: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [received.put(x) for x in proc.stderr], daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not {"startup", "cycle"} <= set(events) and time.monotonic() < deadline:
            try:
                line = received.get(timeout=0.5)
            except queue.Empty:
                continue
            lines.append(line)
            record = json.loads(line)          # every line is one JSON object
            events.setdefault(record.get("event", ""), record)
    finally:
        proc.terminate()
        proc.wait(10)
    assert {"startup", "cycle"} <= set(events), lines
    startup = events["startup"]
    assert startup["listen"].startswith("http://127.0.0.1:")
    assert startup["sources"] == ["hrmos (poll)"]
    assert "no account yet" in startup["console"]
    assert events["cycle"]["detected"] == 8 and "seconds" in events["cycle"]
    assert "@" not in "".join(lines)                # no addresses, only counts and ids


def test_serve_on_a_taken_port_says_so_and_exits_2(tmp_path, store_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _example(tmp_path, store_url, port)
        done = subprocess.run([sys.executable, "-m", "relay_core.commands.cli", "serve",
                               "--config", str(config)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "web.port" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_healthz_is_503_with_why_when_no_cycle_succeeded_for_three_intervals(make_config,
                                                                             store):
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from relay_core.store import utcnow
    from relay_core.store.runs import record_cycle
    from relay_core.web.app import create_app, health

    config = make_config({"web": {"cycle_minutes": 10}})
    client = TestClient(create_app(config, store, {}))
    now = utcnow()
    # Before any cycle, the start-up is the reference: three intervals of grace.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["last_ok_cycle"] is None
    status, body = health(store, 10, now - timedelta(minutes=31), now)
    assert status == 503 and "since start-up 31 min ago" in body["why"]

    old = now - timedelta(minutes=45)
    record_cycle(store, started_at=old, finished_at=old, ok=True, summary={}, polls={})
    status, body = health(store, 10, now - timedelta(hours=2), now)
    assert status == 503 and body["status"] == "stale"
    assert "no cycle has succeeded for 45 min (limit: 3 × 10 min)" in body["why"]
    record_cycle(store, started_at=now, finished_at=now, ok=False,
                 summary={"errors": ["gh: credentials refused: secret text"]}, polls={})
    status, body = health(store, 10, now - timedelta(hours=2), now)
    assert status == 503 and "the last cycle had problems" in body["why"]
    assert "secret text" not in str(body)      # a public page: the messages stay in the log
    response = client.get("/healthz")          # this process started just now: grace
    assert response.status_code == 200

    record_cycle(store, started_at=now, finished_at=now, ok=True, summary={}, polls={})
    status, body = health(store, 10, now - timedelta(hours=2), now + timedelta(minutes=29))
    assert status == 200 and body["status"] == "ok" and body["last_cycle_ok"] is True


def test_healthz_is_503_when_the_database_cannot_be_read(tmp_path):
    from relay_core.store import open_store, utcnow
    from relay_core.web.app import health

    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    (tmp_path / "relay.db").unlink()
    (tmp_path / "relay.db").mkdir()      # the file is gone and cannot be made again
    store.engine.dispose()
    status, body = health(store, 10, utcnow(), utcnow())
    assert status == 503 and "database cannot be read" in body["why"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_serve_with_workers_shares_the_port_and_stops_them_all(tmp_path, store_url):
    port = free_port()
    config = _example(tmp_path, store_url, port)
    proc = subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", "serve", "--config",
                             str(config), "--workers", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
                assert time.monotonic() < deadline, "serve did not start within 30 s"
                time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) == 2                        # the first process is the third
        answers = [httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5) for _ in range(30)]
        assert {(r.status_code, r.json()["status"]) for r in answers} == {(200, "ok")}
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode(errors="replace")
    assert "3 worker processes" in output
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
