"""The email channel through a real aiosmtpd server, the redirect channel, and deletion notices
after a withdrawal (sec. 6 item 5: one per earlier recipient)."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from relay_core.errors import ConsentRefused
from relay_core.mail import FileTransport, make_transport
from relay_core.records.handoff import channels
from relay_core.records.handoff.deliver import deliver_handoffs, redirect_links
from relay_core.store import tables as t
from tests.handoff.support import SECRET, T0, agency, consented_case, withdraw
from tests.mail.test_smtp import smtp_server


def smtp_config(make_config, port: int, agencies: list[dict]):
    return make_config({"mail": {"transport": "smtp", "smtp": {
        "host": "127.0.0.1", "port": port, "security": "none", "retries": 1,
        "timeout_seconds": 5}}, "agencies": agencies})


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_email_channel_sends_a_readable_message_through_smtp(store, make_config):
    with smtp_server() as (recorder, controller):
        config = smtp_config(make_config, controller.port, [agency("agency-m", "email")])
        case_id = consented_case(store, config, "1", ["agency-m"],
                                 preferences={"desired_role": "営業企画",
                                              "message": "一行目\n二行目"})
        out = deliver_handoffs(store, config, make_transport(config), now=T0)
        assert out.delivered == 1
        assert len(recorder.messages) == 1
        message = parse(recorder.messages[0])
    assert message["To"].addresses[0].addr_spec == "intake@agency-m.example"
    assert "cand1@example.com" not in str(message["Subject"])
    assert message["Subject"].startswith("【キャリアリレー】候補者のご紹介 cr_")
    text = message.get_body(("plain",)).get_content()
    for expected in ("株式会社AGENCY-M 御中", "氏名: 山田 太郎",
                     "メールアドレス: cand1@example.com",
                     "希望職種（ご記入いただいた場合）: 営業企画", "    二行目",
                     "提供元: 株式会社サンプル", "住所: 東京都千代田区丸の内1-1-1",
                     "代表者: 代表取締役 山田太郎", "取得の経緯: 本人が株式会社サンプルの",
                     "同意の記録: consent-"):
        assert expected in text, expected
    with store.engine.connect() as conn:
        record = conn.execute(select(t.provision_records)).one()
    assert (record.channel, record.destination) == ("email", "intake@agency-m.example")
    assert "transfer" in [r["action"] for r in store.audit_trail(case_id)]


class Sink:
    def __init__(self):
        self.sent: list[dict] = []

    def post(self, url, data, headers, **kwargs):
        channels.verify_signature(SECRET.encode(), headers["X-Relay-Signature"], data)
        self.sent.append(json.loads(data))
        return SimpleNamespace(status_code=202, headers={})


def test_withdrawal_sends_one_deletion_notice_per_earlier_recipient(store, make_config):
    """Issue 11, point 4: the redirect agency received nothing, so it gets no deletion
    request."""
    with smtp_server() as (recorder, controller):
        config = smtp_config(make_config, controller.port, [
            agency("agency-w", url="https://w.example/in"), agency("agency-m", "email"),
            agency("agency-r", "redirect"), agency("agency-late", url="https://late.example/in")])
        case_id = consented_case(store, config, "1",
                                 ["agency-w", "agency-m", "agency-r", "agency-late"])
        with store.begin() as conn:   # agency-late's handoff is not due yet at withdrawal
            conn.execute(t.handoffs.update().where(t.handoffs.c.agency_id == "agency-late")
                         .values(next_attempt_at=T0 + timedelta(days=1)))
        sink = Sink()
        first = deliver_handoffs(store, config, make_transport(config), now=T0, session=sink)
        assert (first.delivered, first.redirected) == (2, 1)
        result = withdraw(store, case_id, T0 + timedelta(hours=1))
        assert (result.stopped_handoffs, result.deletion_notices) == (1, 2)
        try:
            withdraw(store, case_id, T0 + timedelta(hours=2))
        except ConsentRefused:
            pass
        for moment in (T0 + timedelta(hours=1), T0 + timedelta(hours=2),
                       T0 + timedelta(days=2)):
            deliver_handoffs(store, config, make_transport(config), now=moment, session=sink)
        deletions = [d for d in sink.sent if d["type"] == "candidate.deletion_request"]
        mails = [parse(m) for m in recorder.messages]
    assert len(deletions) == 1 and deletions[0]["agency_id"] == "agency-w"
    assert deletions[0]["reason"] == "consent_withdrawn" and "candidate" not in deletions[0]
    subjects = sorted(str(m["Subject"]).split(" ")[0] for m in mails)
    assert subjects == ["【キャリアリレー】候補者のご紹介", "【キャリアリレー】削除のお願い"]
    to = sorted(m["To"].addresses[0].addr_spec for m in mails
                if "削除" in str(m["Subject"]))
    # The email agency is told at its deletion contact; the redirect agency not at all.
    assert to == ["privacy@agency-m.example"]
    with store.engine.connect() as conn:
        notices = conn.execute(select(t.deletion_notices)).all()
        late = conn.execute(select(t.handoffs.c.state).where(
            t.handoffs.c.agency_id == "agency-late")).scalar_one()
    assert sorted(n.agency_id for n in notices) == ["agency-m", "agency-w"]
    assert {n.state for n in notices} == {"sent"} and late == "stopped"
    trail = [r["action"] for r in store.audit_trail(case_id)]
    assert trail.count("deletion_notice_sent") == 2


def test_redirect_pushes_nothing_and_signs_the_reference(store, make_config, tmp_path):
    config = make_config({"agencies": [agency("agency-r", "redirect",
                                              secret="env:CR_TEST_AGENCY_SECRET")]})
    case_id = consented_case(store, config, "1", ["agency-r"])
    [(name, url)] = redirect_links(store, config, case_id, now=T0)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://agency-r.example/register?relay_ref=cr_")
    assert query["relay_sig"][0] == channels.sign_reference(SECRET.encode(),
                                                            query["relay_ref"][0])
    assert "example.com" not in url and name == "株式会社AGENCY-R"
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0)
    assert out.redirected == 1 and not list((tmp_path / "o").glob("*.eml"))
    with store.engine.connect() as conn:
        assert conn.execute(select(t.provision_records)).all() == []
        ref = conn.execute(select(t.handoff_references.c.reference)).scalar_one()
    assert ref == query["relay_ref"][0]


def agency_mail_document(config, message: str = "一行目\n\n三行目 <b>&\n"):
    from relay_core.models import CaseState, Category, RelayCase
    from relay_core.records.handoff import payload
    from relay_core.store.consents import ConsentRecord

    consent = ConsentRecord(
        id=7, case_id=1, invitation_id=1, source="fake", application_id="1", candidate_id="c1",
        text_version="1+test", text_sha256="ab" * 32, language="ja", method="web form POST",
        consented_at=T0, withdrawn_at=None, withdrawal_method=None)
    return payload.handoff_document(
        config, agency=config.agencies[0], reference="cr_REF1", created_at=T0,
        case=RelayCase(
            id=1, source="fake", application_id="1", ats="fake", candidate_id="c1",
            state=CaseState.SENT, reason="", category=Category.WE_REJECTED, language="ja",
            invite=True, email="taro@example.com", person_key=None, person=None, stage="",
            job_title="営業", rejected_at=T0, detected_at=T0, send_at=T0, deadline_at=T0,
            sent_at=T0, late=False, message_id=None, updated_at=T0),
        consent=consent,
        candidate={"name": "山田 太郎", "message": message},
        items=["name", "message", "job_title", "decision_date", "consent_date"])


def test_agency_mail_comes_from_the_agency_templates(make_config):
    config = make_config({"agencies": [agency("agency-m", "email")]})
    subject, text, html = channels.render_mail(agency_mail_document(config),
                                               config.agencies[0], config)
    assert subject == "【キャリアリレー】候補者のご紹介 cr_REF1"
    assert text.startswith("株式会社AGENCY-M 御中\n\nキャリアリレー：候補者のご紹介\n"
                           "参照番号: cr_REF1\n")
    # Each item on its own line; a multi-line value continues on indented lines.
    assert ("■ 候補者 / Candidate\n紹介会社へのメッセージ（ご記入いただいた場合）: 一行目\n"
            "    \n    三行目 <b>&\n氏名: 山田 太郎\n\n■ 提供元") in text
    assert text.endswith("\n\n株式会社サンプル\nrecruit@example.co.jp\n")
    assert html.startswith('<pre style="font-family:inherit;white-space:pre-wrap">株式会社')
    assert "三行目 &lt;b&gt;&amp;\n" in html and "<b>" not in html


def test_a_broken_agency_template_override_is_retried_not_sent(make_config, tmp_path):
    folder = tmp_path / "mine" / "agency"
    folder.mkdir(parents=True)
    (folder / "handoff.txt").write_text("{{ agency.legal_name }}\n{{ nope }}\n",
                                        encoding="utf-8")
    config = make_config({"agencies": [agency("agency-m", "email")],
                          "mail": {"templates_dir": "mine"}})
    outbox = FileTransport(tmp_path / "o")
    outcome = channels.send_email(config.agencies[0], agency_mail_document(config),
                                  config, outbox, T0)
    assert (outcome.delivered, outcome.retry) == (False, True)
    assert "agency/handoff.txt:2" in outcome.error and "山田" not in outcome.error
    assert not list((tmp_path / "o").glob("*"))
