"""Email rendering: sandboxed Jinja2 templates, text + HTML, Japanese and English.

Templates live in `templates/email/<language>/` as `<kind>.subject.txt`, `<kind>.txt` and
`<kind>.html` for the kinds `rejection`, `invite_only` and `confirmation`; files starting with
`_` are partials (`{% include "email/ja/_invitation.txt" %}`) and `email/_layout.html` is the
HTML frame. A folder named by `mail.templates_dir` overrides the shipped files one by one, under
the same relative names (`email/ja/rejection.txt`).

The environment comes from `rendering.environment` (the mail flavour): sandboxed, StrictUndefined,
so a template that names an unknown variable or reaches for Python internals fails
`career-relay check` with its file and line instead of sending a broken mail. `.html` files are
autoescaped, `.txt` files are not; block tags eat their own line.

A mail is Japanese, English, or **bilingual**: both template sets rendered and joined into one
message, Japanese first (the subject "ja / en", the text parts one after the other, the HTML
bodies in one page under `email/_bilingual.html`). Each language's part gets its own context;
in English, `company.name_en`, `sender_name_en` and `signature_en` replace the Japanese ones
when configured, and a source's `job_titles` map the ATS's title for each language.

Context contract (what every template may use):

    company             name, legal_name, address, sender_name (display part of
                        company.sender), signature, reply_to, privacy_policy_url (English
                        variants in English parts)
    candidate           display_name, last_name, first_name (any may be "")
    job_title           str, "" when the ATS gives none
    stage_kind          "documents" | "interview"; the thanks line differs
    invitation_url      str | None; None means no invitation block (a button in HTML)
    invitation_expires  str | None, already written for the language ("2025年6月30日")
    feedback            str: the designated candidate-facing feedback, already bounded
                        (cycle/eligibility.py feedback_text); "" = no feedback block
    reapply             None, or {after_months: int, careers_url: str}: mail.reapply
    language            "ja" | "en"
    unsubscribe_url     str | None   the opt-out link of an invite_only mail (特定電子メール法
                                     Art. 4: with the sender's name and postal address); None
                                     for the other kinds
    withdraw_url        str          (confirmation only)
    agencies            list[str]    legal names of the chosen agencies (confirmation only)

Filters (shared by every template, see rendering/environment.py): `nl2br` escapes a multi-line
value and joins its lines with <br> (HTML only); `format_day(language)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from markupsafe import Markup

from relay_core.config import Config
from relay_core.errors import FatalError, TemplateError, UnsafeSubjectError
from relay_core.mail.message import CONTENT_LANGUAGE, sender_name
from relay_core.rendering.environment import format_day, template_environment

KINDS = ("rejection", "invite_only", "confirmation")
LANGUAGES = ("ja", "en")
MAIL_LANGUAGES = ("ja", "en", "bilingual")
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
STAGE_KINDS = ("documents", "interview")
# Only rejections we made get a courteous mail; eligibility skips the rest, this is a backstop.
MAILED_CATEGORIES = ("we_rejected", "other")
_INTERVIEW = re.compile(r"面接|面談|interview", re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str = "ja"     # "ja" | "en" | "bilingual": the Content-Language header

    @property
    def content_language(self) -> str:
        return CONTENT_LANGUAGE.get(self.language, self.language)

    def __repr__(self) -> str:  # the bodies hold the candidate's name
        return f"RenderedEmail(<{len(self.text)} chars text, {len(self.html)} chars html>)"



def template_names(kind: str, category: str = "we_rejected", stage_kind: str = "documents",
                   mode: str = "full") -> str:
    """The template set (the `<kind>` stem under email/<language>/) a mail uses.

    `mode = "invite_only"` turns a rejection into the short invitation-only mail. The stage
    kind changes only the thanks line, inside the same template (`{% if stage_kind %}`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}; expected one of {KINDS}")
    if stage_kind not in STAGE_KINDS:
        raise ValueError(f"unknown stage kind {stage_kind!r}; expected one of {STAGE_KINDS}")
    if kind != "confirmation" and category not in MAILED_CATEGORIES:
        raise FatalError(f"category {category!r} never gets a rejection email")
    return "invite_only" if kind == "rejection" and mode == "invite_only" else kind




def stage_kind(stage: str) -> str:
    return "interview" if _INTERVIEW.search(stage or "") else "documents"


def resolve_language(config: Config, language: str | None) -> str:
    """"ja", "en" or "bilingual"; anything else falls back to the company's default."""
    text = (language or "").strip().lower()
    if text == "bilingual":
        return text
    lang = re.split(r"[-_]", text)[0]
    return lang if lang in LANGUAGES else config.company.mail_language


