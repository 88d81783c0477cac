"""The commands as a user runs them, on a copy of the shipped example."""

import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core.commands.cli import app
from relay_core.store import tables as t

ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-23T11:00:00+09:00"
runner = CliRunner()


@pytest.fixture
def example(tmp_path, store_url, installed_sources):
    """config.example.toml and its export copied to tmp, on the suite's store backend."""
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def outbox(config: Path):
    return sorted((config.parent / "examples" / "outbox").glob("*.eml"))


def test_example_run_writes_japanese_and_english_mail_once(example):
    result = runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert result.exit_code == 0, result.output
    assert "hrmos" in result.output and "sent" in result.output
    files = outbox(example)
    messages = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    subjects = [m["Subject"] for m in messages]
    assert any("選考結果のご連絡" in s for s in subjects)
    english = [m for m in messages if m["Subject"].startswith("Your application")]
    assert len(english) == 1 and "Dear " in english[0].get_body(("plain",)).get_content()
    recipients = {m["To"].addresses[0].addr_spec for m in messages}
    assert len(recipients) == len(messages) == 4
    # No mail for withdrawn, stale, agency-introduced, duplicate or in-progress rows.
    data = json.loads(runner.invoke(app, ["status", "--config", str(example), "--json"]).output)
    assert data["by_state"]["sent"] == 4
    assert data["by_state"]["skipped"] >= 3
    assert any("withdrew" in r for r in data["skip_reasons"])

    again = runner.invoke(app, ["run", "--config", str(example), "--now", NOW, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["sent"] == 0
    assert outbox(example) == files


@pytest.fixture
def new_installation(tmp_path, store_url):
    """The example as a brand-new installation: no source polled before (README, example.sh)."""
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    config = tmp_path / "career-relay.toml"
    config.write_text(text.replace('url = "sqlite:///examples/career-relay.db"',
                                   f'url = "{store_url}"'), encoding="utf-8")
    return config


@pytest.mark.fresh_install
def test_a_new_installation_mails_its_backlog_only_through_backfill(new_installation):
    """Issue 10 point 5, as scripts/example.sh runs it: the first run records the
    installation and mails nothing of June's backlog; `backfill --dry-run` shows it;
    `backfill --yes` opts it in; the next run sends it, and it is counted as sent late."""
    config = str(new_installation)
    dry = runner.invoke(app, ["run", "--config", config, "--now", NOW, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.output)
    assert plan["dry_run"] and plan["sources"]["hrmos"]["skipped"] >= 4
    assert outbox(new_installation) == []
    first = runner.invoke(app, ["run", "--config", config, "--now", NOW, "--json"])
    report = json.loads(first.output)
    assert report["sent"] == 0 and any("backfill --since" in reason for reason in
                                       report["sources"]["hrmos"]["skip_reasons"])
    shown = runner.invoke(app, ["backfill", "--config", config, "--since", "2025-06-01",
                                "--dry-run", "--now", NOW])
    assert shown.exit_code == 0 and "would send 4 email(s)" in shown.output, shown.output
    refused = runner.invoke(app, ["backfill", "--config", config, "--since", "2025-06-01",
                                  "--now", NOW])
    assert refused.exit_code == 2 and "--yes" in refused.output
    done = runner.invoke(app, ["backfill", "--config", config, "--since", "2025-06-01",
                               "--yes", "--now", NOW, "--json"])
    assert json.loads(done.output)["opted_in"] == 4, done.output
    sent = json.loads(runner.invoke(app, ["run", "--config", config, "--now", NOW,
                                          "--json"]).output)
    assert sent["sent"] == 4 and len(outbox(new_installation)) == 4
    status = json.loads(runner.invoke(app, ["status", "--config", config, "--json"]).output)
    assert status["sent_late"] == sent["sent_late"]
    table = runner.invoke(app, ["status", "--config", config])
    assert "sent late" in table.output
    report = runner.invoke(app, ["report", "--config", config, "-f", "json"])
    assert json.loads(report.output)["sent_late"]["total"] == sent["sent_late"]
    assert "sent late" in runner.invoke(app, ["report", "--config", config]).output
    csv_text = runner.invoke(app, ["report", "--config", config, "-f", "csv"]).output
    assert "sent_late" in csv_text.splitlines()[0]


def test_dry_run_sends_and_records_nothing(example):
    before = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                            "--json"]).output)
    result = runner.invoke(app, ["run", "--config", str(example), "--now", NOW, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "nothing sent, nothing recorded" in result.output and "would schedule" in result.output
    assert outbox(example) == []
    after = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                           "--json"]).output)
    assert after == before
    # and the real run still finds everything: the cursor did not move
    assert json.loads(runner.invoke(app, ["run", "--config", str(example), "--now", NOW,
                                          "--json"]).output)["sent"] == 4


