"""Resending an ambiguous or given-up email from the console (issue 15): the same checks and
the same re-queue as `career-relay resend` (cycle/recovery.py `resend_cases`), the same
bytes and Message-ID, audited with the signed-in person; a refusal says why; no button where
it cannot be done; the dashboard lists what waits for that decision."""

from __future__ import annotations

import re

from markupsafe import escape
from sqlalchemy import select

from relay_core.cycle.recovery import resend_cases
from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.store import tables as t
from relay_core.store import utcnow
from relay_core.web.admin.i18n import MESSAGES
from tests.admin.conftest import csrf_of

JA, EN = MESSAGES["ja"], MESSAGES["en"]
RESEND_FORM = re.compile(r'<form method="post" action="/admin/cases/(\d+)/resend"')


def case_email(store, case_id: int):
    with store.engine.connect() as conn:
        return conn.execute(select(t.outbox.c.state, t.outbox.c.message_id, t.outbox.c.message)
                            .where(t.outbox.c.case_id == case_id)).one()


class Recording(FileTransport):
    def __init__(self, outbox_dir):
        super().__init__(outbox_dir)
        self.sent: list[tuple[str, bytes]] = []

    def send(self, mail):
        self.sent.append((mail.message_id, mail.data))


def test_resend_requeues_the_same_message_and_records_who_did_it(
        signed_in, ambiguous, store, config, connector, tmp_path):
    before = case_email(store, ambiguous)
    assert before.state == "ambiguous" and before.message
    page = signed_in.get(f"/admin/cases/{ambiguous}")
    assert RESEND_FORM.findall(page.text) == [str(ambiguous)]
    assert JA["resend_warn_ambiguous"] in page.text and JA["resend_warn_same"] in page.text
    assert escape(before.message_id) in page.text      # to look up in the server's log

    response = signed_in.post(f"/admin/cases/{ambiguous}/resend", data={
        "csrf": csrf_of(signed_in), "note": "  not in the server's   log "})
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/cases/{ambiguous}?done=resent&n=1"
    after = case_email(store, ambiguous)
    assert (after.state, after.message_id, after.message) == (
        "pending", before.message_id, before.message)
    assert store.case(ambiguous).state == "sending"
    last = store.audit_trail(ambiguous)[-1]
    assert (last["actor"], last["from_state"], last["to_state"]) == (
        "admin:hanako", "ambiguous", "sending")
    assert last["reason"] == (f"re-queued {before.message_id} (was ambiguous): "
                              "not in the server's log")
    shown = signed_in.get(response.headers["location"]).text
    assert JA["done_resent"] in shown and not RESEND_FORM.search(shown)

    # The next cycle hands over exactly what was built the first time.
    transport = Recording(tmp_path / "out")
    run_cycle(config, store, {connector.name: connector}, transport=transport)
    assert transport.sent == [(before.message_id, before.message)]
    assert store.case(ambiguous).state == "sent"


def test_a_given_up_email_is_offered_and_resent_the_same_way(signed_in, gave_up, store):
    before = case_email(store, gave_up)
    assert before.state == "gave_up"
    signed_in.get("/admin/language", params={"to": "en", "next": "/admin/"})
    page = signed_in.get(f"/admin/cases/{gave_up}").text
    assert RESEND_FORM.findall(page) == [str(gave_up)]
    assert EN["resend_warn_failed"] in page and EN["resend_warn_same"] in page
    assert EN["resend_warn_ambiguous"] not in page
    response = signed_in.post(f"/admin/cases/{gave_up}/resend",
                              data={"csrf": csrf_of(signed_in)})
    assert response.status_code == 303
    assert case_email(store, gave_up)[:2] == ("pending", before.message_id)
    last = store.audit_trail(gave_up)[-1]
    assert (last["actor"], last["from_state"], last["reason"]) == (
        "admin:hanako", "failed", f"re-queued {before.message_id} (was gave_up)")


def test_a_refused_resend_shows_why_and_changes_nothing(signed_in, ambiguous, held, store):
    csrf = csrf_of(signed_in)
    stale = signed_in.get(f"/admin/cases/{ambiguous}").text      # the button is still there
    assert RESEND_FORM.search(stale)
    resend_cases(store, [ambiguous], actor="cli:resend", now=utcnow())   # someone else, first
    trail = store.audit_trail(ambiguous)
    response = signed_in.post(f"/admin/cases/{ambiguous}/resend", data={"csrf": csrf})
    assert response.status_code == 409
    alert = re.search(r'<p class="notice notice-error" role="alert">([^<]*)</p>', response.text)
    assert alert and alert.group(1) == (      # in the console's language, the state's label
        f"{JA['resend_refused']} " + JA["resend_no_case_state"].format(state=JA["state_sending"]))
    assert store.audit_trail(ambiguous) == trail                  # nothing more happened
    assert not RESEND_FORM.search(response.text)

    held_case = held["A-3"]
    response = signed_in.post(f"/admin/cases/{held_case}/resend", data={"csrf": csrf})
    assert response.status_code == 409
    assert JA["resend_no_case_state"].format(state=JA["state_held"]) in response.text
    assert store.case(held_case).state == "held"
    assert signed_in.post("/admin/cases/999999/resend", data={"csrf": csrf}).status_code == 404
    # Without the CSRF token, or signed out, nothing is even checked.
    assert signed_in.post(f"/admin/cases/{held_case}/resend").status_code == 403


