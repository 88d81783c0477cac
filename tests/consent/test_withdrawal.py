"""Withdrawal: from the confirmation email's link (also after the invitation expired) and from
the invitation link; stops pending handoffs and queues one deletion notice per delivery."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

from sqlalchemy import select, update

from relay_core.records.consent.records import (
    active_grant,
    consent_for_case,
    mark_handoff_delivered,
    pending_deletion_notices,
    pending_handoffs,
    relay_status,
)
from relay_core.store import tables as t
from relay_core.store import utcnow
from tests.consent.conftest import BASE, csrf_of, open_page, post, text_hash_of
from tests.consent.test_links import counts


def consent(client, token, agencies=("agency-a", "agency-b"), **prefs):
    html = open_page(client, token).text
    response = post(client, "/relay/consent", {
        "csrf": csrf_of(html), "text_sha256": text_hash_of(html), "lang": "ja",
        "agency": list(agencies), **prefs})
    assert response.status_code == 303


def withdraw_link(store) -> str:
    with store.engine.connect() as conn:
        data = conn.execute(select(t.outbox.c.message).where(
            t.outbox.c.kind == "confirmation")).scalar_one()
    text = message_from_bytes(data, policy=policy.default).get_body(("plain",)).get_content()
    return next(w for w in text.split() if w.startswith(f"{BASE}/w/"))


def test_withdrawal_from_the_email_link_after_expiry(client, invitation, store):
    token, case_id = invitation
    consent(client, token, desired_role="営業")
    with store.begin() as conn:
        handoffs = {h.agency_id: h.id for h in conn.execute(select(t.handoffs))}
        mark_handoff_delivered(store, conn, handoffs["agency-b"])
        conn.execute(update(t.invitations).where(t.invitations.c.purpose == "consent")
                     .values(expires_at=utcnow() - timedelta(days=1)))
    client.cookies.clear()
    link = withdraw_link(store)
    # Scanners first: GET and HEAD change nothing.
    before = counts(store)
    for _ in range(5):
        assert client.get(link.removeprefix(BASE)).status_code == 303
        assert client.head(link.removeprefix(BASE)).status_code == 303
    assert counts(store) == before
    opened = client.get(link.removeprefix(BASE))
    page = client.get(opened.headers["location"])
    assert page.status_code == 200 and "同意を撤回する" in page.text
    response = post(client, "/relay/withdraw", {"csrf": csrf_of(page.text), "lang": "ja"})
    assert response.status_code == 303
    done = client.get(response.headers["location"])
    assert "同意を撤回しました" in done.text
    with store.engine.connect() as conn:
        states = {h.agency_id: h.state for h in conn.execute(select(t.handoffs))}
        notices = conn.execute(select(t.deletion_notices)).all()
        record = consent_for_case(conn, case_id)
        assert relay_status(conn, case_id).value == "withdrawn"
        assert active_grant(conn, case_id, "agency-a") is None
        assert active_grant(conn, case_id, "agency-b") is None
        assert pending_handoffs(conn, utcnow()) == []
        assert [n.agency_id for n in pending_deletion_notices(conn, utcnow())] == [
            "agency-b"]
        assert conn.execute(select(t.consent_preferences)).all() == []
        used = conn.execute(select(t.invitations.c.used_at).where(
            t.invitations.c.purpose == "withdraw")).scalar_one()
    assert states == {"agency-a": "stopped", "agency-b": "delivered"}
    assert [(n.agency_id, n.state) for n in notices] == [("agency-b", "pending")]
    assert record.withdrawn_at is not None and record.withdrawal_method == "web form POST"
    assert used is not None
    trail = [r for r in store.audit_trail(case_id) if r["action"] == "withdrawn"]
    assert len(trail) == 1 and trail[0]["from_state"] == "consented"
    # A second withdrawal changes nothing and says so kindly.
    again = post(client, "/relay/withdraw", {"csrf": csrf_of(page.text), "lang": "ja"})
    assert again.status_code == 409
    with store.engine.connect() as conn:
        assert len(conn.execute(select(t.deletion_notices)).all()) == 1


def test_withdrawal_from_the_invitation_link(client, invitation, store):
    token, case_id = invitation
    consent(client, token, agencies=["agency-a"])
    client.cookies.clear()
    page = open_page(client, token)          # the used link now shows the consent given
    assert "同意を撤回する" in page.text and "株式会社エージェントA" in page.text
    response = post(client, "/relay/withdraw", {"csrf": csrf_of(page.text), "lang": "ja"})
    assert response.status_code == 303
    with store.engine.connect() as conn:
        assert relay_status(conn, case_id).value == "withdrawn"
        assert [h.state for h in conn.execute(select(t.handoffs))] == ["stopped"]
        assert conn.execute(select(t.deletion_notices)).all() == []


def test_withdrawal_needs_csrf_and_origin(client, invitation, store):
    token, case_id = invitation
    consent(client, token, agencies=["agency-a"])
    page = client.get(f"{BASE}/relay")
    assert post(client, "/relay/withdraw", {"lang": "ja"}).status_code == 403
    assert post(client, "/relay/withdraw", {"csrf": csrf_of(page.text)},
                origin="https://evil.example").status_code == 403
    with store.engine.connect() as conn:
        assert relay_status(conn, case_id).value == "consented"


def test_nothing_to_withdraw_after_decline(client, invitation, store, config):
    token, case_id = invitation
    html = open_page(client, token).text
    post(client, "/relay/decline", {"csrf": csrf_of(html), "lang": "ja"})
    response = post(client, "/relay/withdraw", {"csrf": csrf_of(html), "lang": "ja"})
    assert response.status_code == 409
    with store.engine.connect() as conn:
        assert relay_status(conn, case_id).value == "declined"


def test_delivery_that_raced_a_withdrawal_still_gets_its_deletion_notice(client, invitation,
                                                                         store):
    token, case_id = invitation
    consent(client, token, agencies=["agency-a"])
    with store.begin() as conn:
        handoff_id = conn.execute(select(t.handoffs.c.id)).scalar_one()
        conn.execute(update(t.handoffs).values(state="sending"))    # a deliverer claimed it
    page = client.get(f"{BASE}/relay")
    post(client, "/relay/withdraw", {"csrf": csrf_of(page.text), "lang": "ja"})
    with store.begin() as conn:
        assert mark_handoff_delivered(store, conn, handoff_id) is False
        notices = conn.execute(select(t.deletion_notices)).all()
    assert [(n.handoff_id, n.state) for n in notices] == [(handoff_id, "pending")]
