"""The HR console in a real browser: Debian's Chromium driven by Playwright.

Rejections go through the real pipeline (FakeConnector, hold_for_approval, file transport);
some are approved and sent, one candidate consented and was handed to an agency, which
reported a registration. Then a person signs in (after a wrong password), looks at the
dashboard, searches, opens a case, approves one, cancels another with a reason, approves from
the queue, resends an email whose delivery is unknown (ambiguous) after reading the warning,
and checks agencies and the report, in Japanese and English, on a desktop and a phone-sized
screen. Requests without a session or without the CSRF token are refused.
Screenshots go to test-artifacts/browser/console_*.png.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest

from relay_core.cycle.approval import approve
from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.store import admin as accounts
from relay_core.store import tables as t
from relay_core.store import utcnow
from relay_core.web.admin.passwords import hash_password
from relay_core.web.app import create_app
from tests.admin.conftest import Dropping
from tests.browser.conftest import ARTIFACTS, NEEDS_CHROMIUM
from tests.consent.conftest import AGENCIES
from tests.fakes import FakeConnector, event

pytestmark = NEEDS_CHROMIUM
PASSWORD = "correct horse battery staple"
PEOPLE = [("A-101", "山田 花子", "hanako.yamada@example.com", "ja"),
          ("A-102", "鈴木 太郎", "taro.suzuki@example.com", "ja"),
          ("A-103", "Alex Morgan", "alex.morgan@example.com", "en"),
          ("A-104", "佐藤 美咲", "misaki.sato@example.com", "ja"),
          ("A-105", "高橋 健", "ken.takahashi@example.com", "ja"),
          ("A-106", "Priya Shah", "priya.shah@example.com", "en")]


def _events():
    out = []
    for i, (app_id, name, email, lang) in enumerate(PEOPLE):
        e = event(app_id, email=email, language=lang,
                  rejected_at=utcnow() - timedelta(hours=30 + i))
        last, _, first = name.partition(" ")
        person = e.person.model_copy(update={"full_name": name, "last_name": last,
                                             "first_name": first})
        out.append(e.model_copy(update={"person": person, "job_title": "法人営業（東京）"
                                        if lang == "ja" else "Account Executive"}))
    return out


@pytest.fixture
def console_server(make_config, store):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = make_config({"agencies": AGENCIES, "relay": {"public_base_url": base},
                          "schedule": {"hold_for_approval": True},
                          "company": {"name": "株式会社サンプル"}})
    connector = FakeConnector(events=_events())
    transport = FileTransport(config.path(config.mail.outbox_dir))
    run_cycle(config, store, {"fake": connector}, transport=transport)
    ids = {e.application_id: store.case_by_key("fake", e.application_id).id
           for e in connector.events}
    approve(store, [ids["A-104"], ids["A-105"]], actor="cli:approve")
    run_cycle(config, store, {"fake": connector}, transport=transport)
    approve(store, [ids["A-106"]], actor="cli:approve")     # its server's answer never comes
    run_cycle(config, store, {"fake": connector},
              transport=Dropping(config.path(config.mail.outbox_dir)))
    _consent_and_registration(store, ids["A-104"])
    accounts.create_account(store, "hanako", email=None, password_hash=hash_password(PASSWORD),
                            actor="test", now=utcnow())
    app = create_app(config, store, {"fake": connector})
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield base, ids
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _consent_and_registration(store, case_id: int) -> None:
    """Test data for the agency and report pages: a consent to agency A, its delivered
    handoff and the agency's `registered` event (the consent flow has its own tests)."""
    now = utcnow()
    with store.begin() as conn:
        invitation = conn.execute(select_invitation(case_id)).scalar_one()
        consent = conn.execute(t.consents.insert().values(
            case_id=case_id, invitation_id=invitation, source="fake", application_id="A-104",
            candidate_id="cA-104", text_version="2025-06", text_sha256="0" * 64,
            language="ja", method="web", consented_at=now)).inserted_primary_key[0]
        conn.execute(t.consent_agencies.insert().values(
            consent_id=consent, agency_id="agency-a", legal_name="株式会社エージェントA",
            fields_json='["name", "email"]'))
        conn.execute(t.relay_status.insert().values(case_id=case_id, status="consented",
                                                    changed_at=now))
        handoff = conn.execute(t.handoffs.insert().values(
            consent_id=consent, case_id=case_id, agency_id="agency-a", state="delivered",
            attempts=1, created_at=now, updated_at=now,
            delivered_at=now)).inserted_primary_key[0]
        conn.execute(t.agency_events.insert().values(
            agency_id="agency-a", event_id="ev-1", kind="registered", reference="cr_x",
            handoff_id=handoff, case_id=case_id, occurred_at=now, received_at=now, via="api"))


