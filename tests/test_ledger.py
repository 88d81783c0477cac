"""Agency events (signed endpoint and CSV) and the credit ledger."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from relay_core.errors import ConfigError
from relay_core.mail import FileTransport
from relay_core.records.handoff.channels import sign
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.ledger import balances, import_csv
from relay_core.store import tables as t
from relay_core.web.app import create_app
from tests.handoff.support import SECRET, T0, agency, consented_case

REVIEW = {"reviewer": "弁護士 田中一郎（田中法律事務所）", "reviewed_on": "2025-06-01",
          "document": "意見書 LR-12", "notification_number": "13-募-000123"}


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)


class Sink:
    def post(self, url, data, headers, **kwargs):
        return SimpleNamespace(status_code=200, headers={})


def handed_off(store, config, tmp_path, n: int = 1, agency_id: str = "agency-a") -> list[str]:
    for i in range(n):
        consented_case(store, config, f"{agency_id}-{i}", [agency_id])
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=Sink())
    with store.engine.connect() as conn:
        return list(conn.execute(select(t.handoff_references.c.reference).where(
            t.handoff_references.c.agency_id == agency_id)
            .order_by(t.handoff_references.c.handoff_id)).scalars())


def ledger_config(make_config, **ledger):
    return make_config({"agencies": [agency("agency-a", url="https://a.example/in"),
                                     agency("agency-b", url="https://b.example/in")],
                        "ledger": ledger})


def post(client, agency_id: str, payload, secret: str = SECRET, timestamp: int | None = None):
    body = json.dumps(payload).encode()
    header = sign(secret.encode(), body, timestamp or int(time.time()))
    return client.post(f"/agency/{agency_id}/events", content=body,
                       headers={"X-Relay-Signature": header,
                                "Content-Type": "application/json"})


def test_credit_accounting_needs_a_legal_review_attestation(make_config):
    """Issue 11, point 5: credits need a structured attestation; free text no longer does."""
    with pytest.raises(ConfigError, match="ledger.legal_review") as err:
        make_config({"ledger": {"rule": "per_placement"}})
    assert err.value.key == "ledger.legal_review"
    with pytest.raises(ConfigError, match="no longer does"):
        make_config({"ledger": {"rule": "per_placement", "legal_review_attested": "x"}})
    with pytest.raises(ConfigError, match="not true/false"):
        make_config({"ledger": {"rule": "per_placement", "legal_review_attested": True}})
    assert not make_config({}).ledger.enabled
    # Free text left over from an older file loads, and switches nothing on.
    assert not make_config({"ledger": {"legal_review_attested": "x"}}).ledger.enabled
    assert make_config({"ledger": {"rule": "per_placement",
                                   "legal_review": REVIEW}}).ledger.enabled


@pytest.mark.parametrize("change, key, words", [
    ({"reviewer": ""}, "ledger.legal_review.reviewer", "who reviewed"),
    ({"reviewer": "A\nB"}, "ledger.legal_review.reviewer", "one line"),
    ({"reviewed_on": ""}, "ledger.legal_review.reviewed_on", "reviewed_on = 2025-06-01"),
    ({"reviewed_on": "2999-01-01"}, "ledger.legal_review.reviewed_on", "future"),
    ({"reviewed_on": "soon"}, "ledger.legal_review.reviewed_on", "date"),
    ({"document": ""}, "ledger.legal_review.document", "written opinion"),
    ({"notification_number": "pending"}, "ledger.legal_review.notification_number",
     "受理番号"),
    ({"extra": "x"}, "ledger.legal_review.extra", "unknown key"),
])
def test_point_5_check_names_each_attestation_key(make_config, change, key, words):
    review = {k: v for k, v in {**REVIEW, **change}.items() if v != "" or k in change}
    with pytest.raises(ConfigError) as err:
        make_config({"ledger": {"rule": "per_placement", "legal_review": review}})
    assert err.value.key == key and words in str(err.value)


def test_signed_events_are_idempotent_and_unknown_references_refused(store, make_config,
                                                                     tmp_path):
    config = ledger_config(make_config, rule="per_registrations", per_registrations=2,
                           yen_per_credit=300000, legal_review=REVIEW)
    refs = handed_off(store, config, tmp_path, 3)
    client = TestClient(create_app(config, store, {}))
    first = post(client, "agency-a", {"id": "ev-1", "type": "registered", "reference": refs[0],
                                      "occurred_at": "2025-06-30T10:00:00+09:00"})
    assert first.status_code == 200 and first.json()["accepted"] == 1
    again = post(client, "agency-a", {"id": "ev-1", "type": "registered",
                                      "reference": refs[0]})
    assert again.json() == {"accepted": 0, "duplicates": 1,
                            "results": [{"id": "ev-1", "status": "duplicate"}]}
    batch = post(client, "agency-a", {"events": [
        {"id": "ev-2", "type": "registered", "reference": refs[1]},
        {"id": "ev-3", "type": "registered", "reference": refs[2]}]})
    assert batch.json()["accepted"] == 2
    unknown = post(client, "agency-a", {"id": "ev-9", "type": "placed",
                                        "reference": "cr_doesnotexist"})
    assert unknown.status_code == 422
    assert "unknown reference 'cr_doesnotexist' for agency agency-a" in unknown.json()["error"]
    # Another agency's reference is just as unknown.
    other = post(client, "agency-b", {"id": "ev-1", "type": "registered",
                                      "reference": refs[0]})
    assert other.status_code == 422 and "unknown reference" in other.json()["error"]
    assert post(client, "agency-a", {"id": "x", "type": "registered", "reference": refs[0]},
                secret="wrong").status_code == 401
    assert post(client, "agency-a", {"id": "x", "type": "registered", "reference": refs[0]},
                timestamp=int(time.time()) - 3600).status_code == 401
    assert post(client, "nobody", {}).status_code == 404
    bad = post(client, "agency-a", {"id": "x", "type": "hired", "reference": refs[0]})
    assert bad.status_code == 422 and "type must be one of" in bad.json()["error"]
    with store.engine.connect() as conn:
        assert balances(conn) == {"agency-a": {"credits": 1, "yen": 300000}}
        assert len(conn.execute(select(t.agency_events)).all()) == 3


def test_per_placement_credit_and_reversal(store, make_config, tmp_path):
    config = ledger_config(make_config, rule="per_placement", yen_per_credit=500000,
                           legal_review=REVIEW)
    [ref] = handed_off(store, config, tmp_path, 1)
    client = TestClient(create_app(config, store, {}))
    assert post(client, "agency-a", {"id": "p1", "type": "placed",
                                     "reference": ref}).json()["accepted"] == 1
    with store.engine.connect() as conn:
        assert balances(conn)["agency-a"] == {"credits": 1, "yen": 500000}
    cancel = post(client, "agency-a", {"id": "c1", "type": "placement_cancelled",
                                       "reference": ref})
    assert cancel.json()["accepted"] == 1
    again = post(client, "agency-a", {"id": "c2", "type": "placement_cancelled",
                                      "reference": ref})
    assert again.status_code == 422 and "no placement" in again.json()["error"]
    with store.engine.connect() as conn:
        assert balances(conn)["agency-a"] == {"credits": 0, "yen": 0}
        entries = conn.execute(select(t.credit_entries.c.credits).order_by(
            t.credit_entries.c.id)).scalars().all()
    assert entries == [1, -1]
    with pytest.raises(DBAPIError, match="append-only"):
        with store.begin() as conn:
            conn.execute(update(t.credit_entries).values(credits=5))


def test_without_attestation_events_count_but_no_credits(store, make_config, tmp_path):
    config = ledger_config(make_config)
    [ref] = handed_off(store, config, tmp_path, 1)
    client = TestClient(create_app(config, store, {}))
    assert post(client, "agency-a", {"id": "p1", "type": "placed",
                                     "reference": ref}).json()["accepted"] == 1
    with store.engine.connect() as conn:
        assert balances(conn) == {}
        assert conn.execute(select(t.agency_events.c.kind)).scalars().all() == ["placed"]


def test_csv_import_reports_bad_rows_by_line(store, make_config, tmp_path):
    config = ledger_config(make_config, rule="per_placement", legal_review=REVIEW)
    refs = handed_off(store, config, tmp_path, 2)
    path = tmp_path / "agency-a.csv"
    path.write_text("\ufeffreference,type,occurred_at\n"
                    f"{refs[0]},registered,2025-07-01\n"
                    f"{refs[0]},placed,2025-07-20\n"
                    f"{refs[1]},registered,2025-07-02\n"
                    "cr_unknown,placed,2025-07-03\n"
                    f"{refs[1]},placed,next week\n", encoding="utf-8")
    report = import_csv(store, config, path, now=T0)
    assert (report.stored, report.duplicates, report.credits) == (3, 0, 1)
    assert len(report.errors) == 2
    assert report.errors[0].startswith("agency-a.csv line 5: unknown reference 'cr_unknown'")
    assert report.errors[1].startswith("agency-a.csv line 6:")
    again = import_csv(store, config, path, now=T0)
    assert (again.stored, again.duplicates) == (0, 3)
    with store.engine.connect() as conn:
        when = conn.execute(select(t.agency_events.c.occurred_at).where(
            t.agency_events.c.kind == "placed")).scalar_one()
    assert when.isoformat() == "2025-07-19T15:00:00+00:00"   # midnight in Tokyo


# --- issue 11, point 5: a real legal gate ---------------------------------------------------
def test_point_5_the_review_is_audited_on_first_use_and_shown_in_report(store, make_config,
                                                                       tmp_path):
    from relay_core.commands.tables import report_tables
    from relay_core.records.report import build_report, legal_review_lines, to_html, to_json

    config = ledger_config(make_config, rule="per_placement", yen_per_credit=1,
                           legal_review=REVIEW)
    refs = handed_off(store, config, tmp_path, 2)
    client = TestClient(create_app(config, store, {}))
    for i, ref in enumerate(refs):
        assert post(client, "agency-a", {"id": f"p{i}", "type": "placed",
                                         "reference": ref}).json()["accepted"] == 1
    with store.engine.connect() as conn:
        audited = conn.execute(select(t.audit_log).where(
            t.audit_log.c.action == "legal_review_in_force")).all()
        kept = conn.execute(select(t.ledger_attestations)).all()
    assert len(audited) == 1 and len(kept) == 1          # first use only
    assert audited[0].case_id is None
    for word in (REVIEW["reviewer"], "2025-06-01", REVIEW["document"], "13-募-000123"):
        assert word in audited[0].reason
    assert (kept[0].reviewer, kept[0].document, kept[0].rule) == (
        REVIEW["reviewer"], REVIEW["document"], "per_placement")

    report = build_report(store, config)
    assert report.legal_review["in_force"]["document"] == REVIEW["document"]
    line = legal_review_lines(report)[0]
    assert REVIEW["reviewer"] in line and "first used" in line and "13-募-000123" in line
    assert REVIEW["document"] in to_html(report, "x")
    assert json.loads(to_json(report))["legal_review"]["used"][0]["rule"] == "per_placement"
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(report_tables(report))
    assert REVIEW["reviewer"] in console.export_text()

    # A new review is a new attestation, audited anew; the earlier one stays on record.
    renewed = ledger_config(make_config, rule="per_placement",
                            legal_review={**REVIEW, "document": "意見書 LR-13"})
    [ref] = handed_off(store, renewed, tmp_path, 1, agency_id="agency-b")
    client = TestClient(create_app(renewed, store, {}))
    assert post(client, "agency-b", {"id": "q", "type": "placed",
                                     "reference": ref}).json()["accepted"] == 1
    lines = legal_review_lines(build_report(store, renewed))
    assert "LR-13" in lines[0] and any("earlier review" in x and "LR-12" in x for x in lines)


def test_point_5_without_a_review_events_are_recorded_and_no_credits(store, make_config,
                                                                    tmp_path):
    from relay_core.records.report import build_report, legal_review_lines

    config = ledger_config(make_config)                 # rule = "off"
    [ref] = handed_off(store, config, tmp_path, 1)
    client = TestClient(create_app(config, store, {}))
    assert post(client, "agency-a", {"id": "p", "type": "placed",
                                     "reference": ref}).json()["accepted"] == 1
    with store.engine.connect() as conn:
        assert len(conn.execute(select(t.agency_events)).all()) == 1
        assert balances(conn) == {}
        assert conn.execute(select(t.ledger_attestations)).all() == []
    assert legal_review_lines(build_report(store, config))[0].startswith("credits off")


def test_point_5_the_consent_page_states_the_credits_while_they_are_on(make_config):
    from relay_core.records.consent.disclosure import PageRenderer

    on = ledger_config(make_config, rule="per_placement", legal_review=REVIEW)
    off = ledger_config(make_config)
    for lang, words in (("ja", ["クレジット", "費用や不利益が生じることはなく",
                                "あなたへの対応が変わることもありません"]),
                        ("en", ["service credits", "costs you nothing",
                                "changes nothing for you"])):
        shown = str(PageRenderer(on).consent_text(lang).html)
        assert all(w in shown for w in words), lang
        assert words[0] not in str(PageRenderer(off).consent_text(lang).html)


def test_point_5_check_shows_the_review_credits_rest_on(make_config, tmp_path):
    from typer.testing import CliRunner

    from relay_core.commands.cli import app

    make_config({"agencies": [agency("agency-a", url="https://a.example/in")],
                 "ledger": {"rule": "per_placement", "legal_review": REVIEW}},
                write_to=tmp_path / "c.toml")
    result = json.loads(CliRunner().invoke(app, ["check", "--config", str(tmp_path / "c.toml"),
                                                 "--offline", "--json"]).stdout)
    credits = next(r for r in result if r["what"] == "credits")
    assert credits["ok"] and REVIEW["reviewer"] in credits["detail"]
    # A review dated in the future: the file does not load, and check names the key.
    make_config({"ledger": {"rule": "off"}}, write_to=tmp_path / "bad.toml")
    text = (tmp_path / "bad.toml").read_text(encoding="utf-8")
    (tmp_path / "bad.toml").write_text(
        text.replace('rule = "off"', 'rule = "per_placement"')
        + '\n[ledger.legal_review]\nreviewer = "x"\nreviewed_on = 2999-01-01\ndocument = "d"\n',
        encoding="utf-8")
    bad = json.loads(CliRunner().invoke(app, ["check", "--config", str(tmp_path / "bad.toml"),
                                              "--offline", "--json"]).stdout)
    assert not bad[0]["ok"] and "ledger.legal_review.reviewed_on" in bad[0]["detail"]
