"""Recording consent and "no thanks": evidence, single use, CSRF, Origin, expiry."""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from relay_core.cycle.run import run_cycle
from relay_core.errors import TokenWrongPurpose
from relay_core.mail.transports import FileTransport
from relay_core.records.consent import tokens
from relay_core.records.consent.disclosure import METHOD, consent_text_for_case
from relay_core.records.consent.records import (
    active_grant,
    consent_allows,
    consent_for_case,
    expire_invitations,
    pending_handoffs,
    relay_status,
)
from relay_core.store import tables as t
from relay_core.store import utcnow
from tests.consent.conftest import (
    BASE,
    csrf_of,
    open_page,
    post,
    rejection,
    send_invitations,
    text_hash_of,
)
from tests.consent.test_links import counts


def form(html: str, **extra) -> dict:
    return {"csrf": csrf_of(html), "text_sha256": text_hash_of(html),
            "lang": 'en' if 'lang="en"' in html[:200] else "ja", **extra}


def test_consent_records_exactly_the_ticked_agency_with_its_evidence(client, invitation,
                                                                     store, config):
    token, case_id = invitation
    html = open_page(client, token).text
    before = utcnow()
    response = post(client, "/relay/consent", form(
        html, agency=["agency-a"], desired_role="法人営業", location="東京", message="よろしく"))
    assert response.status_code == 303
    assert response.headers["location"] == f"{BASE}/relay?lang=ja"
    case = store.case(case_id)
    with store.engine.connect() as conn:
        record = consent_for_case(conn, case_id)
        status = relay_status(conn, case_id)
        handoffs = conn.execute(select(t.handoffs)).all()
        invitation_row = conn.execute(select(t.invitations).where(
            t.invitations.c.case_id == case_id, t.invitations.c.purpose == "consent")).one()
        grant_a = active_grant(conn, case_id, "agency-a")
        grant_b = active_grant(conn, case_id, "agency-b")
        due = pending_handoffs(conn, utcnow())
    assert status.value == "consented"
    assert [a.agency_id for a in record.agencies] == ["agency-a"]
    # The agency's fields, then the provenance the Art. 30 manifest carries (issue 11, 2).
    assert record.agencies[0].fields == ["name", "email", "desired_role", "location",
                                         "message", "job_title", "decision_date",
                                         "consent_date"]
    assert record.method == METHOD == "web form POST"
    assert record.language == "ja"
    assert record.candidate_id == case.candidate_id
    assert record.application_id == case.application_id
    assert record.invitation_id == invitation_row.id
    assert record.withdrawn_at is None
    assert before <= record.consented_at <= utcnow()
    assert record.consented_at.utcoffset() == timedelta(0)
    assert record.text_version.startswith("2+")
    assert invitation_row.used_at is not None
    assert [(h.agency_id, h.state) for h in handoffs] == [("agency-a", "pending")]
    assert [h.agency_id for h in due] == ["agency-a"]
    # Preferences go only to the ticked agency, and only the fields it lists.
    assert grant_a.preferences == {"desired_role": "法人営業", "location": "東京",
                                   "message": "よろしく"}
    assert grant_b is None
    with store.engine.connect() as conn:
        assert consent_allows(conn, case_id, "agency-a", "email")
        assert not consent_allows(conn, case_id, "agency-a", "phone")
        assert not consent_allows(conn, case_id, "agency-b", "name")
    trail = [r for r in store.audit_trail(case_id) if r["action"] == "consented"]
    assert len(trail) == 1 and trail[0]["to_state"] == "consented"
    assert "agency-a" in trail[0]["reason"] and "山田" not in trail[0]["reason"]


def test_stored_text_hash_matches_the_template_rendered_for_that_case(client, invitation,
                                                                      store, config):
    token, case_id = invitation
    html = open_page(client, token, "en").text
    post(client, "/relay/consent", form(html, agency=["agency-b"]))
    with store.engine.connect() as conn:
        record = consent_for_case(conn, case_id)
    recomputed = consent_text_for_case(config, store.case(case_id), record.language)
    assert record.language == "en"
    assert record.text_sha256 == recomputed.sha256
    assert record.text_version == recomputed.version
    assert str(recomputed.html) in html    # the hashed text is exactly what the page showed
    assert "Global Talent Partners Pte. Ltd." in recomputed.html


