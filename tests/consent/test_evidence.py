"""Issue 11, point 1: the exact consent text is kept, content-addressed, and `career-relay
evidence` shows and verifies it after the configuration changed."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from relay_core.commands.cli import app as cli
from relay_core.mail.transports import FileTransport
from relay_core.records.consent.disclosure import PageRenderer
from relay_core.records.evidence import build_evidence, evidence_html, evidence_text
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.retention import purge
from relay_core.store import tables as t
from relay_core.store import utcnow
from tests.consent.conftest import AGENCIES, csrf_of, open_page, post, send_invitations
from tests.consent.test_consent import form

runner = CliRunner()


def consent_through_the_page(client, token, **extra):
    html = open_page(client, token).text
    response = post(client, "/relay/consent", form(html, agency=["agency-a"], **extra))
    assert response.status_code == 303, response.text
    return html


def test_point_1_the_text_shown_is_kept_once_and_verifies_after_a_config_edit(
        client, invitation, store, make_config, config, tmp_path):
    """Point 1: edit an agency's purpose after the consent; the evidence still verifies, shows
    the text the candidate read (the old purpose), and the current text differs."""
    token, case_id = invitation
    page = consent_through_the_page(client, token)
    kept = PageRenderer(config).consent_text("ja")
    assert str(kept.html) in page                       # exactly what the page showed
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.consent_texts)).all()
    assert [(r.sha256, r.language) for r in rows] == [(kept.sha256, "ja")]
    assert hashlib.sha256(rows[0].html.encode()).hexdigest() == kept.sha256

    edited = make_config({"agencies": [{**AGENCIES[0], "purpose": "まったく別の目的"},
                                       AGENCIES[1]]}, write_to=tmp_path / "edited.toml")
    assert PageRenderer(edited).consent_text("ja").sha256 != kept.sha256
    evidence = build_evidence(store, edited, case_id)
    assert evidence.verified, evidence.checks
    assert [c.what for c in evidence.checks] == ["consent text", "audit log",
                                                 "provision records"]
    assert "ご経験に合う求人のご紹介" in evidence.text["html"]
    assert "まったく別の目的" not in evidence.text["html"]
    consent = evidence.consent
    assert consent["text_sha256"] == kept.sha256
    assert [a["agency_id"] for a in consent["agencies"]] == ["agency-a"]
    link = [x for x in evidence.links if x["consented_through_it"]]
    assert [x["purpose"] for x in link] == ["consent"] and link[0]["used_at"]

    # The command: text by default, JSON and HTML on request; nothing of the token.
    result = runner.invoke(cli, ["evidence", "--case", str(case_id), "--config",
                                 str(tmp_path / "edited.toml")])
    assert result.exit_code == 0, result.output
    assert "verified: yes" in result.stdout and "ご経験に合う求人のご紹介" in result.stdout
    assert token not in result.stdout and token.split(".")[0] not in result.stdout
    as_json = runner.invoke(cli, ["evidence", "--case", str(case_id), "-f", "json",
                                  "--config", str(tmp_path / "edited.toml")])
    data = json.loads(as_json.stdout)
    assert data["verified"] and data["text"]["sha256"] == kept.sha256
    out = tmp_path / "evidence.html"
    as_html = runner.invoke(cli, ["evidence", "--case", str(case_id), "-f", "html", "-o",
                                  str(out), "--config", str(tmp_path / "edited.toml")])
    assert as_html.exit_code == 0
    page_html = out.read_text(encoding="utf-8")
    assert str(kept.html) in page_html and "verified" in page_html
    assert "<script" not in page_html and "http-equiv" not in page_html


def test_point_1_evidence_lists_later_transfers_and_the_withdrawal(client, invitation, store,
                                                                   config, tmp_path):
    token, case_id = invitation
    consent_through_the_page(client, token)
    deliver_handoffs(store, config, FileTransport(tmp_path / "outbox"), now=utcnow())
    html = open_page(client, token).text
    assert post(client, "/relay/withdraw", {"csrf": csrf_of(html), "lang": "ja"}
                ).status_code == 303
    evidence = build_evidence(store, config, case_id)
    assert evidence.verified
    [transfer] = evidence.transfers
    assert transfer["agency_id"] == "agency-a" and "job_title" in transfer["items"]
    assert transfer["consent_reference"] == evidence.consent["reference"]
    assert evidence.consent["withdrawn_at"] is not None
    assert [n["agency_id"] for n in evidence.deletion_notices] == ["agency-a"]
    actions = [h["action"] for h in evidence.history]
    assert actions.index("consented") < actions.index("transfer") < actions.index("withdrawn")
    words = evidence_text(evidence)
    assert "record" in words and "withdrawn: 20" in words
    assert "cand" not in repr(evidence) and "@" not in repr(evidence)
    assert evidence_html(evidence, config).count("<tr>") > 5


def test_point_1_a_referenced_text_is_never_changed_or_deleted(client, invitation, store):
    token, case_id = invitation
    consent_through_the_page(client, token)
    for statement in ("UPDATE consent_texts SET html = 'other'",
                      "DELETE FROM consent_texts"):
        with pytest.raises(DBAPIError, match="never updated|refers to this consent text"):
            with store.begin() as conn:
                conn.execute(text(statement))


def test_point_1_purge_keeps_the_text_and_the_evidence_verifies(client, invitation, store,
                                                                config, tmp_path):
    token, case_id = invitation
    consent_through_the_page(client, token, message="よろしくお願いします")
    deliver_handoffs(store, config, FileTransport(tmp_path / "outbox"), now=utcnow())
    report = purge(store, config, now=utcnow() + timedelta(days=400))
    assert report.cases_blanked == 1
    evidence = build_evidence(store, config, case_id)
    assert evidence.verified and evidence.text is not None
    assert evidence.case["name"] is None and evidence.case["email"] is None
    assert "deleted by retention" in evidence.case["personal_data"]


def test_point_1_an_altered_text_fails_verification(client, invitation, store, config,
                                                    tmp_path, make_config):
    token, case_id = invitation
    consent_through_the_page(client, token)
    with store.begin() as conn:   # someone with database access, past the triggers
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER consent_texts_no_update"))
        else:
            conn.execute(text("DROP TRIGGER consent_texts_guard ON consent_texts"))
        conn.execute(text("UPDATE consent_texts SET html = html || ' '"))
    evidence = build_evidence(store, config, case_id)
    assert not evidence.verified
    assert "altered" in next(c.detail for c in evidence.checks if c.what == "consent text")
    make_config({"agencies": AGENCIES}, write_to=tmp_path / "c.toml")
    result = runner.invoke(cli, ["evidence", "--case", str(case_id), "--config",
                                 str(tmp_path / "c.toml")])
    assert result.exit_code == 1 and "NOT verified" in result.output


def test_point_1_a_case_without_consent_or_unknown_case(store, config, make_config, tmp_path):
    send_invitations(config, store)
    case_id = store.case_by_key("fake", "1").id
    assert not build_evidence(store, config, case_id).verified
    make_config({"agencies": AGENCIES}, write_to=tmp_path / "c.toml")
    missing = runner.invoke(cli, ["evidence", "--case", "999", "--config",
                                  str(tmp_path / "c.toml")])
    assert missing.exit_code == 1 and "no case 999" in missing.output
    bad = runner.invoke(cli, ["evidence", "--case", "1", "-f", "pdf", "--config",
                              str(tmp_path / "c.toml")])
    assert bad.exit_code == 2
