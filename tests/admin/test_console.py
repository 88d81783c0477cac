"""The HR console through HTTP: sign-in, sessions, CSRF, lockout, the pages, the actions and
their audit rows. The browser tests (tests/browser/test_console_browser.py) drive the same in
Chromium."""

from __future__ import annotations

from sqlalchemy import select, update

from relay_core.errors import RetriableError
from relay_core.mail.transports import FileTransport
from relay_core.store import admin as accounts
from relay_core.store import tables as t
from relay_core.store import utcnow
from relay_core.web.admin.i18n import MESSAGES
from tests.admin.conftest import PASSWORD, csrf_of, form_token, sign_in


def audit_actions(store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [(r.actor, r.action) for r in conn.execute(
            select(t.audit_log).where(t.audit_log.c.action.like("admin%"))
            .order_by(t.audit_log.c.id))]


def state_of(store, case_id: int) -> str:
    return store.case(case_id).state


# --- without an account ----------------------------------------------------------------------
def test_without_an_account_the_console_only_explains_how_to_make_one(client):
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "career-relay admin add" in page.text
    assert 'name="password"' not in page.text
    sign_in_page = client.get("/admin/sign-in").text
    assert "career-relay admin add" in sign_in_page and 'name="password"' not in sign_in_page


# --- signing in ------------------------------------------------------------------------------
def test_signed_out_requests_are_sent_to_sign_in_or_refused(client, account, held, store):
    for path in ("/admin/", "/admin/cases", f"/admin/cases/{held['A-1']}", "/admin/queue",
                 "/admin/agencies", "/admin/report", "/admin/report?format=csv",
                 f"/admin/cases/{held['A-1']}/mail.html"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/sign-in?next=")
    response = client.post(f"/admin/cases/{held['A-1']}/approve", data={"csrf": "x"})
    assert response.status_code == 401
    assert state_of(store, held["A-1"]) == "held"


def test_sign_in_sets_a_hardened_session_cookie_and_is_audited(client, account, store):
    response = sign_in(client, next_path="/admin/queue")
    assert response.status_code == 303 and response.headers["location"] == "/admin/queue"
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("cr_admin="))
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "secure", "samesite"} <= attributes
    assert "samesite=lax" in cookie.lower() and "path=/admin/" in cookie.lower()
    with store.engine.connect() as conn:
        stored = conn.execute(select(t.admin_sessions.c.token_hash)).scalar_one()
    assert cookie.split(";")[0].split("=", 1)[1] != stored      # only its hash is kept
    assert ("admin:hanako", "admin_signed_in") in audit_actions(store)
    assert client.get("/admin/").status_code == 200


def test_sign_in_refuses_an_open_redirect(client, account):
    response = sign_in(client, next_path="https://evil.example/admin/")
    assert response.headers["location"] == "/admin/"


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_account(
        client, account, store, config):
    response = sign_in(client, password="wrong password!")
    assert response.status_code == 401
    assert MESSAGES["ja"]["sign_in_failed"] in response.text
    assert "cr_admin=" not in response.headers.get("set-cookie", "")
    for _ in range(config.admin.max_failed_sign_ins - 1):
        sign_in(client, password="still wrong!!")
    # Locked: even the right password is refused, with the same message.
    response = sign_in(client)
    assert response.status_code == 401 and MESSAGES["ja"]["sign_in_failed"] in response.text
    actions = audit_actions(store)
    assert actions.count(("admin:hanako", "admin_sign_in_failed")) == 5
    assert ("admin:hanako", "admin_locked") in actions
    assert ("admin:hanako", "admin_sign_in_refused") in actions
    assert accounts.unlock_account(store, "hanako", actor="test", now=utcnow())
    assert sign_in(client).status_code == 303


def test_an_unknown_name_is_audited_without_the_typed_name(client, account, store):
    assert sign_in(client, name="hunter2-typed-in-the-name-field").status_code == 401
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.audit_log.c.actor, t.audit_log.c.reason)).all()
    assert ("admin:?", "unknown account name") in rows
    assert not any("hunter2" in (a + r) for a, r in rows)