def test_confirmation_email_is_queued_with_a_withdraw_link(client, invitation, store):
    token, case_id = invitation
    html = open_page(client, token).text
    post(client, "/relay/consent", form(html, agency=["agency-a"]))
    with store.engine.connect() as conn:
        row = conn.execute(select(t.outbox).where(t.outbox.c.kind == "confirmation")).one()
    assert row.state == "pending" and row.case_id == case_id
    msg = message_from_bytes(row.message, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    assert "株式会社エージェントA" in text and "Global Talent" not in text
    assert f"{BASE}/w/" in text and token not in text


def test_reusing_the_consent_post_is_refused(client, invitation, store):
    token, _ = invitation
    html = open_page(client, token).text
    data = form(html, agency=["agency-a"])
    assert post(client, "/relay/consent", data).status_code == 303
    again = post(client, "/relay/consent", {**data, "agency": ["agency-a", "agency-b"]})
    assert again.status_code == 409
    assert post(client, "/relay/decline", data).status_code == 409
    with store.engine.connect() as conn:
        assert len(conn.execute(select(t.consents)).all()) == 1
        assert len(conn.execute(select(t.handoffs)).all()) == 1


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "wrong"])
def test_missing_or_wrong_csrf_is_refused(client, invitation, store, csrf):
    token, _ = invitation
    data = form(open_page(client, token).text, agency=["agency-a"])
    if csrf is None:
        del data["csrf"]
    else:
        data["csrf"] = csrf
    response = post(client, "/relay/consent", data)
    assert response.status_code == 403
    assert post(client, "/relay/decline", data).status_code == 403
    assert counts(store)["consents"] == 0 and counts(store)["status"] == 0


def test_csrf_token_of_another_session_is_refused(client, config, store):
    send_invitations(config, store, rejection("1"), rejection("2", email="b@example.com"))
    from tests.consent.conftest import link_in, outbox_files

    links = [link_in(f, f"{BASE}/r/") for f in outbox_files(config)]
    other_html = open_page(client, links[0].rsplit("/", 1)[1]).text
    mine_html = open_page(client, links[1].rsplit("/", 1)[1]).text   # cookie now = session 2
    assert csrf_of(other_html) != csrf_of(mine_html)
    response = post(client, "/relay/consent", form(mine_html, csrf=csrf_of(other_html),
                                                   agency=["agency-a"]))
    assert response.status_code == 403 and counts(store)["consents"] == 0


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example"},
    {"origin": "https://relay.example.co.jp.evil.example"},
    {"origin": "http://relay.example.co.jp"},
    {"origin": None},
    {"origin": "null", "sec-fetch-site": "cross-site"},
])
def test_foreign_or_missing_origin_is_refused(client, invitation, store, headers):
    token, _ = invitation
    data = form(open_page(client, token).text, agency=["agency-a"])
    extra = {k: v for k, v in headers.items() if k != "origin"}
    response = post(client, "/relay/consent", data, origin=headers["origin"], **extra)
    assert response.status_code == 403
    assert counts(store)["consents"] == 0


def test_null_origin_from_our_own_page_is_accepted(client, invitation, store):
    # With Referrer-Policy: no-referrer, browsers send `Origin: null` for our own form.
    token, _ = invitation
    data = form(open_page(client, token).text, agency=["agency-a"])
    response = post(client, "/relay/consent", data, origin="null", **{
        "sec-fetch-site": "same-origin"})
    assert response.status_code == 303 and counts(store)["consents"] == 1


def test_no_agency_ticked_records_nothing(client, invitation, store):
    token, _ = invitation
    response = post(client, "/relay/consent", form(open_page(client, token).text,
                                                   desired_role="x"))
    assert response.status_code == 422 and 'role="alert"' in response.text
    assert 'value="x"' in response.text            # what was typed is kept
    assert counts(store)["consents"] == 0 and counts(store)["status"] == 0
    with store.engine.connect() as conn:
        assert conn.execute(select(t.invitations.c.used_at)).scalar_one() is None


def test_agency_not_offered_is_refused(client, invitation, store):
    token, _ = invitation
    response = post(client, "/relay/consent", form(open_page(client, token).text,
                                                   agency=["agency-a", "agency-zzz"]))
    assert response.status_code == 400 and counts(store)["consents"] == 0


def test_changed_text_is_shown_again_instead_of_recorded(client, invitation, store):
    token, _ = invitation
    data = form(open_page(client, token).text, agency=["agency-a"], text_sha256="0" * 64)
    response = post(client, "/relay/consent", data)
    assert response.status_code == 409 and counts(store)["consents"] == 0


def test_decline_records_declined_and_uses_the_link(client, invitation, store):
    token, case_id = invitation
    html = open_page(client, token).text
    response = post(client, "/relay/decline", {"csrf": csrf_of(html), "lang": "ja"})
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "影響することはありません" in page.text
    with store.engine.connect() as conn:
        assert relay_status(conn, case_id).value == "declined"
        assert consent_for_case(conn, case_id) is None
    assert [r["to_state"] for r in store.audit_trail(case_id) if r["action"] == "declined"] == [
        "declined"]
    again = post(client, "/relay/consent", form(html, agency=["agency-a"]))
    assert again.status_code == 409 and counts(store)["consents"] == 0