def test_example_run_reports_the_bad_row_by_line(example):
    result = runner.invoke(app, ["run", "--config", str(example), "--now", NOW, "--json"])
    problems = json.loads(result.output)["sources"]["hrmos"]["problems"]
    assert len(problems) == 1 and "line" in problems[0]


def test_check_passes_on_the_example(example):
    result = runner.invoke(app, ["check", "--config", str(example), "--offline"])
    assert result.exit_code == 0, result.output
    assert "templates" in result.output and "FAIL" not in result.output


def test_check_names_a_broken_user_template_with_file_and_line(example):
    folder = example.parent / "mine" / "email" / "ja"
    folder.mkdir(parents=True)
    (folder / "rejection.txt").write_text(
        "{{ candidate.display_name }} 様\n\n{{ candidate.age }}\n", encoding="utf-8")
    text = example.read_text(encoding="utf-8").replace('templates_dir = ""',
                                                       'templates_dir = "mine"')
    example.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["check", "--config", str(example), "--offline", "--json"])
    assert result.exit_code == 1
    failures = [r for r in json.loads(result.output) if not r["ok"]]
    assert any("email/ja/rejection.txt:3" in r["detail"] for r in failures)


def test_config_error_exits_2_with_the_key(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[mail.smtp]\npassword = "hunter2"\n', encoding="utf-8")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "mail.smtp.password" in result.output and "hunter2" not in result.output


def test_bad_now_is_a_usage_error(example):
    result = runner.invoke(app, ["run", "--config", str(example), "--now", "tomorrow"])
    assert result.exit_code == 2 and "ISO" in result.output


def test_preview_sample_and_real_case_records_nothing(example):
    sample = runner.invoke(app, ["preview", "--config", str(example), "--lang", "en"])
    assert sample.exit_code == 0, sample.output
    assert "Subject:" in sample.output
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    before = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                            "--json"]).output)
    real = runner.invoke(app, ["preview", "--config", str(example), "--case", "1", "--html"])
    assert real.exit_code == 0, real.output and "<html" in real.output
    after = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                           "--json"]).output)
    assert before == after


def test_init_asks_and_writes_a_config_that_check_accepts(tmp_path):
    target = tmp_path / "career-relay.toml"
    answers = "\n".join([
        "株式会社テスト", "", "", "", "採用 <hr@test.example>", "hr@test.example", "Asia/Tokyo",
        "ja", "https://test.example/privacy", "https://relay.test.example", "hrmos_export",
        "hrmos", str(ROOT / "examples" / "hrmos_export.tsv"), ""]) + "\n"
    result = runner.invoke(app, ["init", "--config", str(target)], input=answers)
    assert result.exit_code == 0, result.output
    from relay_core.config import load_config

    config = load_config(target)
    assert config.company.name == config.company.legal_name == "株式会社テスト"
    # No address, representative or agency: the relay stays off, and the file says why.
    assert config.relay.enabled is False and "relay invitation is off" in result.output
    assert runner.invoke(app, ["check", "--config", str(target), "--offline"]).exit_code == 0
    assert runner.invoke(app, ["init", "--config", str(target)]).exit_code == 2  # no overwrite


