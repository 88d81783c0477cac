"""`check` covers everything `run` needs: each configuration mistake that stops `run` (exit 2)
makes `check --offline` fail too, naming the key; the shipped example passes both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core.commands.cli import app

ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-23T11:00:00+09:00"
runner = CliRunner()

MISTAKES = {
    "sender": ('sender = "採用担当 <recruit@example.co.jp>"', 'sender = "採用担当 <recruit>"',
               "company.sender"),
    "message id domain": ('message_id_domain = ""', 'message_id_domain = "not a domain"',
                          "mail.message_id_domain"),
    "templates folder": ('templates_dir = ""', 'templates_dir = "no-such-folder"',
                         "mail.templates_dir"),
    "export file": ('path = "examples/hrmos_export.tsv"', 'path = "examples/missing.tsv"',
                    "sources[0].path"),
    # issue 10's settings: each one's mistake names its key in `check` and stops `run`
    "default language": ('# default_language = "bilingual"', 'default_language = "fr"',
                         "company.default_language"),
    "english sender": ('sender_name_en = "Recruiting Team"',
                       'sender_name_en = "Team\\nBcc: x@evil.example"',
                       "company.sender_name_en"),
    "confidential jobs": ('confidential_jobs = "mail"', 'confidential_jobs = "never"',
                          "eligibility.confidential_jobs"),
    "in process elsewhere": ('in_process_elsewhere = "no_invitation"',
                             'in_process_elsewhere = "cancel"',
                             "eligibility.in_process_elsewhere"),
    "feedback length": ("feedback_max_chars = 800", "feedback_max_chars = 10",
                        "mail.feedback_max_chars"),
    "reapply months": ("after_months = 6", "after_months = -1", "mail.reapply.after_months"),
    "careers page": ('careers_url = ""', 'careers_url = "careers page"',
                     "mail.reapply.careers_url"),
    "source language": ('# language = "bilingual"         # the emails',
                        'language = "de"         # the emails', "sources[0].language"),
    "job titles": ('# job_titles = { "法人営業_中途"',
                   'job_titles = { "法人営業_中途" = "" }\n# x = {', "sources[0].job_titles"),
    "feedback column": ('# feedback_field = "候補者へのフィードバック"',
                        'feedback_field = "候補者へのフィードバック"',
                        "sources[0].feedback_field"),
}


@pytest.fixture
def example(tmp_path, store_url, monkeypatch, installed_sources):
    monkeypatch.delenv("CAREER_RELAY_SMTP_PASSWORD", raising=False)
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_the_example_passes_check_and_run(example):
    assert runner.invoke(app, ["check", "--config", str(example), "--offline"]).exit_code == 0
    assert runner.invoke(app, ["run", "--config", str(example), "--now", NOW]).exit_code == 0


@pytest.mark.parametrize("mistake", MISTAKES)
def test_what_stops_run_fails_check_with_its_key(example, mistake):
    old, new, key = MISTAKES[mistake]
    text = example.read_text(encoding="utf-8")
    assert old in text
    example.write_text(text.replace(old, new, 1), encoding="utf-8")
    checked = runner.invoke(app, ["check", "--config", str(example), "--offline", "--json"])
    assert checked.exit_code == 1, checked.output
    failures = [r for r in json.loads(checked.stdout) if not r["ok"]]
    assert any(key in r["detail"] for r in failures), failures
    ran = runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert ran.exit_code == 2, ran.output
    assert key in ran.output


def test_offline_check_still_resolves_env_secrets(example, monkeypatch):
    text = example.read_text(encoding="utf-8").replace('transport = "file"',
                                                       'transport = "smtp"', 1)
    example.write_text(text, encoding="utf-8")
    failures = [r for r in json.loads(runner.invoke(
        app, ["check", "--config", str(example), "--offline", "--json"]).stdout) if not r["ok"]]
    assert [r["what"] for r in failures] == ["secret mail.smtp.password"]
    assert "CAREER_RELAY_SMTP_PASSWORD is not set" in failures[0]["detail"]
    monkeypatch.setenv("CAREER_RELAY_SMTP_PASSWORD", "from-the-environment")
    result = runner.invoke(app, ["check", "--config", str(example), "--offline", "--json"])
    assert result.exit_code == 0 and "from-the-environment" not in result.output


def test_a_source_secret_error_names_the_source_key_in_check_and_run(example, monkeypatch):
    monkeypatch.delenv("LEVER_KEY_FOR_TEST", raising=False)
    with example.open("a", encoding="utf-8") as f:
        f.write('\n[[sources]]\nname = "lever"\ntype = "lever"\n'
                'api_key = "env:LEVER_KEY_FOR_TEST"\n')
    failures = [r for r in json.loads(runner.invoke(
        app, ["check", "--config", str(example), "--offline", "--json"]).stdout) if not r["ok"]]
    assert any(r["detail"].startswith("sources[1].api_key:") for r in failures), failures
    ran = runner.invoke(app, ["run", "--config", str(example), "--now", NOW])
    assert ran.exit_code == 2 and "sources[1].api_key" in ran.output


def test_check_says_when_the_console_has_no_account(example):
    result = json.loads(runner.invoke(app, ["check", "--config", str(example), "--offline",
                                            "--json"]).stdout)
    console = next(r for r in result if r["what"] == "console")
    assert "career-relay admin add" in console["detail"]


def test_check_warns_when_english_emails_would_name_the_company_in_japanese(example):
    text = example.read_text(encoding="utf-8").replace('name_en = "Sample Co., Ltd."',
                                                       'name_en = ""')
    example.write_text(text, encoding="utf-8")
    rows = {r["what"]: r for r in json.loads(runner.invoke(
        app, ["check", "--config", str(example), "--offline", "--json"]).stdout)}
    english = rows["english emails"]
    assert english["ok"] and "warning" in english["detail"] and "company.name_en" in \
        english["detail"]


@pytest.mark.parametrize("old, new, key", [
    ("max_per_day = 0 ", "max_per_day = -5 ", "mail.smtp.max_per_day"),
    ("purge_daily = true", 'purge_daily = "daily"', "retention.purge_daily"),
    ('retention = "ご登録から2年間"', "retention = 2", "agencies[1].retention"),
    ('retention = "ご登録から2年間"', 'retention = ""', "agencies[1].retention"),
    ('# [ledger.legal_review]\n# reviewer = "弁護士 田中一郎（田中法律事務所）"',
     '[ledger.legal_review]\nreviewer = ""', "ledger.legal_review.reviewer"),
])
def test_check_names_each_new_key_of_issue_11(example, old, new, key):
    text = example.read_text(encoding="utf-8")
    assert old in text, old
    example.write_text(text.replace(old, new, 1), encoding="utf-8")
    checked = runner.invoke(app, ["check", "--config", str(example), "--offline", "--json"])
    assert checked.exit_code == 1, checked.output
    failures = [r for r in json.loads(checked.stdout) if not r["ok"]]
    assert any(key in r["detail"] for r in failures), failures
