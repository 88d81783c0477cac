"""What the candidate is told before consenting, and the pages that tell it.

The *consent text* is the part of the page the consent is about: the company, each offered
agency's legal name, country and purpose, the exact data items it would receive (its fields and
the provenance the APPI Art. 30 manifest carries: job applied for, decision date, consent date)
and how long it keeps them, or, for a `redirect` agency, that we send it nothing; retention,
how to withdraw, that refusing changes nothing and, when credits are on, that the company may
receive service credits from the agencies. It is rendered from
`templates/pages/<lang>/consent_text.html` with no per-request values (no CSRF token, no name),
so the same configuration, agency set and language always give the same bytes. A consent
stores its SHA-256, and the text itself is kept once per hash (store/consents.py
`keep_consent_text`), so `career-relay evidence` can show and verify exactly what was read long
after the configuration changed (reference/privacy_email.md sec. 6, items 3 and 4).

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
from relay_core.records.agencies import offered_agencies, sendable
from relay_core.records.items import PROVENANCE_ITEMS
from relay_core.rendering.environment import template_environment

LANGUAGES = ("ja", "en")
# Bump when the meaning of the consent text changes; the template's own digest is appended, so
# any edit to the file is visible in the stored version even if nobody bumps this.
TEXT_VERSION = "2"
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
# The provenance (取得の経緯) every transfer carries; job_title has its label above.
PROVENANCE_LABELS: dict[str, tuple[str, str]] = {
    "decision_date": ("弊社の選考が終了した日", "The day our selection process ended"),
    "consent_date": ("この紹介に同意された日", "The day you agreed to this introduction"),
}
ITEM_LABELS = {**FIELD_LABELS, **PROVENANCE_LABELS}
# Optional fields the candidate fills in on the page; sent only to agencies ticked and only if
# that agency's `fields` lists them.
PREFERENCE_FIELDS = ("desired_role", "location", "start_period", "message")
PREFERENCE_LIMITS = {"desired_role": 200, "location": 200, "start_period": 100, "message": 1000}

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
    pair = ITEM_LABELS.get(field)
    return _pick(pair, language) if pair else field


def shown_agencies(config: Config) -> list[Agency]:
    """Agencies a candidate may choose: complete, with a working channel and secret
    (records/agencies.py)."""
    return offered_agencies(config)


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

    def consent_text(self, language: str, agencies: list[Agency] | None = None
                     ) -> ConsentText:
        """The consent text for this language and these agencies (by default the ones offered
        now). The same for every case, so it is cached per language and agency set."""
        offered = offered_agencies(self.config) if agencies is None else agencies
        key = f"{language}|" + ",".join(a.id for a in offered)
        if key not in self._texts:
            context = disclosure_context(self.config, language, offered)
            html = self.render("consent_text", language, context)
            self._texts[key] = ConsentText(
                Markup(html), hashlib.sha256(html.encode()).hexdigest(),
                self.text_version(language), language)
        return self._texts[key]


def consent_text_for_case(config: Config, case: RelayCase, language: str | None = None
                          ) -> ConsentText:
    """Render the consent text exactly as the page shows it for this case; compare its sha256
    with a stored consent's `text_sha256` to check the evidence."""
    lang = language or case.language or config.company.locale
    return PageRenderer(config).consent_text(lang if lang in LANGUAGES else "ja")


def disclosure_context(config: Config, language: str, agencies: list[Agency] | None = None
                       ) -> dict[str, Any]:
    """What templates/pages/<lang>/consent_text.html may use: company (name, legal_name,
    privacy_policy_url), credits (bool: the ledger computes credits), and agencies, each with
    id, legal_name, country, abroad, purpose, redirect (bool: we send it nothing), data_items
    (labels of its fields), provenance_items (labels of the provenance not already listed),
    retention, deletion_contact, licence_number, protection_regime, protection_measures."""
    company = config.company
    entries = []
    for agency in offered_agencies(config) if agencies is None else agencies:
        country = agency.country.upper()
        redirect = agency.channel == "redirect"
        fields = [] if redirect else sendable(agency)
        entry = {
            "id": agency.id,
            "legal_name": agency.legal_name,
            "country": _pick(COUNTRY_NAMES[country], language) if country in COUNTRY_NAMES
            else country,
            "abroad": country != "JP",
            "purpose": agency.purpose or _pick(DEFAULT_PURPOSE, language),
            "redirect": redirect,
            "data_items": [field_label(f, language) for f in fields],
            "provenance_items": [] if redirect else [
                field_label(f, language) for f in PROVENANCE_ITEMS if f not in fields],
            "retention": agency.retention,
            "deletion_contact": agency.deletion_contact,
            "licence_number": agency.licence_number,
            "protection_regime": agency.protection_regime,
            "protection_measures": agency.protection_measures,
        }
        _require_filled(entry, agency.id)
        entries.append(entry)
    if not company.name.strip():
        raise TemplateError("pages/consent_text.html", None,
                            "company.name is empty; the consent text must name the company")
    return {
        "company": {"name": company.name, "legal_name": company.legal_name or company.name,
                    "privacy_policy_url": company.privacy_policy_url},
        "credits": config.ledger.enabled,
        "agencies": entries,
    }


def _require_filled(entry: dict[str, Any], agency_id: str) -> None:
    # A consent text with a blank agency name, or an agency that receives data without a list
    # of items or a retention period, is not informed consent.
    required = ["legal_name", "country", "purpose", "deletion_contact"]
    if not entry["redirect"]:
        required += ["data_items", "retention"]
    for key in required:
        if not entry[key]:
            raise TemplateError("pages/consent_text.html", None,
                                f"agency {agency_id!r} has no {key} to show")