def test_secrets_set_stores_in_keyring_without_echo(monkeypatch):
    stored = {}
    monkeypatch.setattr("relay_core.secrets.keyring_set",
                        lambda service, name, value: stored.update({(service, name): value}))
    result = runner.invoke(app, ["secrets", "set", "smtp"], input="pw123\npw123\n")
    assert result.exit_code == 0, result.output
    assert stored == {("career-relay", "smtp"): "pw123"}
    assert "pw123" not in result.output
    assert "keyring:career-relay/smtp" in result.output


def test_locked_run_exits_75(example):
    from relay_core.config import load_config
    from relay_core.store import open_store

    store = open_store(load_config(example).store_url)
    with store.lock():
        result = runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert result.exit_code == 75


def test_status_says_no_cycle_is_running_when_nobody_holds_the_lock(example):
    data = json.loads(runner.invoke(app, ["status", "--config", str(example), "--json"]).output)
    assert data["run_lock"] == {"running": False}
    table = runner.invoke(app, ["status", "--config", str(example)])
    assert table.exit_code == 0 and "no cycle running" in table.output
    assert "cycle running: held by" not in table.output


def test_status_names_who_holds_the_run_lock_and_never_its_token(example):
    import os
    import socket
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, update

    from relay_core.config import load_config
    from relay_core.store import open_store
    from relay_core.store.lease import Holder

    store = open_store(load_config(example).store_url)
    with store.lock() as lease:
        data = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                              "--json"]).output)
        table = runner.invoke(app, ["status", "--config", str(example)])
        with store.engine.connect() as conn:
            until = conn.execute(t.locks.select()).one().expires_at
    since = lease.holder.since
    assert data["run_lock"] == {
        "running": True, "host": socket.gethostname(), "pid": os.getpid(),
        "since": since.isoformat(), "lease_until": until.isoformat(), "stale": None}
    assert (f"cycle running: held by host {socket.gethostname()} pid {os.getpid()} since "
            f"{since:%Y-%m-%d %H:%M:%S} UTC, lease until "
            f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC") in table.output
    for output in (table.output, json.dumps(data)):
        assert lease.holder.token not in output and lease.holder.encode() not in output

    # A dead run on another host: its lock stays until the lease runs out; no cycle runs.
    dead = Holder("elsewhere/4026531836", 4242, "99", datetime(2025, 6, 23, tzinfo=UTC), "feed")
    with store.begin() as conn:
        conn.execute(insert(t.locks).values(name="run", holder=dead.encode(),
                                            expires_at=datetime.now(UTC) + timedelta(minutes=2)))
    data = json.loads(runner.invoke(app, ["status", "--config", str(example), "--json"]).output)
    assert data["run_lock"]["running"] and data["run_lock"]["host"] == "elsewhere"
    with store.begin() as conn:
        conn.execute(update(t.locks).values(expires_at=datetime(2025, 6, 23, 0, 2, tzinfo=UTC)))
    data = json.loads(runner.invoke(app, ["status", "--config", str(example), "--json"]).output)
    assert data["run_lock"] == {
        "running": False, "host": "elsewhere", "pid": 4242, "since": "2025-06-23T00:00:00+00:00",
        "lease_until": "2025-06-23T00:02:00+00:00", "stale": "its lease expired"}
    table = runner.invoke(app, ["status", "--config", str(example)])
    assert ("no cycle running: the lock left by host elsewhere pid 4242 since 2025-06-23 "
            "00:00:00 UTC is stale (its lease expired, lease until 2025-06-23 00:02:00 UTC); "
            "the next run takes it over") in table.output
    assert "feed" not in table.output and "4026531836" not in table.output


def test_check_names_an_agency_whose_channel_cannot_work(example):
    text = example.read_text(encoding="utf-8").replace(
        'email = "intake@agency-b.example"', 'email = "not an address"')
    example.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["check", "--config", str(example), "--offline", "--json"])
    assert result.exit_code == 1
    failures = [r for r in json.loads(result.output) if not r["ok"]]
    assert [r["what"] for r in failures] == ["agency agency-b (email)"]
    assert "agencies[1].email" in failures[0]["detail"]


