"""The relay can be switched on only with a privacy policy and complete agency disclosures;
the consent text refuses to render with a blank required item."""

from __future__ import annotations

import pytest

from relay_core.commands.checks import _check_relay
from relay_core.errors import TemplateError
from relay_core.records.consent.disclosure import PageRenderer, field_label
from relay_core.records.consent.requirements import relay_problems
from tests.consent.conftest import AGENCIES


def test_complete_config_has_no_problems(config):
    assert relay_problems(config) == []


def test_check_refuses_relay_without_privacy_policy(make_config):
    config = make_config({"company": {"privacy_policy_url": ""}, "agencies": AGENCIES})
    problems = relay_problems(config)
    assert any("privacy_policy_url" in p for p in problems)
    results = [r for r in _check_relay(config) if r.what == "relay invitation"]
    assert results and not any(r.ok for r in results)
    assert any("company.privacy_policy_url" in r.detail and "without the invitation" in r.detail
               for r in results)


def test_check_names_each_agency_disclosure_that_is_missing(make_config):
    incomplete = {**AGENCIES[0], "licence_number": "", "deletion_contact": ""}
    config = make_config({"agencies": [incomplete, {**AGENCIES[1], "fields": ["name", "cv"]}]})
    problems = relay_problems(config)
    assert any("agencies[0]" in p and "licence_number" in p and "deletion_contact" in p
               for p in problems)
    assert any("agencies[1].fields" in p and "'cv'" in p for p in problems)


def test_check_refuses_a_clear_text_base_url(make_config):
    config = make_config({"agencies": AGENCIES,
                          "relay": {"public_base_url": "http://relay.example.co.jp"}})
    assert any("https://" in p for p in relay_problems(config))
    loopback = make_config({"agencies": AGENCIES,
                            "relay": {"public_base_url": "http://127.0.0.1:8080"}})
    assert relay_problems(loopback) == []


def test_incomplete_agency_is_not_shown_to_candidates(make_config):
    config = make_config({"agencies": [{**AGENCIES[0], "address": ""}, AGENCIES[1]]})
    html = PageRenderer(config).consent_text("ja").html
    assert "株式会社エージェントA" not in html and "Global Talent" in html


def test_consent_text_refuses_to_render_an_agency_without_data_items(make_config):
    config = make_config({"agencies": [{**AGENCIES[0], "fields": []}]})
    assert PageRenderer(config).consent_text("ja").html.count('class="agency"') == 0
    with pytest.raises(TemplateError, match="data_items"):
        PageRenderer(config).consent_text("ja", list(config.agencies))


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_consent_text_states_everything_required(config, lang):
    html = PageRenderer(config).consent_text(lang).html
    for agency in AGENCIES:
        assert agency["legal_name"] in html
        for field in agency["fields"]:
            assert field_label(field, lang) in html
    assert "株式会社サンプル" in html and "https://example.co.jp/privacy" in html
    words = {"ja": ["保存期間", "撤回", "影響は一切ありません", "日本", "シンガポール",
                    "ご経験に合う求人のご紹介", "日本国外"],
             "en": ["How long data is kept", "Withdrawing", "changes nothing", "Japan",
                    "Singapore", "outside Japan"]}[lang]
    for word in words:
        assert word in html, word
    assert "desired_role" not in html        # human words, not configuration keys


def test_an_agency_abroad_needs_its_country_regime_and_measures(make_config):
    bare = {k: v for k, v in AGENCIES[1].items()
            if k not in ("protection_regime", "protection_measures")}
    config = make_config({"agencies": [AGENCIES[0], bare]})
    problems = relay_problems(config)
    assert any("protection_regime" in p and "protection_measures" in p for p in problems)
    html = PageRenderer(config).consent_text("en").html
    assert AGENCIES[1]["legal_name"] not in html          # not offered to candidates at all
    complete = PageRenderer(make_config({"agencies": AGENCIES})).consent_text("ja").html
    assert "PDPA" in complete and "ISO 27001" in complete
