from datetime import UTC, datetime, timedelta

import pytest

from relay_core.cycle.eligibility import assess, language_for
from relay_core.models import Category
from tests.fakes import event

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def config(make_config):
    return make_config()


def test_we_rejected_recent_with_email_is_eligible(config):
    decision = assess(event(), config, NOW)
    assert decision.eligible and decision.email == "taro@example.com" and decision.invite


@pytest.mark.parametrize("kwargs, words", [
    ({"category": Category.CANDIDATE_WITHDREW}, "withdrew"),
    ({"category": Category.HIRED}, "hired"),
    ({"category": Category.OTHER}, "does not say we rejected"),
    ({"duplicate": True}, "duplicate"),
    ({"prospect": True}, "prospect"),
    ({"private": True}, "private"),
    ({"anonymized": True}, "anonymized"),
    ({"can_email": False}, "may not be emailed"),
    ({"agency_sourced": True}, "agency"),
    ({"email": ""}, "no valid email"),
    ({"email": "not-an-address"}, "no valid email"),
    ({"rejected_at": NOW - timedelta(days=15)}, "more than 14 days"),
    ({"rejected_at": NOW + timedelta(days=3)}, "future"),
])
def test_every_skip_has_a_reason(config, kwargs, words):
    decision = assess(event(**kwargs), config, NOW)
    assert not decision.eligible
    assert words in decision.reason


def test_agency_sourced_can_be_mailed_when_configured(make_config):
    config = make_config({"eligibility": {"skip_agency_sourced": False}})
    assert assess(event(agency_sourced=True), config, NOW).eligible


def test_first_valid_address_is_used(config):
    from relay_core.models import Person

    e = event().model_copy(update={"person": Person(full_name="x", emails=[
        "bad address", "Second@Example.com"])})
    assert assess(e, config, NOW).email == "Second@example.com"


def test_no_invitation_flag_and_configured_reasons_keep_the_courteous_mail(make_config):
    config = make_config({"eligibility": {"no_invitation_reasons": ["R-9"]}})
    assert assess(event(no_invitation=True), config, NOW).invite is False
    e = event().model_copy(update={"reason_id": "R-9"})
    decision = assess(e, config, NOW)
    assert decision.eligible and decision.invite is False


def test_relay_disabled_means_no_invitation(make_config):
    config = make_config({"relay": {"enabled": False}})
    assert assess(event(), config, NOW).invite is False


def test_language_from_ats_else_company_locale(make_config):
    config = make_config({"company": {"locale": "en"}})
    assert language_for(event(language="ja-JP"), config) == "ja"
    assert language_for(event(language=None), config) == "en"
    assert language_for(event(language="fr"), config) == "en"