def company_context(config: Config, language: str) -> dict[str, str]:
    company = config.company
    english = language == "en"
    return {
        "name": (company.name_en or company.name) if english else company.name,
        "legal_name": company.legal_name or company.name,
        "address": company.address,
        "sender_name": sender_name(config, language),
        "signature": (company.signature_en or company.signature) if english
        else company.signature,
        "reply_to": company.reply_to,
        "privacy_policy_url": company.privacy_policy_url,
    }


def reapply_context(config: Config) -> dict[str, Any] | None:
    reapply = config.mail.reapply
    if not reapply.enabled:
        return None
    return {"after_months": reapply.after_months, "careers_url": reapply.careers_url}


def build_context(config: Config, *, display_name: str, last_name: str, first_name: str,
                  job_title: str, stage: str, invitation_url: str | None,
                  invitation_expires: date | datetime | str | None, language: str | None,
                  withdraw_url: str | None = None, agencies: list[str] | None = None,
                  feedback: str = "", source: str | None = None,
                  unsubscribe_url: str | None = None) -> dict[str, Any]:
    """The template context for one mail (see the module docstring for the contract). For a
    bilingual mail, the context of each language's part is under `parts`; `source` names the
    `[[sources]]` block whose `job_titles` map `job_title`."""
    lang = resolve_language(config, language)
    if lang == "bilingual":
        parts = {part: build_context(
            config, display_name=display_name, last_name=last_name, first_name=first_name,
            job_title=job_title, stage=stage, invitation_url=invitation_url,
            invitation_expires=invitation_expires, language=part, withdraw_url=withdraw_url,
            agencies=agencies, feedback=feedback, source=source,
            unsubscribe_url=unsubscribe_url) for part in LANGUAGES}
        return {**parts["ja"], "language": "bilingual", "parts": parts}
    # Family name first in Japanese, unless the name is written in Latin letters.
    eastern = lang == "ja" and bool(_CJK.search(f"{last_name}{first_name}"))
    order = (last_name, first_name) if eastern else (first_name, last_name)
    source_config = next((s for s in config.sources if s.name == source), None)
    title = job_title or ""
    if source_config is not None and title:
        title = source_config.job_title(title, lang)
    context: dict[str, Any] = {
        "company": company_context(config, lang),
        "candidate": {
            "display_name": display_name or " ".join(p for p in order if p),
            "last_name": last_name or "",
            "first_name": first_name or "",
        },
        "job_title": title,
        "stage_kind": stage_kind(stage),
        "invitation_url": invitation_url or None,
        "invitation_expires": format_day(invitation_expires, lang) if invitation_url else None,
        "feedback": feedback or "",
        "reapply": reapply_context(config),
        "unsubscribe_url": unsubscribe_url or None,
        "language": lang,
    }
    if withdraw_url is not None or agencies is not None:
        context["withdraw_url"] = withdraw_url or ""
        context["agencies"] = list(agencies or [])
    return context