def select_invitation(case_id: int):
    from sqlalchemy import select

    return select(t.invitations.c.id).where(t.invitations.c.case_id == case_id).limit(1)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console_{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_sign_in_approve_cancel_and_every_page_in_chromium(console_server, browser, store):
    base, ids = console_server
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = context.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Signed out: the console sends you to sign in, and comes back after.
    page.goto(f"{base}/admin/cases")
    assert page.url.startswith(f"{base}/admin/sign-in")
    shot(page, "01_sign_in_ja_desktop")
    page.get_by_label("アカウント名").fill("hanako")
    page.get_by_label("パスワード").fill("wrong password")
    page.get_by_role("button", name="サインイン").click()
    assert page.get_by_role("alert").is_visible()
    shot(page, "02_wrong_password_ja_desktop")
    page.get_by_label("アカウント名").fill("hanako")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(f"{base}/admin/cases")
    assert page.get_by_role("heading", level=1).inner_text() == "ケース"

    page.goto(f"{base}/admin/")
    assert page.get_by_role("heading", level=1).inner_text() == "ダッシュボード"
    shot(page, "03_dashboard_ja_desktop")
    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    shot(page, "04_dashboard_en_desktop")

    page.get_by_role("link", name="Cases", exact=True).click()
    page.get_by_label("Search").fill("yamada")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.cases tbody tr").count() == 1
    page.goto(f"{base}/admin/cases")
    shot(page, "05_cases_en_desktop")

    # Approve one held case from its page.
    page.goto(f"{base}/admin/cases/{ids['A-101']}")
    assert page.get_by_text("山田 花子").first.is_visible()
    page.locator("details.part summary").nth(1).click()          # the HTML part
    frame = page.frame_locator("iframe.mail-frame")
    assert "山田 花子" in frame.locator("body").inner_text()      # sandboxed, but rendered
    shot(page, "06_case_held_en_desktop")
    page.get_by_role("button", name="Approve (schedule the email)").click()
    page.wait_for_url(f"{base}/admin/cases/{ids['A-101']}?done=approved&n=1")
    assert page.get_by_role("status").inner_text() == "Approved 1 case(s)."
    assert store.case(ids["A-101"]).state == "scheduled"

    # Cancel another with a reason.
    page.goto(f"{base}/admin/cases/{ids['A-102']}")
    page.get_by_label("Reason (kept in the audit log)").fill("re-opened in the ATS")
    page.get_by_role("button", name="Cancel the email").click()
    page.wait_for_url(f"{base}/admin/cases/{ids['A-102']}?done=cancelled&n=1")
    assert store.case(ids["A-102"]).state == "cancelled"
    assert store.audit_trail(ids["A-102"])[-1]["reason"] == "re-opened in the ATS"
    assert store.audit_trail(ids["A-102"])[-1]["actor"] == "admin:hanako"
    shot(page, "07_case_cancelled_en_desktop")

    # A sent case with its consent, handoff and agency event.
    page.goto(f"{base}/admin/cases/{ids['A-104']}")
    assert page.get_by_text("株式会社エージェントA").first.is_visible()
    shot(page, "08_case_sent_en_desktop")

    # The queue: approve what is left, after reviewing it.
    page.goto(f"{base}/admin/queue")
    shot(page, "09_queue_en_desktop")
    page.get_by_label("Select all").check()                    # admin.js
    page.get_by_role("button", name="Approve selected").click()
    page.wait_for_url(f"{base}/admin/queue?done=approved&n=1")
    assert store.case(ids["A-103"]).state == "scheduled"

    # The ambiguous one: listed on the dashboard, resent from its page after the warning.
    page.goto(f"{base}/admin/")
    page.get_by_role("link", name=f"#{ids['A-106']}").click()
    page.wait_for_url(f"{base}/admin/cases/{ids['A-106']}")
    resend = page.get_by_role("button", name="Resend the same email")
    assert "may already have arrived" in page.locator("#resend-warning").inner_text()
    shot(page, "09b_case_ambiguous_en_desktop")
    page.set_viewport_size({"width": 375, "height": 667})        # the warning and the list
    assert no_horizontal_scroll(page)
    shot(page, "09c_case_ambiguous_en_phone")
    page.goto(f"{base}/admin/")
    assert no_horizontal_scroll(page)
    shot(page, "09d_dashboard_waiting_en_phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/admin/cases/{ids['A-106']}")
    page.get_by_label("Note (optional, kept in the audit log)").fill("not in the server log")
    resend.click()
    page.wait_for_url(f"{base}/admin/cases/{ids['A-106']}?done=resent&n=1")
    assert store.case(ids["A-106"]).state == "sending"
    assert store.audit_trail(ids["A-106"])[-1]["actor"] == "admin:hanako"
    assert page.get_by_role("button", name="Resend the same email").count() == 0

    page.goto(f"{base}/admin/agencies")
    shot(page, "10_agencies_en_desktop")
    page.goto(f"{base}/admin/report")
    assert page.locator("svg").count() >= 2
    shot(page, "11_report_en_desktop")
    page.get_by_role("link", name="日本語").click()
    shot(page, "12_report_ja_desktop")

    # Phone width: every page without sideways scrolling.
    page.set_viewport_size({"width": 375, "height": 667})
    for name, path in (("dashboard", "/admin/"), ("cases", "/admin/cases"),
                       ("case", f"/admin/cases/{ids['A-104']}"), ("queue", "/admin/queue"),
                       ("agencies", "/admin/agencies"), ("report", "/admin/report")):
        for lang in ("ja", "en"):
            page.goto(f"{base}/admin/language?to={lang}&next=/admin{path[6:]}")
            assert no_horizontal_scroll(page), (name, lang)
            shot(page, f"13_{name}_{lang}_phone")

    # Forged and signed-out requests are refused.
    forged = context.request.post(f"{base}/admin/cases/{ids['A-105']}/cancel",
                                  form={"reason": "no token"}, max_redirects=0)
    assert forged.status == 403
    anonymous = browser.new_context()
    refused = anonymous.request.post(f"{base}/admin/cases/{ids['A-105']}/cancel",
                                     form={"csrf": "x"}, max_redirects=0)
    assert refused.status == 401
    anonymous.close()
    assert store.case(ids["A-105"]).state == "sent"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/admin/sign-in?out=1")
    shot(page, "14_signed_out_en_phone")
    # The only failed load is the refused sign-in (401), which the page then explains.
    assert external == [] and [e for e in errors if "status of 401" not in e] == []
    context.close()
