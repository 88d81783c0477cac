"""From a recorded consent to an agency's receiver, a placement, a credit and the report."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relay_core.commands.cli import app as cli
from relay_core.config import parse_config
from relay_core.cycle.ingest import ingest
from relay_core.mail import FileTransport
from relay_core.models import CaseState
from relay_core.records.handoff.channels import sign
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.report import (
    STAGES,
    Report,
    build_report,
    to_csv,
    to_html,
    to_json,
)
from relay_core.web.app import create_app
from tests.fakes import event
from tests.handoff.support import SECRET, T0, Agency, agency, consented_case

REVIEW = {"reviewer": "counsel A. Tanaka", "reviewed_on": "2025-06-01",
          "document": "memo LR-12"}


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)


def post_event(client, agency_id, payload):
    body = json.dumps(payload).encode()
    return client.post(f"/agency/{agency_id}/events", content=body, headers={
        "X-Relay-Signature": sign(SECRET.encode(), body, int(time.time()))})


def scenario(store, make_config, tmp_path, receiver_url):
    config = make_config({
        "agencies": [agency("agency-a", url=receiver_url), agency("agency-m", "email")],
        "ledger": {"rule": "per_placement", "yen_per_credit": 450000,
                   "legal_review": REVIEW}})
    # Two sent-and-consented candidates in June, one in May; one skipped rejection.
    consented_case(store, config, "1", ["agency-a", "agency-m"])
    consented_case(store, config, "2", ["agency-a"])
    consented_case(store, config, "3", [], rejected_at=T0 - timedelta(days=40))
    consented_case(store, config, "4", ["agency-m"], source="hrmos")
    ingest(store, config, [event("5", rejected_at=T0 - timedelta(days=60))], now=T0,
           actor="test")                     # too old: skipped
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
    return config


def test_consent_to_placement_to_credit_to_report(store, make_config, tmp_path):
    with Agency() as agent:
        config = scenario(store, make_config, tmp_path, agent.url)
    refs = {doc["reference"] for doc in agent.accepted.values()}
    assert len(refs) == 2
    client = TestClient(create_app(config, store, {}))
    first, second = sorted(refs)
    assert post_event(client, "agency-a", {"events": [
        {"id": "r1", "type": "registered", "reference": first},
        {"id": "r2", "type": "registered", "reference": second},
        {"id": "p1", "type": "placed", "reference": first,
         "occurred_at": "2025-07-15T09:00:00+09:00"}]}).json()["accepted"] == 3
    report = build_report(store, config, now=T0)
    assert report.total == {"rejected": 5, "eligible": 4, "sent": 4, "consented": 3,
                            "handed_off": 3, "sent_to_form": 0, "registered": 2, "placed": 1}
    assert report.by_source["hrmos"]["handed_off"] == 1
    assert set(report.by_month) == {"2025-04", "2025-05", "2025-06"}
    assert report.by_agency["agency-a"] == {
        "legal_name": "株式会社AGENCY-A", "consented": 2, "handed_off": 2, "sent_to_form": 0,
        "registered": 2, "placed": 1, "credits": 1, "yen": 450000}
    assert report.by_agency["agency-m"]["handed_off"] == 2
    assert report.credits_by_month == [{"agency": "agency-a", "month": "2025-07",
                                        "credits": 1, "yen": 450000}]
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[0] == {"group": "total", "key": "all", "rejected": "5", "eligible": "4",
                       "sent": "4", "sent_late": "0", "consented": "3", "handed_off": "3",
                       "sent_to_form": "0",
                       "registered": "2", "placed": "1", "credits": "", "yen": "",
                       "ambiguous": "0"}
    assert json.loads(to_json(report))["by_agency"]["agency-a"]["credits"] == 1
    page = to_html(report, "株式会社サンプル")
    assert page.startswith("<!doctype html>") and "<svg" in page and "</html>" in page
    assert not re.search(r"""(src|href)\s*=|<script|<link|@import|url\(""", page)
    for rendered in (page, to_csv(report), to_json(report)):
        assert "example.com" not in rendered and "山田" not in rendered
    (tmp_path / "report.html").write_text(page, encoding="utf-8")


def test_cancelled_placement_drops_out_of_the_funnel(store, make_config, tmp_path):
    with Agency() as agent:
        config = scenario(store, make_config, tmp_path, agent.url)
    ref = sorted(doc["reference"] for doc in agent.accepted.values())[0]
    client = TestClient(create_app(config, store, {}))
    post_event(client, "agency-a", {"id": "p1", "type": "placed", "reference": ref})
    post_event(client, "agency-a", {"id": "c1", "type": "placement_cancelled",
                                    "reference": ref})
    report = build_report(store, config)
    assert report.total["placed"] == 0 and report.by_agency["agency-a"]["credits"] == 0


def test_report_command_writes_every_format(store, store_url, tmp_path):
    config_file = tmp_path / "career-relay.toml"
    config_file.write_text(f"""
[company]
name = "株式会社サンプル"
legal_name = "株式会社サンプル"
address = "東京都千代田区丸の内1-1-1"
representative = "代表取締役 山田太郎"
privacy_policy_url = "https://example.co.jp/privacy"
[store]
url = "{store_url}"
""", encoding="utf-8")
    runner = CliRunner()
    with store.begin() as conn:
        case_id = store.insert_case(conn, event("1"), email="a@example.com", language="ja",
                                    now=T0, actor="test")
        store.transition(conn, case_id, CaseState.SKIPPED, actor="t", reason="x", now=T0)
    for fmt in ("table", "csv", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        args = ["report", "--config", str(config_file), "--format", fmt]
        result = runner.invoke(cli, args + ([] if fmt == "table" else ["--output", str(out)]))
        assert result.exit_code == 0, result.output
        if fmt != "table":
            assert out.stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["total"]["rejected"] == 1
    bad = runner.invoke(cli, ["report", "--config", str(config_file), "--format", "pdf"])
    assert bad.exit_code == 2


def small_report(legal_name: str = "株式会社A") -> Report:
    return Report(generated_at=datetime(2025, 7, 1, 9, 30, tzinfo=UTC),
                  total=dict(zip(STAGES, [12, 10, 9, 5, 4, 0, 2, 1], strict=True)),
                  by_source={}, by_month={},
                  by_agency={"agency-a": {"legal_name": legal_name, "consented": 3,
                                          "handed_off": 3, "sent_to_form": 0, "registered": 2,
                                          "placed": 1, "credits": 1, "yen": 450000}},
                  credits_by_month=[{"agency": "agency-a", "month": "2025-07", "credits": 1,
                                     "yen": 450000}], ledger_rule="per_placement")


def test_html_report_template_is_self_contained_and_escapes_names():
    page = to_html(small_report('B&Co "<i>"'), '<script>alert("x")</script>')
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=|<script|<link|@import|url\(""", page)
    assert page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") == 2   # title, h1
    assert "<td>B&amp;Co &#34;&lt;i&gt;&#34;</td>" in page and "<i>" not in page
    # The funnel: one bar per stage, the widest the first, each with its share of the stage
    # it follows (handed off, sent to form and registered: of consented).
    bars = re.findall(r'<rect x="([\d.]+)" y="(\d+)" width="(\d+)"', page)
    assert len(bars) == len(STAGES) and bars[0] == ("120.0", "8", "420")
    assert ">10 (83%)</text>" in page and ">1 (50%)</text>" in page
    assert ">4 (80%)</text>" in page and ">2 (40%)</text>" in page
    assert "<td>450,000</td>" in page and "Credits by agency and month" in page


def test_html_report_template_can_be_overridden(tmp_path):
    folder = tmp_path / "mine" / "report"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<p>{{ company }} {{ funnel.bars[0].count }}</p>\n",
                                        encoding="utf-8")
    config = parse_config({"company": {"name": "x"}, "mail": {"templates_dir": "mine"}},
                          tmp_path)
    assert to_html(small_report(), "A&B", config) == "<p>A&amp;B 12</p>"
