from datetime import UTC, datetime, timedelta

import pytest

from relay_core.cycle.eligibility import (
    BEFORE_INSTALL,
    IN_PROCESS_NOTE,
    assess,
    feedback_text,
    language_for,
    recheck_action,
)
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


# --- issue 10: confidential jobs, in process elsewhere, first install, feedback, language ----
def test_a_confidential_job_is_mailed_by_default_a_private_candidate_is_not(make_config):
    config = make_config()
    decision = assess(event(confidential_job=True), config, NOW)
    assert decision.eligible and decision.invite        # the candidate knows the role
    assert "private" in assess(event(private=True), config, NOW).reason
    skip = make_config({"eligibility": {"confidential_jobs": "skip"}})
    decision = assess(event(confidential_job=True), skip, NOW)
    assert not decision.eligible and "eligibility.confidential_jobs" in decision.reason


@pytest.mark.parametrize("policy", ["no_invitation", "hold", "skip"])
def test_in_process_elsewhere_policy(make_config, policy):
    config = make_config({"eligibility": {"in_process_elsewhere": policy}})
    decision = assess(event(in_process_elsewhere=True), config, NOW)
    if policy == "no_invitation":     # the default: on time, without the relay invitation
        assert decision.eligible and not decision.invite and not decision.hold
        assert decision.invite_note == IN_PROCESS_NOTE
    elif policy == "hold":
        assert decision.eligible and decision.invite and "in_process_elsewhere" in decision.hold
    else:
        assert not decision.eligible and "another position" in decision.reason
    unknown = assess(event(in_process_elsewhere=None), config, NOW)
    assert unknown.eligible and unknown.invite and not unknown.hold


def test_default_policy_is_no_invitation(config):
    assert config.eligibility.in_process_elsewhere == "no_invitation"
    assert config.eligibility.confidential_jobs == "mail"


def test_rejections_before_the_first_poll_are_skipped_with_the_backfill_hint(config):
    installed = NOW - timedelta(hours=1)
    before = assess(event(rejected_at=installed - timedelta(minutes=1)), config, NOW,
                    installed_at=installed)
    assert not before.eligible and before.reason == BEFORE_INSTALL
    assert "backfill --since" in before.reason
    after = assess(event(rejected_at=installed + timedelta(minutes=1)), config, NOW,
                   installed_at=installed)
    assert after.eligible


def test_feedback_holds_for_a_second_reader_unless_switched_off(make_config):
    e = event().model_copy(update={"feedback": "丁寧なご説明をありがとうございました。"})
    held = assess(e, make_config(), NOW)
    assert held.eligible and "feedback_requires_approval" in held.hold
    free = make_config({"mail": {"feedback_requires_approval": False}})
    assert assess(e, free, NOW).hold == ""
    assert assess(event(), make_config(), NOW).hold == ""     # no feedback, no hold


def test_feedback_text_is_bounded_and_tidied(make_config):
    config = make_config({"mail": {"feedback_max_chars": 60}})
    raw = "一文目です。\r\n\r\n\r\n\x07二文目です。" + "長い" * 40
    text = feedback_text(raw, config)
    assert "\x07" not in text and "\r" not in text and "\n\n\n" not in text
    assert len(text) <= 61 and text.endswith("…")
    assert feedback_text("  short \n", config) == "short"


@pytest.mark.parametrize("person, application, source, company, expected", [
    ("en", "ja", None, "ja", "en"),                  # the person's own language first
    (None, "en", "ja", "ja", "en"),                  # then the job post's
    (None, "zhHant", None, "ja", "en"),              # another language: written in English
    (None, None, "bilingual", "ja", "bilingual"),    # then the source's default
    (None, None, None, "bilingual", "bilingual"),    # then company.default_language
    ("ja-JP", None, None, "en", "ja"),
])
def test_language_signals_in_order(make_config, person, application, source, company,
                                   expected):
    config = make_config({"company": {"default_language": company}, "sources": [
        {"name": "fake", "type": "hrmos_export", "path": "x", "language": source}]})
    e = event(language=person).model_copy(update={"language": application})
    assert language_for(e, config) == expected


def test_recheck_actions(make_config):
    from relay_core.contract.base import ApplicationStatus as S

    config = make_config()
    act = recheck_action(S.ACTIVE_ELSEWHERE, config, invite=True, invite_note="",
                         tells_other_applications=True)
    assert act.invite is False and act.invite_note == IN_PROCESS_NOTE and not act.cancel
    back = recheck_action(S.REJECTED, config, invite=False, invite_note=IN_PROCESS_NOTE,
                          tells_other_applications=True)
    assert back.invite is True                        # no longer in process elsewhere
    kept = recheck_action(S.REJECTED, config, invite=False, invite_note=IN_PROCESS_NOTE,
                          tells_other_applications=False)
    assert kept.invite is None                        # this connector cannot tell
    assert recheck_action(S.NOT_REJECTED, config, invite=True, invite_note="",
                          tells_other_applications=True).cancel
    hold = make_config({"eligibility": {"in_process_elsewhere": "hold"}})
    assert recheck_action(S.ACTIVE_ELSEWHERE, hold, invite=True, invite_note="",
                          tells_other_applications=True).hold
    skip = make_config({"eligibility": {"in_process_elsewhere": "skip"}})
    assert recheck_action(S.ACTIVE_ELSEWHERE, skip, invite=True, invite_note="",
                          tells_other_applications=True).cancel


def test_recheck_compares_the_category_not_just_the_standing(make_config):
    """Issue 13, item 6: a rejection changed into a withdrawal (or a hire) after detection is
    cancelled whatever the standing reads; the reason's name is in the cancel reason. Another
    category (an unknown reason type) leaves the standing to decide."""
    from relay_core.contract.base import ApplicationStatus as S
    from relay_core.contract.base import Standing

    config = make_config()

    def act(status):
        return recheck_action(status, config, invite=True, invite_note="",
                              tells_other_applications=True)

    withdrew = act(S(Standing.REJECTED, Category.CANDIDATE_WITHDREW, "Took another offer"))
    assert "withdrawal" in withdrew.cancel and "Took another offer" in withdrew.cancel
    assert "withdrawal" in act(S(Standing.ACTIVE_ELSEWHERE, Category.CANDIDATE_WITHDREW)).cancel
    assert "hired" in act(S.of(Category.HIRED)).cancel
    assert act(S(Standing.REJECTED, Category.WE_REJECTED, "Lacking skills")) == act(S.REJECTED)
    assert act(S(Standing.REJECTED, Category.OTHER)) == act(S.REJECTED)   # nothing cancelled
    assert not act(S.REJECTED).cancel
