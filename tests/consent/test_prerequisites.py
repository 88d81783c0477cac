"""Issue 11, point 3: when the relay cannot work, emails go out without the invitation, the
reason is recorded and shown by `run`, `status` and `check`; an agency that cannot receive is
never offered on the consent page."""

from __future__ import annotations

import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core.commands.cli import app as cli
from relay_core.records.consent.disclosure import PageRenderer
from relay_core.records.consent.requirements import WITHHELD_ACTION, invitation_blockers
from relay_core.store import open_store
from tests.consent.conftest import AGENCIES, open_page, send_invitations

ROOT = Path(__file__).resolve().parents[2]
NOW = "2025-06-23T11:00:00+09:00"
runner = CliRunner()


@pytest.fixture
def example(tmp_path, store_url):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    path = tmp_path / "career-relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def mails(folder: Path) -> list:
    return [message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(folder.glob("*.eml"))]


@pytest.mark.parametrize("old, new, key", [
    ('privacy_policy_url = "https://example.co.jp/privacy"', 'privacy_policy_url = ""',
     "company.privacy_policy_url"),
    ('representative = "代表取締役 山田太郎"', 'representative = ""', "company.representative"),
    ('deletion_contact = "privacy@agency-a.example"', 'deletion_contact = ""',
     "agencies[0].deletion_contact"),
])
def test_point_3_without_what_the_relay_needs_emails_go_out_without_the_invitation(
        example, tmp_path, store_url, old, new, key):
    """Point 3: run mails without the invitation and says why (exit 1), the case and the audit
    log record the reason, status shows it, check fails naming the key."""
    edit(example, old, new)
    if key.startswith("agencies"):   # the only other agency cannot receive either
        edit(example, 'email = "intake@agency-b.example"\n', 'email = ""\n')
    # The first run records the installation; backfill opts the sample's June rejections in.
    runner.invoke(cli, ["run", "--config", str(example), "--now", NOW])
    opted = runner.invoke(cli, ["backfill", "--config", str(example), "--since", "2025-06-01",
                                "--yes", "--now", NOW])
    assert opted.exit_code == 0, opted.output
    ran = runner.invoke(cli, ["run", "--config", str(example), "--now", NOW])
    assert ran.exit_code == 1, ran.output
    assert "sent without the relay invitation" in ran.output
    sent = mails(tmp_path / "examples" / "outbox")
    assert sent, ran.output
    for message in sent:
        body = message.get_body(("plain",)).get_content()
        assert "/r/" not in body and "人材紹介会社" not in body and "recruitment agenc" not in body

    store = open_store(store_url)
    cases = [c for c in map(store.case, range(1, 40)) if c and c.state == "sent"]
    assert len(cases) == len(sent)
    for case in cases:
        assert case.invite is False
        assert case.reason.startswith("sent without the relay invitation")
        withheld = [r for r in store.audit_trail(case.id) if r["action"] == WITHHELD_ACTION]
        assert len(withheld) == 1 and key in withheld[0]["reason"]
    store.engine.dispose()

    status = runner.invoke(cli, ["status", "--config", str(example), "--json"])
    relay = json.loads(status.stdout)["relay"]
    assert relay["blockers"] and sum(relay["sent_without_invitation"].values()) == len(sent)
    table = runner.invoke(cli, ["status", "--config", str(example)])
    assert "relay invitation" in table.stdout and "without the" in table.stdout

    checked = runner.invoke(cli, ["check", "--config", str(example), "--offline", "--json"])
    assert checked.exit_code == 1
    failures = [r for r in json.loads(checked.stdout) if not r["ok"]]
    assert any(key in r["detail"] for r in failures), failures
    assert any("without the invitation" in r["detail"] for r in failures)


def test_point_3_no_agencies_means_no_invitation(make_config, store):
    config = make_config()
    assert any(p.startswith("agencies: no [[agencies]]") for p in invitation_blockers(config))
    report = send_invitations(config, store)
    assert any("without the relay invitation" in e for e in report.errors)
    assert store.case_by_key("fake", "1").invite is False


def test_point_3_an_agency_whose_secret_does_not_resolve_is_never_offered(
        make_config, store, monkeypatch):
    monkeypatch.delenv("CR_TEST_UNSET_SECRET", raising=False)
    broken = {**AGENCIES[0], "channel": "webhook", "url": "https://agency-a.example/in",
              "secret": "env:CR_TEST_UNSET_SECRET"}
    config = make_config({"agencies": [broken, AGENCIES[1]]})
    html = str(PageRenderer(config).consent_text("ja").html)
    assert "株式会社エージェントA" not in html and "Global Talent" in html
    assert invitation_blockers(config) == []
    # The page of a real invitation offers only the agency that can receive.
    from fastapi.testclient import TestClient

    from relay_core.web.app import create_app
    from tests.consent.conftest import BASE, link_in, outbox_files

    send_invitations(config, store)
    token = link_in(outbox_files(config)[0], f"{BASE}/r/").rsplit("/", 1)[1]
    with TestClient(create_app(config, store, {}), base_url=BASE,
                    follow_redirects=False) as client:
        page = open_page(client, token).text
    assert 'value="agency-a"' not in page and 'value="agency-b"' in page
    # Alone, it leaves the relay without an agency: the invitation is withheld.
    alone = make_config({"agencies": [broken]})
    assert any("no agency can receive" in p for p in invitation_blockers(alone))
    monkeypatch.setenv("CR_TEST_UNSET_SECRET", "now-set")
    assert invitation_blockers(alone) == []


def test_point_3_check_names_the_secret_that_does_not_resolve(example, monkeypatch):
    monkeypatch.delenv("CR_TEST_UNSET_SECRET", raising=False)
    edit(example, 'email = "intake@agency-b.example"\n',
         'email = "intake@agency-b.example"\nsecret = "env:CR_TEST_UNSET_SECRET"\n')
    checked = runner.invoke(cli, ["check", "--config", str(example), "--offline", "--json"])
    failures = [r for r in json.loads(checked.stdout) if not r["ok"]]
    assert any(r["detail"].startswith("agencies[1].secret does not resolve") for r in failures)


def test_point_3_invite_only_cases_wait_while_the_relay_cannot_work(make_config, store):
    from relay_core.cycle.run import run_cycle
    from relay_core.mail.transports import FileTransport
    from relay_core.store import utcnow
    from tests.consent.conftest import rejection
    from tests.fakes import FakeConnector

    config = make_config({"mail": {"mode": "invite_only"}})      # no agencies
    connector = FakeConnector(events=[rejection("1")])
    report = run_cycle(config, store, {"fake": connector},
                       transport=FileTransport(config.path(config.mail.outbox_dir)),
                       now=utcnow())
    assert report.sent == 0 and any("invite-only email(s) wait" in e for e in report.errors)
    assert store.case_by_key("fake", "1").state == "scheduled"