def test_sign_in_without_its_form_token_is_refused(client, account):
    client.get("/admin/sign-in")
    response = client.post("/admin/sign-in", data={"name": "hanako", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 303


def test_sign_out_ends_the_session(signed_in, store):
    response = signed_in.post("/admin/sign-out", data={"csrf": csrf_of(signed_in)})
    assert response.status_code == 303
    assert signed_in.get("/admin/").status_code == 303
    assert ("admin:hanako", "admin_signed_out") in audit_actions(store)


def test_an_idle_session_expires(signed_in, store, config):
    with store.begin() as conn:
        conn.execute(update(t.admin_sessions).values(
            last_seen_at=utcnow() - __import__("datetime").timedelta(
                minutes=config.admin.idle_minutes + 1)))
    assert signed_in.get("/admin/").status_code == 303


# --- CSRF ------------------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_changes_nothing(signed_in, held, store):
    case = held["A-1"]
    assert signed_in.post(f"/admin/cases/{case}/approve").status_code == 403
    assert signed_in.post(f"/admin/cases/{case}/approve",
                          data={"csrf": "forged"}).status_code == 403
    response = signed_in.post(f"/admin/cases/{case}/approve",
                              data={"csrf": csrf_of(signed_in)},
                              headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    assert state_of(store, case) == "held"


# --- actions ---------------------------------------------------------------------------------
def test_approve_hold_and_cancel_go_through_approval_and_are_audited(signed_in, held, store):
    a1, a2 = held["A-1"], held["A-2"]
    csrf = csrf_of(signed_in)
    response = signed_in.post(f"/admin/cases/{a1}/approve", data={"csrf": csrf})
    assert response.status_code == 303 and "done=approved" in response.headers["location"]
    assert state_of(store, a1) == "scheduled"
    assert signed_in.post(f"/admin/cases/{a1}/hold", data={"csrf": csrf}).status_code == 303
    assert state_of(store, a1) == "held"
    signed_in.post(f"/admin/cases/{a2}/cancel",
                   data={"csrf": csrf, "reason": "the candidate asked us not to write"})
    assert state_of(store, a2) == "cancelled"
    trail = store.audit_trail(a2)[-1]
    assert (trail["actor"], trail["to_state"], trail["reason"]) == (
        "admin:hanako", "cancelled", "the candidate asked us not to write")
    assert [(r["actor"], r["to_state"]) for r in store.audit_trail(a1)][-2:] == [
        ("admin:hanako", "scheduled"), ("admin:hanako", "held")]
    # A second cancel finds nothing to do, and says so.
    response = signed_in.post(f"/admin/cases/{a2}/cancel", data={"csrf": csrf})
    assert "done=nothing" in response.headers["location"]


def test_the_queue_shows_held_cases_with_their_email_and_approves_the_selected(
        signed_in, held, store):
    page = signed_in.get("/admin/queue")
    assert page.status_code == 200
    assert page.text.count('name="case"') == 3
    assert "選考結果のご連絡" in page.text          # the subject of each previewed email
    response = signed_in.post("/admin/queue", data={
        "csrf": form_token(page.text, "csrf"), "action": "approve",
        "case": [str(held["A-1"]), str(held["A-3"])]})
    assert "done=approved" in response.headers["location"] and "n=2" in response.headers[
        "location"]
    assert [state_of(store, held[k]) for k in ("A-1", "A-2", "A-3")] == [
        "scheduled", "held", "scheduled"]


# --- pages -----------------------------------------------------------------------------------
def test_dashboard_counts_sources_and_the_last_cycle(signed_in, held):
    page = signed_in.get("/admin/").text
    assert "承認待ち" in page and "fake" in page
    assert "前回のサイクル" in page and "まだ実行されていません" not in page


def test_case_search_by_name_email_and_application_id(signed_in, held):
    for query, found in (("山田", 3), ("taro.suzuki", 1), ("A-3", 1), ("name", 0),
                         ("nobody", 0)):
        page = signed_in.get("/admin/cases", params={"q": query}).text
        assert page.count('class="name"') == found, query
    page = signed_in.get("/admin/cases", params={"state": "sent"}).text
    assert 'class="name"' not in page
    page = signed_in.get("/admin/cases", params={"source": "fake", "since": "2000-01-01",
                                                 "until": "2999-01-01"}).text
    assert page.count('class="name"') == 3


def test_the_case_page_shows_the_email_timeline_and_actions(signed_in, held):
    page = signed_in.get(f"/admin/cases/{held['A-3']}").text
    assert "Your application" in page                     # the English email, rendered
    assert "PERSONAL-LINK-MADE-WHEN-SENT" in page          # the link is made at sending
    assert "detected" in page and "held" in page           # the audit timeline
    assert "承認して送信予定にする" in page and "送信を取り消す" in page
    frame = signed_in.get(f"/admin/cases/{held['A-3']}/mail.html")
    assert frame.status_code == 200 and "<html" in frame.text
    assert "sandbox" in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert signed_in.get("/admin/cases/999999").status_code == 404


class Refusing(FileTransport):
    def send(self, mail):
        raise RetriableError("the mail server is busy", status=421)


def test_a_queued_email_is_shown_from_its_stored_bytes_with_the_personal_link_hidden(
        signed_in, held, store, config, connector):
    from relay_core.cycle.approval import approve
    from relay_core.cycle.run import run_cycle

    approve(store, [held["A-1"]], actor="test")
    run_cycle(config, store, {connector.name: connector},
              transport=Refusing(config.path(config.mail.outbox_dir)))
    with store.engine.connect() as conn:
        stored = conn.execute(select(t.outbox.c.message).where(
            t.outbox.c.case_id == held["A-1"])).scalar_one()
    assert stored                                           # queued: its exact bytes
    page = signed_in.get(f"/admin/cases/{held['A-1']}").text
    assert MESSAGES["ja"]["mail_stored"] in page
    assert f"{config.relay.public_base_url}/r/••••••" in page
    assert "/r/PERSONAL-LINK" not in page


def test_agencies_show_deliveries_and_a_dead_letter_can_be_retried(signed_in, held, store):
    now = utcnow()
    with store.begin() as conn:
        invitation = conn.execute(t.invitations.insert().values(
            case_id=held["A-1"], purpose="consent", token_hash="x" * 64, created_at=now,
            expires_at=now)).inserted_primary_key[0]
        consent = conn.execute(t.consents.insert().values(
            case_id=held["A-1"], invitation_id=invitation, source="fake", application_id="A-1",
            candidate_id="cA-1", text_version="v1", text_sha256="0" * 64, language="ja",
            method="web", consented_at=now)).inserted_primary_key[0]
        handoff = conn.execute(t.handoffs.insert().values(
            consent_id=consent, case_id=held["A-1"], agency_id="agency-a", state="dead",
            attempts=8, last_error="HTTP 500", created_at=now,
            updated_at=now)).inserted_primary_key[0]
    page = signed_in.get("/admin/agencies")
    assert "株式会社エージェントA" in page.text and "HTTP 500" in page.text
    response = signed_in.post(f"/admin/agencies/retry/handoff/{handoff}",
                              data={"csrf": form_token(page.text, "csrf")})
    assert "done=requeued" in response.headers["location"]
    with store.engine.connect() as conn:
        row = conn.execute(select(t.handoffs).where(t.handoffs.c.id == handoff)).one()
    assert (row.state, row.attempts) == ("retrying", 0)
    assert store.audit_trail(held["A-1"])[-1]["actor"] == "admin:hanako"


def test_the_report_draws_the_funnel_and_exports_csv(signed_in, held):
    page = signed_in.get("/admin/report")
    assert page.status_code == 200 and "<svg" in page.text and "ファネル" in page.text
    csv = signed_in.get("/admin/report", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("group,key,rejected")
    assert "attachment" in csv.headers["content-disposition"]


def test_every_page_renders_in_japanese_and_english_with_the_security_headers(
        signed_in, held, ambiguous):
    # held["A-3"] can be approved; `ambiguous` can be resent and is on the dashboard.
    pages = ["/admin/", "/admin/cases", f"/admin/cases/{held['A-3']}",
             f"/admin/cases/{ambiguous}", "/admin/queue", "/admin/agencies", "/admin/report"]
    for lang, word in (("en", "Sign out"), ("ja", "サインアウト")):
        switched = signed_in.get("/admin/language", params={"to": lang, "next": "/admin/"})
        assert switched.status_code == 303
        for path in pages:
            response = signed_in.get(path)
            assert response.status_code == 200, (lang, path)
            assert word in response.text and f'<html lang="{lang}">' in response.text
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["cache-control"] == "no-store"


def test_the_console_can_be_switched_off(make_config, store):
    from fastapi.testclient import TestClient

    from relay_core.web.app import create_app

    config = make_config({"admin": {"enabled": False}})
    with TestClient(create_app(config, store, {}), base_url="https://relay.example.co.jp") as c:
        assert c.get("/admin/").status_code == 404


def test_dashboard_shows_ambiguous_emails(signed_in, held, store):
    """Issue 13: an email handed to the mail server whose answer never came has its own tile
    and state, linking to the cases to check against the server's log."""
    from sqlalchemy import update

    from relay_core.store import tables as t

    page = signed_in.get("/admin/").text
    assert 'state=ambiguous"><span class="tile-n">0<' in page
    with store.begin() as conn:
        conn.execute(update(t.relay_cases).where(t.relay_cases.c.id == held["A-1"])
                     .values(state="ambiguous"))
    page = signed_in.get("/admin/").text
    assert 'tile tile-warn" href="/admin/cases?state=ambiguous"><span class="tile-n">1<' in page
    assert "送達不明" in page
    listed = signed_in.get("/admin/cases", params={"state": "ambiguous"}).text
    assert listed.count('class="name"') == 1