class Renderer:
    def __init__(self, config: Config, *, auto_reload: bool = True):
        """`auto_reload` False: edited templates are not picked up (see
        template_environment); for a process that lives one run."""
        self.config = config
        self.env = template_environment(config, html_only=False, auto_reload=auto_reload)

    def render(self, kind: str, language: str | None, context: dict[str, Any]) -> RenderedEmail:
        if kind not in KINDS:
            raise ValueError(f"unknown mail kind {kind!r}; expected one of {KINDS}")
        if kind == "invite_only" and not context.get("invitation_url"):
            raise FatalError("an invite_only mail carries only the invitation and this case "
                             "has none; skip the case instead")
        if kind == "invite_only" and not context.get("unsubscribe_url"):
            raise FatalError("an invite_only mail must carry its opt-out link "
                             "(特定電子メール法 Art. 4)")
        lang = resolve_language(self.config, language)
        if lang == "bilingual":
            return self._bilingual(kind, context)
        ctx = {**context, "language": lang}
        base = f"email/{lang}/{kind}"
        subject = self.env.render_file(f"{base}.subject.txt", ctx).strip()
        if "\r" in subject or "\n" in subject or len(subject.splitlines()) > 1:
            raise UnsafeSubjectError(f"{base}.subject.txt", None,
                                     "the subject has a line break after rendering; keep the "
                                     "template on one line and check the job title in the ATS")
        return RenderedEmail(subject, self.env.render_file(f"{base}.txt", ctx),
                             self.env.render_file(f"{base}.html", ctx), lang)

    def _bilingual(self, kind: str, context: dict[str, Any]) -> RenderedEmail:
        """Japanese first, then English, in one message: each part from its own templates."""
        parts = context.get("parts")
        if not parts:   # a context built for one language: make the other's from it
            parts = {lang: {**context, "language": lang} for lang in LANGUAGES}
        ja = self.render(kind, "ja", parts["ja"])
        en = self.render(kind, "en", parts["en"])
        bodies = {}
        for lang, mail in (("ja", ja), ("en", en)):
            found = _BODY.search(mail.html)
            if found is None:
                raise TemplateError(f"email/{lang}/{kind}.html", None,
                                    "has no <body> element; a bilingual mail joins the bodies "
                                    "of the Japanese and the English HTML part")
            bodies[lang] = Markup(found.group(1))
        html = self.env.render_file("email/_bilingual.html", {
            "title": f"{ja.subject} / {en.subject}", "ja_body": bodies["ja"],
            "en_body": bodies["en"]})
        text = self.env.render_file("email/_bilingual.txt", {"ja_text": ja.text,
                                                             "en_text": en.text})
        return RenderedEmail(f"{ja.subject} / {en.subject}", text, html, "bilingual")

    def sample_context(self, kind: str, language: str | None, *, stage_kind: str = "interview",
                       invited: bool = True, feedback: bool = False) -> dict[str, Any]:
        """Realistic sample data for `check` and `preview`."""
        lang = resolve_language(self.config, language)
        base = self.config.relay.public_base_url
        ja = lang != "en"
        sample_feedback = ("面接では、ご経験を具体的にお話しいただきました。\n"
                           "Thank you for the clear examples you gave in the interview.")
        context = build_context(
            self.config, display_name="", language=lang,
            last_name="山田" if ja else "Morgan", first_name="花子" if ja else "Alex",
            job_title="法人営業（東京）" if ja else "Account Executive",
            stage="一次面接" if stage_kind == "interview" else "書類選考",
            invitation_url=f"{base}/r/SAMPLE-TOKEN" if invited or kind == "invite_only" else None,
            invitation_expires=date.today() + timedelta(days=self.config.relay.invitation_ttl_days),
            feedback=sample_feedback if feedback else "",
            unsubscribe_url=f"{base}/u/SAMPLE-TOKEN" if kind == "invite_only" else None,
        )
        if kind == "confirmation":
            names = [a.legal_name for a in self.config.agencies if a.legal_name]
            extra = {"agencies": names or (["株式会社エージェントA"] if ja else ["Agency A Ltd."]),
                     "withdraw_url": f"{base}/w/SAMPLE-TOKEN"}
            context.update(extra)
            for part in context.get("parts", {}).values():
                part.update(extra)
        return context

    def check(self) -> list[TemplateError]:
        """Render every kind × language (bilingual too) × invitation × stage with sample data,
        a rejection also with feedback; collect errors."""
        found: dict[tuple[str, int | None, str], TemplateError] = {}
        config = self.config
        # Bilingual mails and the feedback block only where the configuration can produce them.
        languages = LANGUAGES + (("bilingual",) if "bilingual" in (
            config.company.mail_language, *(s.language for s in config.sources)) else ())
        feedback = any(s.options.get("feedback_field") for s in config.sources)
        for kind in KINDS:
            for lang in languages:
                for invited in (True, False) if kind == "rejection" else (True,):
                    for stage in STAGE_KINDS:
                        ctx = self.sample_context(kind, lang, stage_kind=stage, invited=invited,
                                                  feedback=feedback and kind == "rejection")
                        try:
                            problems = self._missing_links(kind, lang, ctx,
                                                           self.render(kind, lang, ctx))
                        except TemplateError as exc:
                            problems = [exc]
                        for p in problems:
                            found.setdefault((p.template, p.line, p.problem), p)
        return list(found.values())

    def _missing_links(self, kind: str, lang: str, ctx: dict[str, Any],
                       mail: RenderedEmail) -> list[TemplateError]:
        # A user template that drops the link would send a mail promising something it lacks;
        # an invite_only mail without the sender's address and opt-out breaks 特定電子メール法.
        keys = ["withdraw_url"] if kind == "confirmation" else ["invitation_url"]
        if kind == "invite_only":
            keys.append("unsubscribe_url")
        found = []
        for key in keys:
            url = ctx.get(key)
            if url:
                found += [TemplateError(f"email/{lang}/{kind}.{ext}", None, f"does not show {key}")
                          for ext, body in (("txt", mail.text), ("html", mail.html))
                          if url not in body]
        feedback = ctx.get("feedback")
        if feedback and kind == "rejection":
            first = feedback.splitlines()[0]
            found += [TemplateError(f"email/{lang}/{kind}.{ext}", None,
                                    "does not show the feedback block")
                      for ext, body in (("txt", mail.text), ("html", mail.html))
                      if first not in body]
        if kind == "invite_only" and self.config.company.address:
            found += [TemplateError(f"email/{lang}/{kind}.{ext}", None,
                                    "does not show company.address (特定電子メール法 Art. 4)")
                      for ext, body in (("txt", mail.text), ("html", mail.html))
                      if self.config.company.address not in body]
        return found