def test_no_resend_button_where_it_cannot_be_done(signed_in, held, store, config, connector,
                                                   tmp_path):
    from relay_core.cycle.approval import approve

    approve(store, [held["A-2"]], actor="test")
    run_cycle(config, store, {connector.name: connector},
              transport=FileTransport(tmp_path / "out"))
    assert store.case(held["A-2"]).state == "sent"
    for case_id in (held["A-1"], held["A-2"]):                   # held, sent
        page = signed_in.get(f"/admin/cases/{case_id}").text
        assert not RESEND_FORM.search(page) and JA["resend"] not in page
        assert JA["resend_impossible"] not in page

    # Failed, with nothing left to resend (the server refused it for good): no button, why.
    with store.begin() as conn:
        conn.execute(t.relay_cases.update().where(t.relay_cases.c.id == held["A-2"])
                     .values(state="failed"))
    page = signed_in.get(f"/admin/cases/{held['A-2']}").text
    assert not RESEND_FORM.search(page)
    assert (f"{JA['resend_impossible']} "
            + JA["resend_no_email_state"].format(state=JA["state_sent"])) in page


def test_the_dashboard_lists_ambiguous_and_given_up_emails_with_a_link_to_each(
        signed_in, ambiguous, gave_up, store):
    page = signed_in.get("/admin/").text
    assert JA["waiting_decision"] in page
    rows = re.findall(r'<tr><td><a href="/admin/cases/(\d+)">#\d+</a></td><td>(.*?)</td>',
                      page)
    assert [(int(i), JA["state_ambiguous"] in s or JA["gave_up"] in s) for i, s in rows] == [
        (ambiguous, True), (gave_up, True)]
    for case_id in (ambiguous, gave_up):
        assert escape(case_email(store, case_id).message_id) in page
        assert signed_in.get(f"/admin/cases/{case_id}").status_code == 200
    assert "451 4.3.0 try again later" in page             # the server's last reply
    signed_in.post(f"/admin/cases/{ambiguous}/resend", data={"csrf": csrf_of(signed_in)})
    signed_in.post(f"/admin/cases/{gave_up}/resend", data={"csrf": csrf_of(signed_in)})
    assert JA["waiting_decision"] not in signed_in.get("/admin/").text


def test_resend_pages_render_in_both_languages_with_labelled_fields(
        signed_in, ambiguous, gave_up):
    for lang in ("ja", "en"):
        signed_in.get("/admin/language", params={"to": lang, "next": "/admin/"})
        for path in ("/admin/", f"/admin/cases/{ambiguous}", f"/admin/cases/{gave_up}"):
            response = signed_in.get(path)
            assert response.status_code == 200 and f'<html lang="{lang}">' in response.text
            assert response.headers["cache-control"] == "no-store"
            ids = re.findall(r'<input id="([^"]+)"', response.text)
            for field in ids:                                   # every field has its label
                assert f'<label for="{field}">' in response.text, (lang, path, field)
        page = signed_in.get(f"/admin/cases/{ambiguous}").text
        assert escape(MESSAGES[lang]["resend_note"]) in page
        assert escape(MESSAGES[lang]["resend"]) in page
        assert 'aria-describedby="resend-warning"' in page and 'id="resend-warning"' in page


def test_a_case_id_beyond_the_column_is_refused_not_a_server_error(signed_in, held, store):
    csrf = csrf_of(signed_in)
    for case_id in ("2147483648", "9" * 30, "0", "-1"):
        assert signed_in.get(f"/admin/cases/{case_id}").status_code == 422
        for action in ("resend", "approve", "cancel"):
            response = signed_in.post(f"/admin/cases/{case_id}/{action}", data={"csrf": csrf})
            assert response.status_code == 422, (case_id, action)
    assert signed_in.get("/admin/cases/2147483647").status_code == 404   # the largest: absent


def test_every_refusal_of_resend_has_its_words_in_both_languages():
    """The console says why in its own language; the CLI keeps `resend_check`'s English."""
    import inspect

    from relay_core.cycle import recovery
    from relay_core.web.admin.cases import why_not
    from relay_core.web.admin.i18n import MESSAGES
    source = inspect.getsource(recovery)
    codes = set(re.findall(r'"(no_case|case_state|never_queued|email_state|content_gone|'
                           r'moved)"', source))
    assert len(codes) == 6
    for words in MESSAGES.values():
        for code in codes:
            text = why_not(words, code, "sent")
            assert text and "{" not in text
    assert why_not(MESSAGES["en"], "case_state", "held") == \
        f"The case is {MESSAGES['en']['state_held']}, not ambiguous or failed."
