"""The document an agency receives, and the filter that decides which candidate fields it holds.

The document is versioned (`version`, `docs/agency-handoff.schema.json`) and the same for every
channel: the webhook POSTs it as JSON, the email channel writes it out as text. Each carries the
APPI Art. 30 manifest: who provides the data (legal name, address, representative), how the
provider obtained it, and the consent reference (reference/privacy_email.md sec. 1.4, sec. 6
item 8). The document is rebuilt, byte for byte the same, on every attempt of a handoff, so a
retry never carries a different body under the same Idempotency-Key.

How the data was obtained names the job applied for, the day the selection ended and the day of
the consent: personal data too. Each goes into the manifest only when the consent covers it
(`job_title`, `decision_date`, `consent_date`, which the consent page lists for every agency
that receives anything; records/agencies.py), and `Document.items` names every item the
document holds, candidate fields and provenance alike: that list is what the provision record
and the incident export record.

The field filter (sec. 6 item 9): only fields both on the agency's allowlist and in the consent
are sent, and a key that names a 職業安定法 指針 category (本籍, birthplace, family, assets,
appearance, beliefs, union membership …), 要配慮個人情報 (health, criminal record, race …),
interviewer notes or scores is dropped even when someone allowlisted it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay_core.config import Agency, Config
from relay_core.models import RelayCase
from relay_core.records.items import BANNED_KEY_PARTS as BANNED_KEY_PARTS
from relay_core.records.items import PROVENANCE_ITEMS, banned_category
from relay_core.records.items import normalise_key as normalise_key
from relay_core.store.consents import ConsentRecord

SCHEMA_VERSION = 1
HANDOFF_TYPE = "candidate.handoff"
DELETION_TYPE = "candidate.deletion_request"

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


def manifest(config: Config, case: RelayCase, consent: ConsentRecord,
             items: Iterable[str] = PROVENANCE_ITEMS) -> dict[str, Any]:
    """The Art. 30 manifest, holding of the provenance only what `items` (the consented items
    of this agency) covers: a consent given before the consent page listed the provenance
    yields a manifest that says only that the candidate applied and consented."""
    covered = set(items)
    company = config.company
    legal = company.legal_name.strip()
    job = (case.job_title or "").strip() if "job_title" in covered else ""
    decided = _day(case.rejected_at, config) if "decision_date" in covered else ""
    consented = _day(consent.consented_at, config) if "consent_date" in covered else ""
    job_ja = f"「{job}」の求人" if job else "求人"
    job_en = f" for the position \"{job}\"" if job else ""
    acquisition = acquisition_en = ""
    if legal:
        ended = f"（{decided}選考終了）" if decided else ""
        on = f"{consented}、" if consented else ""
        acquisition = (f"本人が{legal}の{job_ja}に直接応募{ended}。{on}本人がキャリアリレーの"
                       "同意画面（ウェブフォームのPOST）で貴社への提供に同意。")
        acquisition_en = (f"The candidate applied directly to {legal}{job_en}"
                          + (f" (decided on {decided})" if decided else "") + " and"
                          + (f" on {consented}" if consented else "")
                          + " consented, on the relay consent page (web form POST), to this "
                          "provision to you.")
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


# Which manifest key carries which provenance item.
PROVENANCE_KEYS = {"job_title": "job_title", "decision_date": "decided_on",
                   "consent_date": "consented_on"}


def provenance_items(doc_manifest: Mapping[str, Any]) -> list[str]:
    """The provenance items a manifest actually holds."""
    return [item for item, key in PROVENANCE_KEYS.items() if doc_manifest.get(key)]


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
        """Every item of personal data the document holds: candidate fields and provenance."""
        return document_items(self.data)

    def __repr__(self) -> str:  # the data holds personal information
        return f"Document({self.kind}, ref={self.reference}, items={self.items})"


def document_items(data: Mapping[str, Any]) -> list[str]:
    return sorted({*data.get("candidate", {}), *provenance_items(data.get("manifest", {}))})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def events_url(config: Config, agency_id: str) -> str:
    return f"{config.relay.public_base_url}/agency/{agency_id}/events"


def handoff_document(config: Config, *, agency: Agency, reference: str,
                     created_at: datetime, case: RelayCase,
                     consent: ConsentRecord, candidate: Mapping[str, Any],
                     items: Iterable[str]) -> Document:
    """`items`: what the consent to this agency covers; the manifest's provenance is cut to
    it (the candidate part is cut by the gate before it gets here)."""
    key = f"handoff-{reference}"
    doc_manifest = manifest(config, case, consent, items)
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
        "items": sorted({*candidate, *provenance_items(doc_manifest)}),
        "manifest": doc_manifest,
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
