"""The consent flow in a real browser: Debian's Chromium driven by Playwright.

A rejection goes through the real pipeline (FakeConnector, file transport); the invitation
link is read from the .eml and opened; the page is checked in Japanese, in English and at a
phone-sized viewport; one of two agencies is ticked and submitted; the store must then hold a
consent for exactly that agency. The confirmation email is delivered by the next cycle and its
withdrawal link is opened in a fresh browser context, as from the mailbox days later.
Screenshots of every step go to test-artifacts/browser/.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.records.consent.records import consent_for_case, relay_status
from relay_core.store import tables as t
from relay_core.web.app import create_app
from tests.browser.conftest import ARTIFACTS, NEEDS_CHROMIUM
from tests.consent.conftest import AGENCIES, link_in, outbox_files, rejection
from tests.fakes import FakeConnector

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def server(make_config, store):
    """A uvicorn server on an ephemeral loopback port, the config pointing at it."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = make_config({"agencies": AGENCIES, "relay": {"public_base_url": base}})
    app = create_app(config, store, {})
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield config, base
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cycle(config, store, connector):
    return run_cycle(config, store, {connector.name: connector},
                     transport=FileTransport(config.path(config.mail.outbox_dir)))


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_invitation_to_consent_to_withdrawal_in_chromium(server, store, browser):
    config, base = server
    connector = FakeConnector(events=[rejection("1")])
    assert cycle(config, store, connector).sent == 1
    link = link_in(outbox_files(config)[0], f"{base}/r/")
    case_id = store.case_by_key("fake", "1").id

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    posts: list[dict[str, str]] = []
    page.on("request", lambda r: posts.append(r.all_headers()) if r.method == "POST" else None)
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)

    page.goto(link)
    assert page.url == f"{base}/relay"                   # the token left the address bar
    assert page.get_by_role("heading", level=1).inner_text() == "人材紹介会社へのご紹介（任意）"
    assert page.get_by_text("株式会社エージェントA").first.is_visible()
    assert page.get_by_text("影響は一切ありません").is_visible()
    boxes = page.get_by_role("checkbox")
    assert boxes.count() == 2 and not any(boxes.nth(i).is_checked() for i in range(2))
    shot(page, "01_consent_ja_desktop")

    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith(
        "Introductions to recruitment agencies")
    assert page.get_by_text("Global Talent Partners Pte. Ltd.").first.is_visible()
    shot(page, "02_consent_en_desktop")

    page.set_viewport_size({"width": 375, "height": 667})
    assert no_horizontal_scroll(page)
    shot(page, "03_consent_en_phone")
    page.get_by_role("link", name="日本語").click()
    assert no_horizontal_scroll(page)
    shot(page, "04_consent_ja_phone")

    page.get_by_label("株式会社エージェントA（日本）に、上に記載した項目を提供することに同意します").check()
    page.get_by_label("希望職種").fill("法人営業")
    assert not page.get_by_role("checkbox").nth(1).is_checked()
    shot(page, "05_one_agency_ticked_phone")
    page.get_by_role("button", name="同意して送信").click()
    page.wait_for_url(f"{base}/relay?lang=ja")
    assert page.get_by_role("heading", level=1).inner_text() == "ご同意いただいた内容"
    shot(page, "06_consented_phone")

    with store.engine.connect() as conn:
        record = consent_for_case(conn, case_id)
        handoffs = conn.execute(t.handoffs.select()).all()
    assert [a.agency_id for a in record.agencies] == ["agency-a"]
    assert [(h.agency_id, h.state) for h in handoffs] == [("agency-a", "pending")]
    assert external == []
    # With Referrer-Policy: no-referrer, Chromium sends `Origin: null` on our own form and
    # Fetch metadata says same-origin; the Origin check accepts exactly that combination.
    assert [(p.get("origin"), p.get("sec-fetch-site")) for p in posts] == [
        ("null", "same-origin")]
    context.close()

    # The next cycle delivers the confirmation; its link works in a fresh browser.
    cycle(config, store, connector)
    withdraw_url = next(link for f in outbox_files(config)
                        if (link := _find_link(f, f"{base}/w/")))
    later = browser.new_context(viewport={"width": 375, "height": 667}, locale="ja-JP")
    page = later.new_page()
    page.goto(withdraw_url)
    assert page.url.startswith(f"{base}/relay")
    assert page.get_by_text("株式会社エージェントA").first.is_visible()
    shot(page, "07_withdraw_page_phone")
    page.get_by_role("button", name="同意を撤回する").click()
    page.wait_for_url(f"{base}/relay?lang=ja")
    assert page.get_by_role("heading", level=1).inner_text() == "同意を撤回しました"
    shot(page, "08_withdrawn_phone")
    later.close()
    with store.engine.connect() as conn:
        assert relay_status(conn, case_id).value == "withdrawn"
        # The cycle handed the candidate to agency A (its intake email); the withdrawal
        # asks it to delete the data.
        assert [h.state for h in conn.execute(t.handoffs.select())] == ["delivered"]
        assert [n.agency_id for n in conn.execute(t.deletion_notices.select())] == [
            "agency-a"]


def _find_link(path: Path, prefix: str) -> str | None:
    try:
        return link_in(path, prefix)
    except AssertionError:
        return None


def test_link_clicked_on_another_site_still_opens_the_page(server, store, browser):
    """A webmail link is a cross-site navigation: the SameSite=Strict cookie set by /r/ is
    withheld on the redirect, and one same-site hop from /relay brings it along."""
    config, base = server
    assert cycle(config, store, FakeConnector(events=[rejection("1")])).sent == 1
    link = link_in(outbox_files(config)[0], f"{base}/r/")
    context = browser.new_context(viewport={"width": 375, "height": 667})
    page = context.new_page()
    page.set_content(f'<p><a id="mail-link" href="{link}">{link}</a></p>')
    page.click("#mail-link")
    page.wait_for_selector("input[type=checkbox]")
    assert page.get_by_role("heading", level=1).inner_text() == "人材紹介会社へのご紹介（任意）"
    shot(page, "00_opened_from_another_site_phone")
    page.get_by_role("button", name="紹介を希望しない").click()
    page.wait_for_url(f"{base}/relay?lang=ja")
    assert page.get_by_role("heading", level=1).inner_text() == "ご回答ありがとうございました"
    shot(page, "09_declined_phone")
    context.close()
    with store.engine.connect() as conn:
        assert relay_status(conn, store.case_by_key("fake", "1").id).value == "declined"
