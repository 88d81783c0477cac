"""Issue 11, point 6: the shipped texts promise only what the product does. The rejection links
the privacy policy instead of promising to destroy documents; each agency's retention period is
on the consent page; an invite_only email names the sender and its postal address and carries
an opt-out that stops further mail."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email import message_from_bytes, policy

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relay_core.commands.cli import app as cli
from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.records.consent.disclosure import PageRenderer
from relay_core.rendering.emails import Renderer
from relay_core.rendering.environment import shipped_templates_dir
from relay_core.store import cases, utcnow
from relay_core.web.app import create_app
from tests.consent.conftest import AGENCIES, BASE, csrf_of, outbox_files, post, rejection
from tests.fakes import FakeConnector


def test_point_6_the_rejection_promises_no_disposal_and_links_the_privacy_policy(make_config):
    for path in (shipped_templates_dir() / "email").rglob("*.*"):
        text = path.read_text(encoding="utf-8")
        assert "破棄" not in text and "dispose" not in text.lower(), path
    config = make_config({"agencies": AGENCIES})
    renderer = Renderer(config)
    for lang, words in (("ja", "保管期間と削除"), ("en", "when we delete them")):
        mail = renderer.render("rejection", lang, renderer.sample_context("rejection", lang,
                                                                          invited=False))
        assert words in mail.text and "https://example.co.jp/privacy" in mail.text
        assert "https://example.co.jp/privacy" in mail.html


def test_point_6_each_agency_retention_is_on_the_consent_page(make_config, tmp_path):
    config = make_config({"agencies": AGENCIES})
    for lang, label in (("ja", "紹介会社での保存期間"), ("en", "How long the agency keeps it")):
        html = str(PageRenderer(config).consent_text(lang).html)
        assert html.count(label) == 2
        assert "ご登録から2年間" in html and "two years after registration" in html
        assert "必要な間だけ" not in html
    bare = {k: v for k, v in AGENCIES[0].items() if k != "retention"}
    make_config({"agencies": [bare, AGENCIES[1]]}, write_to=tmp_path / "c.toml")
    assert "株式会社エージェントA" not in str(PageRenderer(make_config(
        {"agencies": [bare, AGENCIES[1]]})).consent_text("ja").html)
    checked = json.loads(CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "c.toml"),
                                                  "--offline", "--json"]).stdout)
    assert any(not r["ok"] and "agencies[0].retention" in r["detail"] for r in checked)


def test_point_6_invite_only_mail_names_the_sender_and_its_opt_out_stops_further_mail(
        make_config, store):
    config = make_config({"agencies": AGENCIES, "mail": {"mode": "invite_only"}})
    connector = FakeConnector(events=[rejection("1")])
    transport = FileTransport(config.path(config.mail.outbox_dir))
    assert run_cycle(config, store, {"fake": connector}, transport=transport,
                     now=utcnow()).sent == 1
    [path] = outbox_files(config)
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "株式会社サンプル" in body and "東京都千代田区丸の内1-1-1" in body
        assert "recruit@example.co.jp" in body and f"{BASE}/u/" in body
    stop = re.search(re.escape(BASE) + r"/u/[A-Za-z0-9_\-.]+", text).group(0)

    with TestClient(create_app(config, store, {}), base_url=BASE,
                    follow_redirects=False) as client:
        for _ in range(3):      # scanners: GET and HEAD change nothing
            assert client.head(stop).status_code == 303
            first = client.get(stop)
        page = client.get(first.headers["location"])
        assert page.status_code == 200 and "配信を停止する" in page.text
        with store.engine.connect() as conn:
            assert not cases.is_suppressed(conn, _key("taro@example.com"))
        done = post(client, "/relay/unsubscribe", {"csrf": csrf_of(page.text), "lang": "ja"})
        assert done.status_code == 303
        assert "配信を停止しました" in client.get(done.headers["location"]).text
        forged = post(client, "/relay/unsubscribe", {"csrf": "x", "lang": "ja"})
        assert forged.status_code == 403
    with store.engine.connect() as conn:
        assert cases.is_suppressed(conn, _key("taro@example.com"))
    case_id = store.case_by_key("fake", "1").id
    assert "unsubscribed" in [r["action"] for r in store.audit_trail(case_id)]
    # The next rejection of the same person is not mailed.
    later = FakeConnector(events=[rejection("1"), rejection("2")])
    report = run_cycle(config, store, {"fake": later}, transport=transport,
                       now=utcnow() + timedelta(minutes=1))
    assert report.sent == 0
    assert "suppressed" in store.case_by_key("fake", "2").reason


def test_point_6_check_refuses_an_invite_only_template_without_the_opt_out(make_config,
                                                                           tmp_path):
    folder = tmp_path / "mine" / "email" / "ja"
    folder.mkdir(parents=True)
    shipped = shipped_templates_dir() / "email" / "ja" / "invite_only.txt"
    (folder / "invite_only.txt").write_text(
        shipped.read_text(encoding="utf-8").replace('{% include "email/ja/_sender.txt" %}', ""),
        encoding="utf-8")
    config = make_config({"mail": {"templates_dir": "mine"}})
    problems = [str(p) for p in Renderer(config).check()]
    assert any("invite_only.txt" in p and "unsubscribe_url" in p for p in problems)
    assert any("invite_only.txt" in p and "company.address" in p for p in problems)


def _key(address: str) -> str:
    from relay_core.store import person_key

    return person_key(address)
