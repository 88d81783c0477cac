"""Issue 11, point 4: a redirect agency honestly. The consent page says the candidate continues
on the agency's own form and we send nothing; the funnel counts "sent to form", not "handed
off"; a withdrawal asks nothing of an agency that received nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from relay_core.mail import FileTransport
from relay_core.records.consent.disclosure import PageRenderer
from relay_core.records.consent.records import consent_for_case
from relay_core.records.handoff.deliver import deliver_handoffs, redirect_links
from relay_core.records.ledger import import_csv
from relay_core.records.report import build_report
from relay_core.store import tables as t
from tests.handoff.support import SECRET, T0, agency, consented_case, withdraw

REVIEW = {"reviewer": "counsel", "reviewed_on": "2025-06-01", "document": "memo 1"}


def redirect_config(make_config, **extra):
    return make_config({"agencies": [agency("agency-r", "redirect"),
                                     agency("agency-m", "email")], **extra})


def article(html: str, agency_id: str) -> str:
    return re.search(rf'aria-labelledby="agency-{agency_id}">(.*?)</article>', html,
                     re.S).group(1)


def test_point_4_the_consent_page_says_we_send_a_redirect_agency_nothing(make_config):
    config = redirect_config(make_config)
    for lang, nothing, items in (("ja", "あなたの情報を一切お送りしません", "お渡しする項目"),
                                 ("en", "We send this agency nothing", "Data it would receive")):
        html = str(PageRenderer(config).consent_text(lang).html)
        redirect, email = article(html, "agency-r"), article(html, "agency-m")
        assert nothing in redirect and items not in redirect
        assert items in email and nothing not in email
    page = PageRenderer(config).render("consent", "ja", {
        "company_name": "x", "other_language": "en", "urls": {
            "stylesheet": "", "switch": "", "consent": "", "decline": "", "withdraw": "",
            "privacy": ""},
        "disclosure": "", "text_sha256": "", "csrf": "", "error": "", "expires": "",
        "prefs": dict.fromkeys(("desired_role", "location", "start_period", "message"), ""),
        "limits": {"desired_role": 200, "location": 200, "start_period": 100,
                   "message": 1000},
        "agencies": [{"id": "agency-r", "legal_name": "R", "country": "日本",
                      "redirect": True}]})
    assert "登録フォームの案内を希望します（弊社からは情報をお送りしません）" in page
    assert "提供することに同意します" not in page


def test_point_4_funnel_counts_sent_to_form_and_withdrawal_asks_nothing(
        store, make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)
    config = redirect_config(make_config, ledger={"rule": "per_registrations",
                                                  "per_registrations": 1,
                                                  "legal_review": REVIEW})
    case_id = consented_case(store, config, "1", ["agency-r", "agency-m"])
    with store.engine.connect() as conn:
        consent = consent_for_case(conn, case_id)
    fields = {a.agency_id: a.fields for a in consent.agencies}
    assert fields["agency-r"] == []          # nothing is consented to be sent to it
    assert "name" in fields["agency-m"]
    [(name, url)] = redirect_links(store, config, case_id, now=T0)
    assert "relay_ref=" in url
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
    assert (out.redirected, out.delivered) == (1, 1)
    with store.engine.connect() as conn:
        states = dict(conn.execute(select(t.handoffs.c.agency_id, t.handoffs.c.state)).all())
        records = conn.execute(select(t.provision_records.c.agency_id)).scalars().all()
    assert states == {"agency-r": "redirected", "agency-m": "delivered"}
    assert records == ["agency-m"]            # no provision record: nothing was provided

    report = build_report(store, config, now=T0)
    assert report.total["handed_off"] == 1 and report.total["sent_to_form"] == 1
    assert report.by_agency["agency-r"]["sent_to_form"] == 1
    assert report.by_agency["agency-r"]["handed_off"] == 0

    # The agency reports a registration made through its form (its CSV): accepted, and the
    # credit rule counts it.
    reference = re.search(r"relay_ref=([^&]+)", url).group(1)
    sheet = tmp_path / "agency-r.csv"
    sheet.write_text(f"reference,type,occurred_at\n{reference},registered,2025-06-24\n",
                     encoding="utf-8")
    imported = import_csv(store, config, sheet, agency_id="agency-r", now=T0)
    assert (imported.stored, imported.credits, imported.errors) == (1, 1, [])
    assert build_report(store, config, now=T0).by_agency["agency-r"]["registered"] == 1

    result = withdraw(store, case_id, T0 + timedelta(hours=1))
    assert result.deletion_notices == 1        # agency-m only
    with store.engine.connect() as conn:
        notices = conn.execute(select(t.deletion_notices.c.agency_id)).scalars().all()
    assert notices == ["agency-m"]
