"""The document an agency receives, and the filter that decides which candidate fields it holds.

The document is versioned (`version`, `docs/agency-handoff.schema.json`) and the same for every
channel: the webhook POSTs it as JSON, the email channel writes it out as text. Each carries the
APPI Art. 30 manifest: who provides the data (legal name, address, representative), how the
provider obtained it, and the consent reference (reference/privacy_email.md sec. 1.4, sec. 6
item 8). The document is rebuilt, byte for byte the same, on every attempt of a handoff, so a
retry never carries a different body under the same Idempotency-Key.

The field filter (sec. 6 item 9): only fields both on the agency's allowlist and in the consent
are sent, and a key that names a 職業安定法 指針 category (本籍, birthplace, family, assets,
appearance, beliefs, union membership …), 要配慮個人情報 (health, criminal record, race …),
interviewer notes or scores is dropped even when someone allowlisted it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay_core.config import Agency, Config
from relay_core.models import RelayCase
from relay_core.store.consents import ConsentRecord

SCHEMA_VERSION = 1
HANDOFF_TYPE = "candidate.handoff"
DELETION_TYPE = "candidate.deletion_request"

# Substrings of a normalised key (lower case, letters/digits only) that are never sent.
# Deny by substring on purpose: a false positive costs one field, a false negative is a breach.
BANNED_KEY_PARTS: dict[str, tuple[str, ...]] = {
    "指針: origin and social status": (
        "honseki", "本籍", "domicile", "birthplace", "placeofbirth", "出生地", "出身地",
        "familyorigin", "家柄", "socialstatus", "社会的身分", "race", "人種", "ethnic", "民族",
        "nationality", "国籍", "門地"),
    "指針: family and assets": (
        "familyoccupation", "familymember", "familystructure", "familyincome",
        "familybackground", "householdincome", "家族", "世帯収入", "parentsoccupation",
        "parentoccupation", "両親", "spouse", "配偶者", "asset", "資産", "wealth", "財産",
        "住宅状況", "housing"),
    "指針: appearance": (
        "appearance", "容姿", "容貌", "photo", "写真", "height", "身長", "weight", "体重",
        "bodymeasure", "スリーサイズ"),
    "指針: beliefs, politics, unions": (
        "belief", "religio", "creed", "信条", "思想", "宗教", "信仰", "political", "政党",
        "支持政党", "newspaper", "新聞", "favouritebook", "favoritebook", "愛読書",
        "philosophy", "人生観", "union", "組合", "socialmovement", "社会運動", "学生運動"),
    "要配慮個人情報": (
        "health", "健康", "medical", "病歴", "病気", "disease", "illness", "disab", "障害",
        "criminal", "犯罪", "前科", "conviction", "arrest", "逮捕", "victim", "被害",
        "genetic", "遺伝", "sexualorientation", "性的指向"),
    "interviewer notes and scores": (
        "note", "メモ", "所見", "score", "点数", "評価", "rating", "rank", "evaluat",
        "feedback", "interview", "面接", "assessment", "appraisal", "judg", "判定", "comment",
        "コメント"),
}


def normalise_key(key: str) -> str:
    text = unicodedata.normalize("NFKC", str(key)).lower()
    return "".join(c for c in text if c.isalnum())


def banned_category(key: str) -> str | None:
    """The reason a field may never leave, or None."""
    normal = normalise_key(key)
    for category, parts in BANNED_KEY_PARTS.items():
        if any(part in normal for part in parts):
            return category
    return None


def filter_fields(record: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """The record reduced to allowlisted, non-banned, non-empty fields, values unchanged (the
    relay never edits what the candidate or the ATS wrote)."""
    allow = {a for a in allowed if banned_category(a) is None}
    return {k: v for k, v in record.items()
            if k in allow and banned_category(k) is None and v not in (None, "", [], {})}


def sendable_fields(agency: Agency, consented: Iterable[str]) -> list[str]:
    """Fields the agency may receive: on its allowlist now, in the consent then, not banned."""
    consented = set(consented)
    return [f for f in agency.fields if f in consented and banned_category(f) is None]


def candidate_record(case: RelayCase, preferences: Mapping[str, str]) -> dict[str, Any]:
    """Everything the relay holds about the candidate that an agency could be given."""
    name = case.person.display_name if case.person else ""
    return {"name": name, "email": case.email or "", "job_title": case.job_title or "",
            **dict(preferences)}


# --- the Art. 30 manifest --------------------------------------------------------------------
MANIFEST_REQUIRED = ("provider.legal_name", "provider.address", "provider.representative",
                     "acquisition", "consent_reference")


def consent_reference(consent: ConsentRecord) -> str:
    return f"consent-{consent.id}-{consent.text_sha256[:16]}"


def _day(moment: datetime | None, config: Config) -> str:
    return moment.astimezone(config.company.tz).date().isoformat() if moment else ""


def manifest(config: Config, case: RelayCase, consent: ConsentRecord) -> dict[str, Any]:
    company = config.company
    legal = company.legal_name.strip()
    job = (case.job_title or "").strip()
    decided = _day(case.rejected_at, config)
    consented = _day(consent.consented_at, config)
    job_ja = f"「{job}」の求人" if job else "求人"
    job_en = f" for the position \"{job}\"" if job else ""
    acquisition = (f"本人が{legal}の{job_ja}に直接応募（{decided}選考終了）。{consented}、本人が"
                   "キャリアリレーの同意画面（ウェブフォームのPOST）で貴社への提供に同意。"
                   if legal and decided and consented else "")
    acquisition_en = (f"The candidate applied directly to {legal}{job_en} (decided on {decided}) "
                      f"and on {consented} consented, on the relay consent page (web form POST), "
                      "to this provision to you." if acquisition else "")
    return {
        "provider": {"legal_name": legal, "address": company.address.strip(),
                     "representative": company.representative.strip()},
        "acquisition": acquisition,
        "acquisition_en": acquisition_en,
        "applied_to": legal,
        "job_title": job,
        "decided_on": decided,
        "consented_on": consented,
        "consent_reference": consent_reference(consent),
    }


def missing_manifest(doc_manifest: Mapping[str, Any]) -> list[str]:
    missing = []
    for path in MANIFEST_REQUIRED:
        value: Any = doc_manifest
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, Mapping) else ""
        if not str(value).strip():
            missing.append(path)
    return missing


# --- documents -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    """A built document: `body` is the exact bytes sent and signed."""

    kind: str
    reference: str
    idempotency_key: str
    data: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.data, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode()

    @property
    def items(self) -> list[str]:
        return sorted(self.data.get("candidate", {}))

    def __repr__(self) -> str:  # the data holds personal information
        return f"Document({self.kind}, ref={self.reference}, items={self.items})"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def events_url(config: Config, agency_id: str) -> str:
    return f"{config.relay.public_base_url}/agency/{agency_id}/events"


def handoff_document(config: Config, *, agency: Agency, reference: str,
                     created_at: datetime, case: Mapping[str, Any],
                     consent: ConsentRecord, candidate: Mapping[str, Any]) -> Document:
    key = f"handoff-{reference}"
    data = {
        "schema": "career-relay/agency-handoff",
        "version": SCHEMA_VERSION,
        "type": HANDOFF_TYPE,
        "id": key,
        "reference": reference,
        "agency_id": agency.id,
        "created_at": _iso(created_at),
        "language": case.language or config.company.locale,
        "candidate": dict(candidate),
        "items": sorted(candidate),
        "manifest": manifest(config, case, consent),
        "report_events_to": events_url(config, agency.id),
    }
    return Document(HANDOFF_TYPE, reference, key, data)


def deletion_document(config: Config, *, agency: Agency, reference: str, created_at: datetime,
                      withdrawn_at: datetime | None, consent: ConsentRecord) -> Document:
    key = f"deletion-{reference}"
    company = config.company
    data = {
        "schema": "career-relay/agency-handoff",
        "version": SCHEMA_VERSION,
        "type": DELETION_TYPE,
        "id": key,
        "reference": reference,
        "agency_id": agency.id,
        "created_at": _iso(created_at),
        "withdrawn_at": _iso(withdrawn_at) if withdrawn_at else None,
        "reason": "consent_withdrawn",
        "request": ("本人が提供への同意を撤回しました。参照番号の候補者の個人データの利用を停止し、"
                    "削除してください。The candidate withdrew consent: stop using and delete "
                    "the personal data received under this reference."),
        "manifest": {"provider": {"legal_name": company.legal_name.strip(),
                                  "address": company.address.strip(),
                                  "representative": company.representative.strip()},
                     "consent_reference": consent_reference(consent)},
    }
    return Document(DELETION_TYPE, reference, key, data)
