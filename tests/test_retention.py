"""Purge and incident export with a fake clock (sec. 6 items 7, 10, 23, 24)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from relay_core.commands.cli import app as cli
from relay_core.mail import FileTransport
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.handoff.records import add_years
from relay_core.records.retention import export_incident, incident_summary, purge
from relay_core.store import tables as t
from tests.handoff.support import SECRET, T0, agency, consented_case, withdraw


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)


class Sink:
    def post(self, url, data, headers, **kwargs):
        return SimpleNamespace(status_code=200, headers={})


def world(store, make_config, tmp_path):
    config = make_config({"agencies": [agency("agency-a", url="https://a.example/in")]})
    kept = consented_case(store, config, "1", ["agency-a"],
                          preferences={"desired_role": "営業"})
    gone = consented_case(store, config, "2", ["agency-a"],
                          preferences={"message": "よろしく"})
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=Sink())
    with store.begin() as conn:   # a delivered candidate email, for the incident export
        conn.execute(insert(t.outbox).values(
            case_id=kept, kind="rejection", message_id="<m1@example.co.jp>",
            recipient="cand1@example.com", message=None, state="sent", attempts=1,
            next_attempt_at=T0, last_error="", created_at=T0, sent_at=T0))
    return config, kept, gone


def personal(store, case_id):
    with store.engine.connect() as conn:
        row = conn.execute(select(t.relay_cases).where(t.relay_cases.c.id == case_id)).one()
        prefs = conn.execute(select(t.consent_preferences).join(
            t.consents, t.consents.c.id == t.consent_preferences.c.consent_id)
            .where(t.consents.c.case_id == case_id)).all()
    return row.email, row.person_json, row.event_json, len(prefs)


def records(store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(t.provision_records)).all())


def test_withdrawn_at_once_others_after_retention_records_three_years(store, make_config,
                                                                     tmp_path, caplog):
    config, kept, gone = world(store, make_config, tmp_path)
    withdraw(store, gone, T0 + timedelta(days=1))
    caplog.set_level("INFO", logger="career_relay.retention")
    first = purge(store, config, now=T0 + timedelta(days=2))
    assert first.cases_blanked == 1 and first.after_withdrawal == 1
    assert personal(store, gone) == (None, None, None, 0)
    assert personal(store, kept)[0] == "cand1@example.com"
    assert "cases_blanked=1" in caplog.text and "example.com" not in caplog.text

    rejected_at = T0 - timedelta(days=2)
    assert purge(store, config, now=rejected_at + timedelta(days=179)).cases_blanked == 0
    second = purge(store, config, now=rejected_at + timedelta(days=181))
    assert second.cases_blanked == 1 and second.preferences_deleted == 1
    assert second.outbox_blanked == 1
    assert personal(store, kept) == (None, None, None, 0)
    assert records(store) == 2          # provision records survive the candidate's deletion

    provided = T0
    almost = purge(store, config, now=add_years(provided, 3) - timedelta(days=1))
    assert almost.provision_records_deleted == 0 and records(store) == 2
    after = purge(store, config, now=add_years(provided, 3) + timedelta(days=1))
    assert after.provision_records_deleted == 2 and records(store) == 0
    # The audit log is untouched and still tells the story.
    trail = [r["action"] for r in store.audit_trail(kept)]
    assert "transfer" in trail and "purged" in trail


def test_provision_records_cannot_be_altered(store, make_config, tmp_path):
    world(store, make_config, tmp_path)
    with pytest.raises(DBAPIError, match="never updated"):
        with store.begin() as conn:
            conn.execute(t.provision_records.update().values(recipient_legal_name="x"))


def test_a_case_still_being_handed_off_waits(store, make_config, tmp_path):
    config = make_config({"agencies": [agency("agency-a", url="https://a.example/in")],
                          "retention": {"candidate_days": 30}})
    case_id = consented_case(store, config, "1", ["agency-a"])
    result = purge(store, config, now=T0 + timedelta(days=60))
    assert result.waiting == 1 and personal(store, case_id)[0] is not None


def test_export_incident_lists_who_received_which_items(store, make_config, tmp_path):
    config, kept, gone = world(store, make_config, tmp_path)
    withdraw(store, gone, T0 + timedelta(hours=1))
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                     now=T0 + timedelta(hours=1), session=Sink())
    rows = export_incident(store, config, T0 - timedelta(hours=1), T0 + timedelta(days=1))
    summary = incident_summary(rows)
    assert summary["candidates"] == 2
    assert summary["recipients"] == ["agency-a 株式会社AGENCY-A"]
    transfers = [r for r in rows if r.what.startswith("transfer")]
    # The provenance the manifest carried is listed with the fields (issue 11, point 2).
    assert [(r.case, r.address, r.items) for r in transfers] == [
        ("fake/1", "https://a.example/in",
         ["consent_date", "decision_date", "desired_role", "email", "job_title", "name"]),
        ("fake/2", "https://a.example/in",
         ["consent_date", "decision_date", "email", "job_title", "message", "name"])]
    assert [r.what for r in rows].count("deletion notice") == 1
    mail = [r for r in rows if r.recipient == "candidate"]
    assert mail[0].address == "cand1@example.com"
    assert export_incident(store, config, T0 + timedelta(days=2), T0 + timedelta(days=3)) == []
    # After purge the transfers are still listed from the provision records.
    purge(store, config, now=T0 + timedelta(days=400))
    later = export_incident(store, config, T0 - timedelta(hours=1), T0 + timedelta(days=1))
    assert len([r for r in later if r.what.startswith("transfer")]) == 2
    assert [r.address for r in later if r.recipient == "candidate"] == ["(address purged)"]


def test_purge_and_export_commands(store, store_url, make_config, tmp_path):
    world(store, make_config, tmp_path)
    config_file = tmp_path / "career-relay.toml"
    config_file.write_text(f"""