def test_unused_invitations_expire_in_the_cycle(config, store, client):
    send_invitations(config, store, rejection("1"), rejection("2", email="b@example.com"))
    first = store.case_by_key("fake", "1").id
    with store.begin() as conn:
        conn.execute(update(t.invitations).where(t.invitations.c.case_id == first)
                     .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert expire_invitations(store) == 1
    assert expire_invitations(store) == 0          # once only
    later = utcnow() + timedelta(days=config.relay.invitation_ttl_days, hours=1)
    run_cycle(config, store, {}, transport=FileTransport(config.path(config.mail.outbox_dir)),
              now=later)
    with store.engine.connect() as conn:
        statuses = [relay_status(conn, store.case_by_key("fake", a).id).value
                    for a in ("1", "2")]
    assert statuses == ["expired", "expired"]      # run_cycle expired the second one
    assert [r["to_state"] for r in store.audit_trail(first)
            if r["action"] == "invitation_expired"] == ["expired"]


def test_consent_audit_rows_are_append_only(client, invitation, store):
    token, case_id = invitation
    post(client, "/relay/consent", form(open_page(client, token).text, agency=["agency-a"]))
    for statement in (update(t.audit_log).where(t.audit_log.c.action == "consented")
                      .values(reason="rewritten"),
                      t.audit_log.delete().where(t.audit_log.c.action == "consented")):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.begin() as conn:
                conn.execute(statement)


def test_evidence_survives_without_personal_data(client, invitation, store):
    token, case_id = invitation
    post(client, "/relay/consent", form(open_page(client, token).text, agency=["agency-a"]))
    with store.engine.connect() as conn:
        row = dict(conn.execute(select(t.consents)).one()._mapping)
        agencies = conn.execute(select(t.consent_agencies.c.fields_json)).scalars().all()
    flat = json.dumps(row, default=str) + "".join(agencies)
    assert "taro@example.com" not in flat and "山田" not in flat


def test_wrong_purpose_token_in_verify_is_a_400_class_error(invitation, store, config):
    token, _ = invitation
    with store.engine.connect() as conn:
        key = tokens.signing_key(config, conn)
        with pytest.raises(TokenWrongPurpose) as info:
            tokens.verify(conn, key, token, "withdraw")
    assert info.value.status == 400 and token not in str(info.value)


def test_redirect_agency_is_offered_its_own_form_after_consent(make_config, store):
    from fastapi.testclient import TestClient

    from relay_core.web.app import create_app
    from tests.consent.conftest import AGENCIES, link_in, outbox_files

    redirect = {**AGENCIES[0], "channel": "redirect",
                "register_url": "https://agency-a.example/register"}
    config = make_config({"agencies": [redirect, AGENCIES[1]]})
    send_invitations(config, store)
    token = link_in(outbox_files(config)[0], f"{BASE}/r/").rsplit("/", 1)[1]
    with TestClient(create_app(config, store, {}), base_url=BASE,
                    follow_redirects=False) as client:
        html = open_page(client, token).text
        done = post(client, "/relay/consent", form(html, agency=["agency-a"]))
        page = client.get(done.headers["location"]).text
    assert "https://agency-a.example/register?" in page
    assert "relay_ref=" in page and "relay_sig=" in page
    assert "We send nothing" in page or "情報をお送りしません" in page


@pytest.mark.parametrize("lang, warning", [
    ("ja", "配慮が必要な情報や差別につながるおそれのある情報は書かないでください"),
    ("en", "Please do not write sensitive information")])
def test_point_9_the_message_field_warns_and_has_a_limit(client, invitation, store, lang,
                                                         warning):
    """Issue 11, point 9: a warning against sensitive information and a length limit on the
    free text, enforced by the server: too long is refused, never cut."""
    from relay_core.records.consent.disclosure import PREFERENCE_LIMITS

    token, case_id = invitation
    html = open_page(client, token, lang).text
    limit = PREFERENCE_LIMITS["message"]
    assert warning in html and f'maxlength="{limit}"' in html
    assert 'aria-describedby="message-hint"' in html
    too_long = post(client, "/relay/consent", form(html, agency=["agency-a"],
                                                   message="あ" * (limit + 1)))
    assert too_long.status_code == 422
    assert ("長すぎます" if lang == "ja" else "too long") in too_long.text
    assert "あ" * (limit + 1) in too_long.text or "あ" * limit in too_long.text
    with store.engine.connect() as conn:
        assert consent_for_case(conn, case_id) is None
    again = post(client, "/relay/consent", form(too_long.text, agency=["agency-a"],
                                                message="あ" * limit))
    assert again.status_code == 303
    with store.engine.connect() as conn:
        grant = active_grant(conn, case_id, "agency-a")
    assert grant.preferences["message"] == "あ" * limit