def test_every_command_in_the_readme_exists():
    import re

    import typer.main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `career-relay ([a-z-]+(?: [a-z]+)?)", readme, re.M))
    group = typer.main.get_command(app)
    available = set()
    for name, command in group.commands.items():
        available.add(name)
        for sub in getattr(command, "commands", {}):
            available.add(f"{name} {sub}")
    assert documented <= available, documented - available
    assert available - {"secrets", "agency-events", "admin"} <= documented, "undocumented commands"


def test_approve_and_cancel_from_the_command_line(example):
    text = example.read_text(encoding="utf-8").replace(
        "hold_for_approval = false", "hold_for_approval = true")
    example.write_text(text, encoding="utf-8")
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert outbox(example) == []
    status = json.loads(runner.invoke(app, ["status", "--config", str(example),
                                            "--json"]).output)
    assert status["by_state"]["held"] == 4
    assert runner.invoke(app, ["approve", "--config", str(example)]).exit_code == 2
    result = runner.invoke(app, ["cancel", "--config", str(example), "--case", "1"])
    assert result.exit_code == 0 and "cancelled 1" in result.output
    result = runner.invoke(app, ["approve", "--config", str(example), "--all"])
    assert result.exit_code == 0 and "approved 3" in result.output
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert len(outbox(example)) == 3
    assert runner.invoke(app, ["cancel", "--config", str(example), "--case", "2"]).exit_code == 1


def test_a_recorded_incident_appears_in_the_incident_export(example):
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    result = runner.invoke(app, ["record-incident", "--config", str(example), "--case", "1",
                                 "--note", "misdirected: sent to a former address"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["record-incident", "--config", str(example), "--case", "999",
                               "--note", "x"]).exit_code == 1
    from datetime import date, timedelta

    today = date.today()
    export = runner.invoke(app, ["export-incident", "--config", str(example), "--since",
                                 str(today - timedelta(days=1)), "--until",
                                 str(today + timedelta(days=2)),
                                 "-f", "json"])
    rows = json.loads(export.output)["rows"]
    assert [r["what"] for r in rows if r["what"].startswith("incident")] == [
        "incident: misdirected: sent to a former address"]


# --- issue 12: a CLI that never surprises ----------------------------------------------------
def test_version_works_without_a_command():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == "career-relay 0.1.0"


def test_cases_lists_ids_send_times_and_states_but_names_only_on_a_terminal(example):
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    result = runner.invoke(app, ["cases", "--config", str(example)])
    assert result.exit_code == 0, result.output
    assert "1000101" in result.output and "sent" in result.output
    assert "山田" not in result.output and "@" not in result.output   # not a terminal
    data = json.loads(runner.invoke(app, ["cases", "--config", str(example), "--json",
                                          "--state", "sent"]).stdout)
    assert data["total"] == 4 and {c["state"] for c in data["cases"]} == {"sent"}
    assert all(c["sent_at"] for c in data["cases"]) and "name" not in data["cases"][0]


def test_cases_table_shows_names_to_a_person_at_a_terminal(example):
    from rich.console import Console

    from relay_core.commands.tables import cases_table
    from relay_core.config import load_config
    from relay_core.store import open_store
    from relay_core.store.console import search_cases

    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    config = load_config(example)
    with open_store(config.store_url).engine.connect() as conn:
        found = search_cases(conn, state="sent")
    out = Console(width=200, record=True, force_terminal=True)
    out.print(cases_table(found, config.company.tz, names=True))
    assert "@example" in out.export_text()


def test_approve_and_cancel_say_which_ids_changed_and_which_do_not_exist(example):
    text = example.read_text(encoding="utf-8").replace(
        "hold_for_approval = false", "hold_for_approval = true")
    example.write_text(text, encoding="utf-8")
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    result = runner.invoke(app, ["cancel", "--config", str(example), "--case", "12345"])
    assert result.exit_code == 1
    assert "no such case: 12345" in result.stderr and "already sent" not in result.output
    result = runner.invoke(app, ["approve", "--config", str(example), "--case", "1",
                                 "--case", "5", "--case", "777"])
    assert result.exit_code == 1
    assert "approved 1 case(s): 1" in result.stdout
    assert "not held, left alone: 5 (skipped)" in result.stderr
    assert "no such case: 777" in result.stderr
    result = runner.invoke(app, ["hold", "--config", str(example), "--case", "1"])
    assert result.exit_code == 0 and "held 1 case(s): 1" in result.stdout


def test_output_to_a_file_or_pipe_is_neither_wrapped_nor_cut_nor_coloured(example):
    runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    result = runner.invoke(app, ["cases", "--config", str(example)])
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) > 80          # one row per case, at full width
    assert "…" not in result.stdout and "\x1b[" not in result.stdout
    assert "introduced by an agency; the agency informs the candidate" in result.stdout
    broken = example.parent / "broken.toml"
    broken.write_text('[mail.smtp]\npassword = "plain text here, which is far too long for '
                      'one line of eighty columns"\n', encoding="utf-8")
    error = runner.invoke(app, ["run", "--config", str(broken)])
    assert len([line for line in error.stderr.splitlines() if line.strip()]) == 1


def test_preview_html_writes_the_document_exactly(example):
    result = runner.invoke(app, ["preview", "--config", str(example), "--html"])
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "'Hiragino Sans','Yu Gothic','Meiryo'" in result.stdout     # not broken apart
    assert "Subject:" not in result.stdout


def test_run_logs_one_json_object_per_line_with_case_ids_only(example):
    result = runner.invoke(app, ["-v", "run", "--config", str(example), "--now", NOW,
                                 "--log-format", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    summary = records[-1]
    assert summary["event"] == "cycle" and summary["sent"] == 4
    from relay_core.config import load_config
    from relay_core.store import open_store

    store = open_store(load_config(example).store_url)
    with store.engine.connect() as conn:
        people = conn.execute(t.relay_cases.select()).all()
    for case in people:
        for value in (case.email, *json.loads(case.person_json or "{}").values()):
            if value:
                assert value not in result.stderr


def test_a_poll_reports_its_pages_and_records_as_it_goes(store, make_config):
    from relay_core.cycle.run import run_cycle
    from relay_core.mail.transports import FileTransport
    from tests.fakes import FakeConnector, event

    config = make_config()
    seen = []
    run_cycle(config, store, {"fake": FakeConnector(events=[event("1"), event("2")])},
              transport=FileTransport(config.path(config.mail.outbox_dir)),
              poll_progress=lambda *a: seen.append(a))
    assert seen == [("fake", 0, 0), ("fake", 1, 2)]


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    from relay_core.config import load_config

    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[company]\nname = \"株式会社BOM\"\n".encode())
    assert load_config(path).company.name == "株式会社BOM"


def test_preview_a_bilingual_email(example):
    result = runner.invoke(app, ["preview", "--config", str(example), "--lang", "bilingual"])
    assert result.exit_code == 0, result.output
    subject, body = result.output.split("\n", 1)
    assert subject.startswith("Subject: 選考結果のご連絡") and " / Your application to " in subject
    assert body.index("山田") < body.index("Dear ")


def test_a_large_backfill_shows_a_sample_and_the_counts_not_every_row():
    """A first backfill can find 100,000 rejections: the table shows the first 200 and says
    how many there are of each outcome (rendering every row took a gigabyte)."""
    from datetime import UTC
    from types import SimpleNamespace

    from rich.console import Console

    from relay_core.commands.tables import PLANNED_ROWS_SHOWN, backfill_table
    planned = [SimpleNamespace(source="hrmos", application_id=f"A{i}", case_id=i,
                               outcome="schedule" if i % 4 else "skip", send_at=None,
                               late=True, invite=True, language="ja", reason="",
                               invite_note="") for i in range(1, 1001)]
    result = SimpleNamespace(cases=planned, purged=0,
                             would_send=[c for c in planned if c.outcome == "schedule"])
    out = Console(width=200, record=True)
    out.print(backfill_table(result, UTC))
    text = out.export_text()
    assert "A200" in text and "A201 " not in text and "A1000" not in text
    assert f"the first {PLANNED_ROWS_SHOWN} of 1,000 (750 schedule, 250 skip)" in text
    assert "would send 750 email(s), 750 past the" in text
