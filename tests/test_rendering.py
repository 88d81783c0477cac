"""Email templates: both languages, escaping, sandbox, strict variables, user overrides."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from relay_core.config import Config, parse_config
from relay_core.errors import FatalError, TemplateError
from relay_core.rendering.emails import (
    KINDS,
    Renderer,
    UnsafeSubjectError,
    build_context,
    stage_kind,
    template_names,
)
from relay_core.rendering.environment import shipped_templates_dir

URL = "https://relay.example.co.jp/r/TOKEN123"


def make_config(tmp_path: Path, **mail) -> Config:
    return parse_config({
        "company": {"name": "株式会社サンプル", "sender": "採用担当 <recruit@example.co.jp>",
                    "reply_to": "recruit@example.co.jp",
                    "privacy_policy_url": "https://example.co.jp/privacy"},
        "mail": mail,
    }, tmp_path)


STOP = "https://relay.example.co.jp/u/STOP123"


def context(config: Config, *, language: str = "ja", url: str | None = URL,
            stage: str = "書類選考", name: str = "山田 花子", stop: str | None = STOP) -> dict:
    return build_context(config, display_name=name, last_name="山田", first_name="花子",
                         job_title="法人営業", stage=stage, invitation_url=url,
                         invitation_expires="2026年12月27日" if url else None, language=language,
                         unsubscribe_url=stop)


def override(tmp_path: Path, files: dict[str, str]) -> Config:
    for name, text in files.items():
        path = tmp_path / "mytemplates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return make_config(tmp_path, templates_dir="mytemplates")


def test_japanese_rejection_follows_the_customary_structure(tmp_path):
    config = make_config(tmp_path)
    mail = Renderer(config).render("rejection", "ja", context(config))
    assert mail.subject == "選考結果のご連絡（株式会社サンプル）"
    text = mail.text
    # 宛名 → 名乗り → お礼 → 結果 → 応募書類 → invitation → 結び → 署名, in this order
    at = 0
    for part in ["山田 花子 様", "株式会社サンプル 採用担当でございます", "ご応募いただき",
                 "慎重に選考", "応募書類", URL, "ご活躍を心よりお祈り", "――――\n株式会社サンプル"]:
        at = text.index(part, at)
    assert "不採用" not in text and "面接にお越し" not in text
    assert "有効期限は2026年12月27日" in text
    assert '<html lang="ja">' in mail.html


def test_english_rejection(tmp_path):
    config = make_config(tmp_path)
    ctx = build_context(config, display_name="", last_name="Morgan", first_name="Alex",
                        job_title="Account Executive", stage="Onsite Interview",
                        invitation_url=URL, invitation_expires=None, language="en-US")
    mail = Renderer(config).render("rejection", "en-US", ctx)
    assert mail.subject == "Your application to 株式会社サンプル"
    assert mail.text.startswith("Dear Alex Morgan,\n")
    assert "interview with us for the Account Executive position" in mail.text
    assert "expires" not in mail.text   # no expiry given, no expiry line
    assert '<html lang="en">' in mail.html


def test_unknown_language_falls_back_to_company_locale(tmp_path):
    config = make_config(tmp_path)
    mail = Renderer(config).render("rejection", "fr", context(config, language="fr"))
    assert mail.subject.startswith("選考結果のご連絡")


def test_interview_stage_changes_only_the_thanks_line(tmp_path):
    config = make_config(tmp_path)
    renderer = Renderer(config)
    docs = renderer.render("rejection", "ja", context(config, stage="書類選考")).text
    talk = renderer.render("rejection", "ja", context(config, stage="一次面接")).text
    changed = [line for line in difflib.ndiff(docs.splitlines(), talk.splitlines())
               if line[:1] in "+-"]
    assert len(changed) == 2
    assert "面接にお越しいただき" in talk and "ご応募いただき" in docs
    assert stage_kind("Final interview") == stage_kind("最終面談") == "interview"
    assert stage_kind("Application Review") == "documents"


def test_names_are_escaped_in_html_but_not_in_text(tmp_path):
    config = make_config(tmp_path)
    mail = Renderer(config).render("rejection", "ja",
                                   context(config, name="<script>alert(1)</script>"))
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "<script>alert(1)</script> 様" in mail.text


def test_html_loads_nothing_from_outside(tmp_path):
    config = make_config(tmp_path)
    renderer = Renderer(config)
    for kind in KINDS:
        for lang in ("ja", "en"):
            html = renderer.render(kind, lang, renderer.sample_context(kind, lang)).html
            assert "<img" not in html and "<script" not in html and "<link" not in html
            assert "src=" not in html and "@import" not in html


def test_no_invitation_block_without_a_link(tmp_path):
    config = make_config(tmp_path)
    renderer = Renderer(config)
    for lang in ("ja", "en"):
        mail = renderer.render("rejection", lang, context(config, language=lang, url=None))
        for body in (mail.text, mail.html):
            assert "/r/" not in body
            assert "人材紹介会社" not in body and "recruitment agencies" not in body
            # The privacy policy is linked for how application documents are kept (issue 11,
            # point 6), once: the invitation block's own link is not there.
            assert body.count("https://example.co.jp/privacy") == 1


def test_the_rejection_reads_the_same_with_or_without_the_invitation(tmp_path):
    config = make_config(tmp_path)
    renderer = Renderer(config)
    for lang in ("ja", "en"):
        with_link = renderer.render("rejection", lang, context(config, language=lang)).text
        without = renderer.render("rejection", lang, context(config, language=lang, url=None)).text
        diff = list(difflib.ndiff(without.splitlines(), with_link.splitlines()))
        assert not [d for d in diff if d.startswith("- ")]   # nothing removed or reworded
        added = [i for i, d in enumerate(diff) if d.startswith("+ ")]
        assert added == list(range(added[0], added[-1] + 1))  # one contiguous block
        assert any(URL in diff[i] for i in added)


def test_templates_offer_no_incentive_and_avoid_harsh_words():
    forbidden = ["不採用", "ギフト", "ポイント", "謝礼", "特典", "プレゼント", "キャンペーン",
                 "gift", "reward", "incentive", "bonus", "voucher", "prize"]
    for path in (shipped_templates_dir() / "email").rglob("*.*"):
        text = path.read_text(encoding="utf-8").lower()
        assert not [w for w in forbidden if w in text], path


def test_invite_only_is_a_short_mail_with_the_invitation(tmp_path):
    config = make_config(tmp_path)
    renderer = Renderer(config)
    mail = renderer.render("invite_only", "ja", context(config))
    assert URL in mail.text and URL in mail.html
    assert "選考結果のご連絡" not in mail.subject
    assert "慎重に選考" not in mail.text and "破棄" not in mail.text
    with pytest.raises(FatalError):
        renderer.render("invite_only", "ja", context(config, url=None))


def test_template_names_pick_the_set():
    assert template_names("rejection", "we_rejected", "documents", "full") == "rejection"
    assert template_names("rejection", "we_rejected", "interview", "invite_only") == "invite_only"
    assert template_names("confirmation", "we_rejected", "documents", "invite_only") \
        == "confirmation"
    with pytest.raises(FatalError):
        template_names("rejection", "hired", "documents", "full")


def test_confirmation_lists_agencies_and_the_withdrawal_link(tmp_path):
    config = make_config(tmp_path)
    ctx = build_context(config, display_name="山田 花子", last_name="山田", first_name="花子",
                        job_title="", stage="", invitation_url=None, invitation_expires=None,
                        language="ja", withdraw_url="https://relay.example.co.jp/w/W1",
                        agencies=["株式会社エージェントA", "B & Co. <Ltd>"])
    mail = Renderer(config).render("confirmation", "ja", ctx)
    assert "・株式会社エージェントA" in mail.text
    assert "https://relay.example.co.jp/w/W1" in mail.text
    assert "B &amp; Co. &lt;Ltd&gt;" in mail.html


def test_shipped_templates_pass_check(tmp_path):
    assert Renderer(make_config(tmp_path)).check() == []


def test_unknown_variable_in_a_user_template_names_file_and_line(tmp_path):
    config = override(tmp_path, {"email/ja/rejection.txt":
                                  "{{ candidate.display_name }} 様\n\n{{ candidate.age }}\n"})
    with pytest.raises(TemplateError) as caught:
        Renderer(config).render("rejection", "ja", context(config))
    assert caught.value.template.endswith("mytemplates/email/ja/rejection.txt")
    assert caught.value.line == 3
    assert "age" in caught.value.problem and "山田" not in str(caught.value)
    problems = Renderer(config).check()
    assert problems and all(p.line == 3 for p in problems)
    assert "rejection.txt:3: " in str(problems[0])


def test_error_inside_an_included_partial_points_at_the_partial(tmp_path):
    config = override(tmp_path, {"email/en/_invitation.txt": "{% if invitation_url %}\n"
                                                            "{{ invitation_url }}\n"
                                                            "{{ nope }}\n{% endif %}\n"})
    problems = Renderer(config).check()
    assert {(Path(p.template).name, p.line) for p in problems} == {("_invitation.txt", 3)}


def test_sandbox_refuses_python_internals(tmp_path):
    config = override(tmp_path, {"email/en/rejection.txt": "ok\n{{ ''.__class__.__mro__ }}\n"})
    with pytest.raises(TemplateError) as caught:
        Renderer(config).render("rejection", "en", context(config, language="en"))
    assert caught.value.line == 2
    assert Renderer(config).check()


def test_syntax_error_reports_the_line(tmp_path):
    config = override(tmp_path, {"email/ja/confirmation.html": "<p>\n{% if %}\n"})
    problems = Renderer(config).check()
    assert [(Path(p.template).name, p.line) for p in problems] == [("confirmation.html", 2)]
    assert "syntax error" in problems[0].problem


def test_user_folder_overrides_file_by_file(tmp_path):
    config = override(tmp_path,
                      {"email/ja/rejection.subject.txt": "結果のお知らせ {{ company.name }}\n"})
    mail = Renderer(config).render("rejection", "ja", context(config))
    assert mail.subject == "結果のお知らせ 株式会社サンプル"
    assert "慎重に選考" in mail.text    # the body still comes from the shipped set


def test_user_template_that_drops_the_link_fails_check(tmp_path):
    config = override(tmp_path, {"email/en/rejection.html": "<p>{{ candidate.display_name }}</p>"})
    problems = Renderer(config).check()
    assert [(p.template, p.problem) for p in problems] == [
        ("email/en/rejection.html", "does not show invitation_url")]


def test_line_break_in_the_subject_fails_only_this_case(tmp_path):
    config = override(tmp_path, {"email/ja/rejection.subject.txt": "{{ job_title }}\n"})
    ctx = context(config)
    ctx["job_title"] = "営業\nBcc: evil@example.com"
    with pytest.raises(UnsafeSubjectError) as caught:
        Renderer(config).render("rejection", "ja", ctx)
    assert isinstance(caught.value, FatalError) and "evil" not in str(caught.value)


def test_missing_templates_dir_is_a_config_error(tmp_path):
    from relay_core.errors import ConfigError

    with pytest.raises(ConfigError, match="mail.templates_dir"):
        Renderer(make_config(tmp_path, templates_dir="nowhere"))


# --- issue 10: bilingual, English names, job titles, feedback, re-application, button --------
def full_config(tmp_path: Path, **company) -> Config:
    return parse_config({
        "company": {"name": "株式会社サンプル", "sender": "採用担当 <recruit@example.co.jp>",
                    "reply_to": "recruit@example.co.jp", "name_en": "Sample K.K.",
                    "sender_name_en": "Sample Recruiting", "signature_en": "Tokyo, Japan",
                    "privacy_policy_url": "https://example.co.jp/privacy", **company},
        "mail": {"reapply": {"enabled": True, "after_months": 6,
                             "careers_url": "https://example.co.jp/careers"}},
        "sources": [{"name": "gh", "type": "hrmos_export", "path": "x.tsv",
                     "job_titles": {"法人営業_中途": {"ja": "法人営業", "en": "Corporate Sales"},
                                    "BE-2026-07": "Backend Engineer"}}],
    }, tmp_path)


def rendered(config: Config, language: str, *, feedback: str = "", job: str = "法人営業_中途",
             url: str | None = URL, first: str = "James", last: str = "Garcia"):
    ctx = build_context(config, display_name="", last_name=last, first_name=first,
                        job_title=job, stage="一次面接", invitation_url=url,
                        invitation_expires="2026-12-27" if url else None, language=language,
                        feedback=feedback, source="gh")
    return Renderer(config).render("rejection", language, ctx)


def test_bilingual_is_japanese_first_then_english_in_one_message(tmp_path):
    mail = rendered(full_config(tmp_path), "bilingual")
    assert mail.subject == "選考結果のご連絡（株式会社サンプル） / Your application to Sample K.K."
    assert mail.language == "bilingual" and mail.content_language == "ja, en"
    text = mail.text
    assert text.index("James Garcia 様") < text.index("Dear James Garcia,")   # Latin name order
    assert text.index("慎重に選考") < text.index("After careful consideration")
    assert text.count(URL) == 2
    html = mail.html
    assert html.count("<body") == 1 and html.index("選考結果") < html.index('<div lang="en">')
    assert "Sample Recruiting" in text and "Tokyo, Japan" in text


def test_english_parts_use_the_english_company_names_and_titles(tmp_path):
    config = full_config(tmp_path)
    en = rendered(config, "en")
    assert en.subject == "Your application to Sample K.K."
    assert "株式会社" not in en.text and "採用担当" not in en.text
    assert "Corporate Sales position" in en.text           # job_titles mapping, per language
    ja = rendered(config, "ja")
    assert "法人営業の面接" in ja.text and "法人営業_中途" not in ja.text
    assert "Backend Engineer position" in rendered(config, "en", job="BE-2026-07").text


def test_feedback_block_is_escaped_and_under_its_own_heading(tmp_path):
    config = full_config(tmp_path)
    feedback = "面接では<b>明快</b>にご説明いただきました。\n<script>alert(1)</script>"
    for lang, heading in (("ja", "選考に関するコメント"), ("en", "Feedback from the hiring team")):
        mail = rendered(config, lang, feedback=feedback)
        assert heading in mail.text and heading in mail.html
        assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
        assert "&lt;b&gt;明快&lt;/b&gt;" in mail.html and "<b>明快</b>" in mail.text
    assert "選考に関するコメント" not in rendered(config, "ja").text      # none, no block


def test_reapply_block_is_a_next_option_in_both_languages(tmp_path):
    config = full_config(tmp_path)
    ja, en = rendered(config, "ja"), rendered(config, "en")
    assert "6か月以上経過した後" in ja.text and "https://example.co.jp/careers" in ja.text
    assert "after 6 months" in en.text and "https://example.co.jp/careers" in en.html
    assert ja.text.index("今後のご応募について") < ja.text.index(URL)   # both next options
    plain = make_config(tmp_path)
    assert "今後のご応募" not in Renderer(plain).render("rejection", "ja", context(plain)).text


def test_html_invitation_is_a_button_the_text_part_keeps_the_url(tmp_path):
    config = full_config(tmp_path)
    for lang, label in (("ja", "紹介会社を選ぶ（任意）"), ("en", "Choose agencies (optional)")):
        mail = rendered(config, lang)
        assert f'<a href="{URL}" style="display:inline-block;' in mail.html
        assert label in mail.html and f">{URL}<" not in mail.html     # no raw link shown
        assert URL in mail.text


def test_every_html_part_parses_strictly(tmp_path):
    """html5lib in strict mode raises on any parse error of the HTML5 algorithm."""
    import html5lib

    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    config = full_config(tmp_path, default_language="bilingual")
    renderer = Renderer(config)
    for kind in KINDS:
        for lang in ("ja", "en", "bilingual"):
            for invited in (True, False):
                ctx = renderer.sample_context(kind, lang, invited=invited,
                                              feedback=kind == "rejection")
                if kind == "invite_only" and not invited:
                    continue
                parser.parse(renderer.render(kind, lang, ctx).html)


def test_message_carries_content_language_and_the_english_sender_name(tmp_path):
    from datetime import UTC, datetime
    from email import message_from_bytes, policy

    from relay_core.mail.message import build_mail

    config = full_config(tmp_path)
    for lang, header, sender in (("ja", "ja", "採用担当"), ("en", "en", "Sample Recruiting"),
                                 ("bilingual", "ja, en", "採用担当 / Sample Recruiting")):
        mail = rendered(config, lang)
        out = build_mail(config, to_addr="james@example.com", to_name="James Garcia",
                         subject=mail.subject, text=mail.text, html=mail.html,
                         message_id="<relay.x@example.co.jp>", date=datetime.now(UTC),
                         language=mail.language)
        msg = message_from_bytes(out.data, policy=policy.default)
        assert msg["Content-Language"] == header
        assert msg["From"].addresses[0].display_name == sender
        assert msg["From"].addresses[0].addr_spec == "recruit@example.co.jp"
        assert msg.get_body(("plain",)).get_content().startswith(
            "※ English" if lang == "bilingual" else ("James" if lang == "ja" else "Dear"))
