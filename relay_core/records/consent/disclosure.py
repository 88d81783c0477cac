"""What the candidate is told before consenting, and the pages that tell it.

The *consent text* is the part of the page the consent is about: the company, each agency's
legal name, country and purpose, the exact data items it would receive, retention, how to
withdraw, and that refusing changes nothing. It is rendered from
`templates/pages/<lang>/consent_text.html` with no per-request values (no CSRF token, no name),
so the same case and language always give the same bytes: its SHA-256 is the evidence of what
was shown, and `consent_text()` recomputes it at any time (reference/privacy_email.md sec. 6,
items 3 and 4).

Pages are Jinja2 from `rendering.environment` (the HTML flavour: sandbox, StrictUndefined,
everything autoescaped; a failure names the file and line); a file in `mail.templates_dir` under
the same relative name (`pages/ja/consent.html`) overrides the shipped one, as for emails.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from relay_core.config import Agency, Config
from relay_core.errors import TemplateError
from relay_core.models import RelayCase
from relay_core.rendering.environment import template_environment

LANGUAGES = ("ja", "en")
# Bump when the meaning of the consent text changes; the template's own digest is appended, so
# any edit to the file is visible in the stored version even if nobody bumps this.
TEXT_VERSION = "1"
METHOD = "web form POST"

# The candidate sees these words, never the configuration's keys.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "name": ("氏名", "Your name"),
    "email": ("メールアドレス", "Your email address"),
    "phone": ("電話番号", "Your phone number"),
    "job_title": ("弊社で応募された職種名", "The position you applied for with us"),
    "desired_role": ("希望職種（ご記入いただいた場合）", "Desired role (if you fill it in)"),
    "location": ("希望勤務地（ご記入いただいた場合）", "Preferred location (if you fill it in)"),
    "start_period": ("希望入社時期（ご記入いただいた場合）",
                     "When you could start (if you fill it in)"),
    "message": ("紹介会社へのメッセージ（ご記入いただいた場合）",
                "Your message to the agency (if you write one)"),
}
# Optional fields the candidate fills in on the page; sent only to agencies ticked and only if
# that agency's `fields` lists them.
PREFERENCE_FIELDS = ("desired_role", "location", "start_period", "message")
PREFERENCE_LIMITS = {"desired_role": 200, "location": 200, "start_period": 100, "message": 2000}

DEFAULT_PURPOSE = ("あなたのご経験に合う他社の求人をご案内するため、あなたにご連絡すること",
                   "to contact you about job openings at other companies that may suit you")
COUNTRY_NAMES: dict[str, tuple[str, str]] = {
    "JP": ("日本", "Japan"), "US": ("アメリカ合衆国", "United States"),
    "GB": ("英国", "United Kingdom"), "SG": ("シンガポール", "Singapore"),
    "DE": ("ドイツ", "Germany"), "FR": ("フランス", "France"), "KR": ("韓国", "South Korea"),
    "CN": ("中国", "China"), "TW": ("台湾", "Taiwan"), "IN": ("インド", "India"),
}


def _pick(pair: tuple[str, str], language: str) -> str:
    return pair[0] if language == "ja" else pair[1]


def field_label(field: str, language: str) -> str:
    pair = FIELD_LABELS.get(field)
    return _pick(pair, language) if pair else field


def shown_agencies(config: Config) -> list[Agency]:
    """Agencies a candidate may choose: only those whose disclosures are complete."""
    return [a for a in config.agencies if not a.missing_disclosures()]


@dataclass(frozen=True)
class ConsentText:
    html: Markup
    sha256: str
    version: str
    language: str

    def __repr__(self) -> str:
        return f"ConsentText({self.language}, v{self.version}, sha256={self.sha256[:12]}…)"


class PageRenderer:
    """Renders the consent pages; one per app, so templates are compiled once."""

    def __init__(self, config: Config):
        self.config = config
        self.env = template_environment(config, html_only=True)
        self._versions: dict[str, str] = {}
        self._texts: dict[str, ConsentText] = {}

    def render(self, name: str, language: str, context: dict[str, Any]) -> str:
        return self.env.render_file(f"pages/{language}/{name}.html",
                                    {**context, "language": language})

    def text_version(self, language: str) -> str:
        if language not in self._versions:
            name = f"pages/{language}/consent_text.html"
            source = self.env.loader.get_source(self.env, name)[0]
            digest = hashlib.sha256(source.encode()).hexdigest()[:12]
            self._versions[language] = f"{TEXT_VERSION}+{digest}"
        return self._versions[language]

    def consent_text(self, language: str) -> ConsentText:
        """The consent text for this configuration and language (the same for every case, so
        it is cached; `consent_text_for_case` is the function to recompute evidence with)."""
        if language not in self._texts:
            context = disclosure_context(self.config, language)
            html = self.render("consent_text", language, context)
            self._texts[language] = ConsentText(
                Markup(html), hashlib.sha256(html.encode()).hexdigest(),
                self.text_version(language), language)
        return self._texts[language]


def consent_text_for_case(config: Config, case: RelayCase, language: str | None = None
                          ) -> ConsentText:
    """Render the consent text exactly as the page shows it for this case; compare its sha256
    with a stored consent's `text_sha256` to check the evidence."""
    lang = language or case.language or config.company.locale
    return PageRenderer(config).consent_text(lang if lang in LANGUAGES else "ja")


def disclosure_context(config: Config, language: str) -> dict[str, Any]:
    company = config.company
    agencies = []
    for agency in shown_agencies(config):
        country = agency.country.upper()
        items = [field_label(f, language) for f in agency.fields]
        entry = {
            "id": agency.id,
            "legal_name": agency.legal_name,
            "country": _pick(COUNTRY_NAMES[country], language) if country in COUNTRY_NAMES
            else country,
            "abroad": country != "JP",
            "purpose": agency.purpose or _pick(DEFAULT_PURPOSE, language),
            "data_items": items,
            "deletion_contact": agency.deletion_contact,
            "licence_number": agency.licence_number,
            "protection_regime": agency.protection_regime,
            "protection_measures": agency.protection_measures,
        }
        _require_filled(entry, agency.id)
        agencies.append(entry)
    if not company.name.strip():
        raise TemplateError("pages/consent_text.html", None,
                            "company.name is empty; the consent text must name the company")
    return {
        "company": {"name": company.name, "legal_name": company.legal_name or company.name,
                    "privacy_policy_url": company.privacy_policy_url},
        "agencies": agencies,
    }


def _require_filled(entry: dict[str, Any], agency_id: str) -> None:
    # A consent text with a blank agency name or no data items is not informed consent.
    for key in ("legal_name", "country", "purpose", "data_items", "deletion_contact"):
        if not entry[key]:
            raise TemplateError("pages/consent_text.html", None,
                                f"agency {agency_id!r} has no {key} to show")