[company]
name = "株式会社サンプル"
legal_name = "株式会社サンプル"
address = "東京都千代田区丸の内1-1-1"
representative = "代表取締役 山田太郎"
[store]
url = "{store_url}"
[[agencies]]
id = "agency-a"
legal_name = "株式会社AGENCY-A"
address = "東京都港区芝公園4-2-8"
representative = "代表取締役 佐藤花子"
country = "JP"
licence_number = "13-ユ-000001"
deletion_contact = "privacy@agency-a.example"
channel = "webhook"
url = "https://a.example/in"
secret = "env:CR_TEST_AGENCY_SECRET"
""", encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(cli, ["export-incident", "--config", str(config_file), "--since",
                              "2025-06-23", "--until", "2025-06-24", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["summary"]["candidates"] == 2 and len(data["rows"]) == 3
    result = runner.invoke(cli, ["purge", "--config", str(config_file), "--json",
                                 "--now", "2026-06-23T00:00:00+09:00"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cases_blanked"] == 2


# --- issue 11, point 8: retention that runs -------------------------------------------------
def _purges(store) -> list:
    with store.engine.connect() as conn:
        return conn.execute(select(t.audit_log).where(
            t.audit_log.c.action == "purge_run")).all()


def test_point_8_run_purges_at_most_once_a_day(store, make_config):
    from relay_core.cycle.run import run_cycle
    from tests.fakes import FakeConnector

    config = make_config()
    transport = FileTransport(config.path(config.mail.outbox_dir))
    day = T0 + timedelta(days=400)                  # 2026-07-28 11:00 JST
    runs = [run_cycle(config, store, {}, transport=transport, now=moment)
            for moment in (day, day + timedelta(hours=5), day + timedelta(hours=14))]
    # 11:00, 16:00 the same day; 01:00 the next day in Tokyo.
    assert [r.purged is not None for r in runs] == [True, False, True]
    assert len(_purges(store)) == 2
    off = make_config({"retention": {"purge_daily": False}})
    assert run_cycle(off, store, {"fake": FakeConnector()}, transport=transport,
                     now=day + timedelta(days=3)).purged is None
    assert len(_purges(store)) == 2


def test_point_8_serve_purges_too(store, make_config):
    import threading
    import time

    from relay_core.runtime import Runtime
    from relay_core.web.service import cycle_loop

    stop = threading.Event()
    worker = threading.Thread(target=cycle_loop, args=(Runtime(make_config(), store, {}), stop))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not _purges(store) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(10)
    assert len(_purges(store)) == 1


def test_point_8_purge_deletes_eml_files_and_job_titles_and_dry_run_counts(
        store, make_config, tmp_path, store_url):
    import os

    outbox = tmp_path / "outbox"
    config = make_config({"agencies": [agency("agency-a", "email")],
                          "mail": {"outbox_dir": str(outbox)}},
                         write_to=tmp_path / "c.toml")
    case_id = consented_case(store, config, "1", ["agency-a"])
    deliver_handoffs(store, config, FileTransport(outbox), now=T0)   # the agency's mail
    with store.begin() as conn:
        conn.execute(insert(t.outbox).values(
            case_id=case_id, kind="rejection", message_id="<m1@example.co.jp>",
            recipient="cand1@example.com", message=None, state="sent", attempts=1,
            next_attempt_at=T0, last_error="", created_at=T0, sent_at=T0))
    FileTransport(outbox).send(_mail("<m1@example.co.jp>"))
    stray = outbox / "old.eml"
    stray.write_bytes(b"x")
    os.utime(stray, (0, 0))                          # written long ago, no case
    fresh = outbox / "fresh.eml"
    fresh.write_bytes(b"y")
    files = sorted(p.name for p in outbox.glob("*.eml"))
    assert len(files) == 4
    later = T0 + timedelta(days=200)

    dry = CliRunner().invoke(cli, ["purge", "--config", str(tmp_path / "c.toml"), "--now",
                                   later.isoformat(), "--dry-run", "--json"])
    counts = json.loads(dry.stdout)
    assert counts["dry_run"] and counts["cases_blanked"] == 1
    assert counts["eml_files_deleted"] == 3         # the case's two mails and the stray one
    assert sorted(p.name for p in outbox.glob("*.eml")) == files
    assert personal(store, case_id)[0] is not None
    assert _purges(store) == []

    done = purge(store, config, now=later)
    assert done.cases_blanked == 1 and done.eml_files_deleted == 3
    assert [p.name for p in outbox.glob("*.eml")] == ["fresh.eml"]
    with store.engine.connect() as conn:
        row = conn.execute(select(t.relay_cases).where(t.relay_cases.c.id == case_id)).one()
    assert row.job_title == "" and row.person_key is None and row.email is None


def _mail(message_id: str):
    from relay_core.mail.message import OutgoingMail

    return OutgoingMail(message_id, "recruit@example.co.jp", "cand1@example.com", b"mail\r\n")
