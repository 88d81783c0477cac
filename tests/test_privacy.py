"""Personal data never reaches logs, exception text or repr (STYLE.md rule 9)."""

import logging
import shutil
from pathlib import Path

from relay_core.config import load_config
from relay_core.contract.registry import build_connectors
from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.store import open_store, utcnow
from relay_core.store.outbox import OutboxMessage
from tests.fakes import event

ROOT = Path(__file__).resolve().parents[1]
NOW_TEXT = "2025-06-23T11:00:00+09:00"
# What the shipped export holds about its people (examples/hrmos_export.tsv).
PERSONAL = ["example.com", "example.jp", "Emily", "Carter", "山田", "佐藤", "鈴木"]


def test_a_whole_run_logs_no_personal_data(tmp_path, store_url, caplog):
    from datetime import datetime

    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8").replace(
        'url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "c.toml")
    caplog.set_level(logging.DEBUG)
    report = run_cycle(config, open_store(config.store_url), build_connectors(config),
                       transport=FileTransport(config.path(config.mail.outbox_dir)),
                       now=datetime.fromisoformat(NOW_TEXT))
    assert report.sent == 4
    texts = [r.getMessage() for r in caplog.records] + [str(p) for s in report.sources.values()
                                                         for p in s.problems]
    texts += [reason for s in report.sources.values() for reason in s.skip_reasons]
    leaked = [(t, word) for t in texts for word in PERSONAL if word in t]
    assert not leaked, leaked
    assert any("wrote <relay." in t for t in texts)   # the log names messages by Message-ID


def test_repr_of_events_and_people_hides_them():
    e = event("1", email="secret.person@example.com")
    for text in (repr(e), str(e), repr(e.person), str(e.person)):
        assert "secret.person" not in text and "山田" not in text


def test_repr_of_a_stored_case_shows_identifiers_only(store):
    e = event("1", email="secret.person@example.com")
    with store.begin() as conn:
        case_id = store.insert_case(conn, e, email="secret.person@example.com", language="ja",
                                    now=utcnow(), actor="test")
    case = store.case(case_id)
    assert case.person is not None and case.person.full_name == "山田 太郎"
    assert repr(case) == str(case) == (
        f"RelayCase(id={case_id}, source='fake', application_id='1', state=detected)")
    for text in (repr(case), f"{case}", repr([case]), repr({"case": case})):
        for word in ("secret.person", "example.com", "山田", "太郎", "法人営業", "1次面接"):
            assert word not in text


def test_repr_of_a_queued_message_hides_recipient_and_bytes():
    message = OutboxMessage(7, 3, "rejection", "<m@relay.example.jp>", "secret.person@example.com",
                            b"To: secret.person@example.com\r\n\r\n\xe5\xb1\xb1\xe7\x94\xb0")
    for text in (repr(message), str(message)):
        assert text == "OutboxMessage(id=7, case_id=3, kind='rejection')"
