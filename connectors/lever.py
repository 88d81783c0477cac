"""Lever: Data API **v1** (HTTP Basic with an API key) and the `candidateArchiveChange` webhook.

Docs: https://hire.lever.co/developer/documentation (sandbox twin:
https://hire.sandbox.lever.co/developer/documentation). Facts and sources:
../shared/reference/lever.md, cited below as [§n]; [DOC] is Lever's own reference.

Credentials: in Lever, Settings → Integrations and API → API Credentials → Generate New Key.
Grant read on Opportunities, Archive Reasons and Postings (plus Notes write / Opportunities write
for the optional write-back) and switch on "Allow access to confidential data": that access can
only be granted when the key is created, never added later [§1]. Store the key with
`career-relay secrets set lever`. Production host https://api.lever.co, sandbox
https://api.sandbox.lever.co; EU accounts use https://api.eu.lever.co (UNCONFIRMED in [DOC],
used by third-party integrations [§1]). Webhooks (Super Admin): Settings → Integrations and API
→ Webhooks → "Candidate Archive State Change" → https://<public host>/webhooks/lever/<source
name>; copy that event's signature token into `webhook_signature_token` [§9.1][§9.4].
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from requests import Response

from relay_core.contract import (
    ApplicationStatus,
    CheckResult,
    Page,
    SecretRef,
    Standing,
    WebhookResult,
    WebhookSettings,
    clean_text,
    signature_matches,
)
from relay_core.errors import RecordError, SignatureError
from relay_core.models import Category, Flags, Person, RejectionEvent

from .http import HttpConnector, HttpSettings, OffsetTokenPaginator, RateLimit, WriteBackSettings

LIMIT = 100            # Lever's maximum page size [§6]
CONTACT_BATCH = 50     # contact_id values per active-opportunity query (keeps the URL short)
EXPAND = ["applications", "contact", "stage"]

# Normalise here, decide in the core (STYLE.md rule 4). Lever archive reasons carry a `type`,
# `hired` or `non-hired` [§3.1]; "non-hired" also covers people who left on their own, so the
# reason *texts* below (case-insensitive; accounts rename reasons) or ids are withdrawals.
# `withdrawal_reasons` in the source block replaces this list. Unknown reason → other, raw kept.
CATEGORY_BY_REASON_TYPE = {"non-hired": Category.WE_REJECTED, "hired": Category.HIRED}
DEFAULT_WITHDRAWAL_REASONS = ["Withdrew", "Offer declined", "Candidate withdrew",
                              "Declined offer", "Accepted another offer", "辞退", "内定辞退"]


class LeverSettings(HttpSettings, WebhookSettings, WriteBackSettings):
    api_key: SecretRef
    base_url: str = "https://api.lever.co"
    webhook_signature_token: SecretRef | None = None
    webhook_tolerance_seconds: int = Field(3600, ge=60, le=86400)
    overlap_minutes: int = Field(2, ge=0, le=1440)   # minutes, not the cron interval
    withdrawal_reasons: list[str] = Field(default_factory=lambda: list(
        DEFAULT_WITHDRAWAL_REASONS))
    confidentiality: Literal["all", "non-confidential"] = "all"
    # No longer read: `eligibility.confidential_jobs` decides for every source (a confidential
    # opportunity hides the job from other employees, not the role from the candidate).
    mail_confidential: bool | None = None
    perform_as: str | None = None          # Lever user id the note is written as
    # Lever keeps free text about a candidate in profile forms, which the API returns one
    # opportunity at a time only (GET /opportunities/:id/forms [DOC "Profile Forms"]): a
    # request per candidate, so no feedback field can be offered here.
    feedback_field: str | None = None

    @field_validator("feedback_field")
    @classmethod
    def _no_feedback(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("Lever has no feedback field Career Relay can read: profile forms "
                             "are readable one opportunity at a time only, a request per "
                             "candidate; remove the key")
        return value
    host_only = True
    webhook_secret_key = "webhook_signature_token"   # mode (default): both if it is set
    webhook_secret_help = "the token shown beside the webhook in Lever"


# The webhook body's shape as translate_webhook reads it (extra keys allowed): `data` is an
# object and the opportunity id a string, so a signed odd body is a 400, not a crash.
class _LeverData(BaseModel):
    model_config = ConfigDict(extra="allow")
    opportunityId: str | None = None


class LeverWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")
    event: str | None = None
    id: str | None = None
    token: str
    data: _LeverData | None = None


class Lever(HttpConnector):
    type = "lever"
    Settings = LeverSettings
    tells_other_applications = True
    webhook_model = LeverWebhook
    # 10 req/s steady per key, bursts to 20, "not guaranteed" [§7]: we keep to the steady rate.
    rate_limit = RateLimit(requests=10, per_seconds=1)
    credential_name = "API key"
    refused_hint = "Lever refused the API key; check api_key (Settings → API Credentials)"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Account-wide, listed again at most hourly when an unknown id turns up.
        self._reasons = self.lookup(self._list_reasons)
        self._postings = self.lookup(self._list_postings)
        self._withdrawals = {w.strip().casefold() for w in self.settings.withdrawal_reasons}

    def authenticate(self) -> dict[str, str]:
        key = self.secret("api_key")            # the user name, the password blank [§1]
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    def missing_permission(self, method: str, path: str) -> str:
        resource = path.split("/v1/", 1)[-1].split("/", 1)[0]
        hint = f"the API key lacks the permission for /{resource}"
        if resource == "opportunities" and self.settings.confidentiality == "all":
            hint += (", or confidential access (granted only when a key is created: make a "
                     "new key, or set confidentiality = \"non-confidential\")")
        return hint

    # --- polling ------------------------------------------------------------------------------
    # The window is listed whole first (HttpConnector.poll): an offset token Lever no longer
    # accepts ("Invalid offset token", 400 [§6][§11.10]) lists it again, once. The listing,
    # expanded, carries everything an event needs; whether the person is still active on
    # another opportunity is asked once, right before sending (`recheck_cases`, one query per
    # 50 contacts, both states): asking at detection too would cost it twice.
    list_first = True
    expired_cursor_statuses = (400,)

    def listing(self, since: datetime) -> Iterator[Response]:
        params = {"archived": "true", "archived_at_start": _ms(since), "expand": EXPAND,
                  "confidentiality": self.settings.confidentiality, "limit": LIMIT}
        return self.paginate("/v1/opportunities", params, OffsetTokenPaginator(), expiring=True)

    def records_from(self, response: Response) -> list[Any]:
        return [o for o in self._data(response) if isinstance(o, dict)]

    def page_of(self, records: list[Any], since: datetime) -> Page:
        return Page.of(records, self._event)

    def _active_by_contact(self, contact_ids: list[str], *, every_state: bool = False
                           ) -> dict[str, set[str]]:
        """contact id → ids of their active (not archived) opportunities, one query per 50
        contacts (`contact_id` repeatable [DOC "List all opportunities"][§11.5]). `every_state`
        also returns each opportunity found, archived or not, in `self._seen` (the re-check)."""
        active: dict[str, set[str]] = {}
        ids = list(dict.fromkeys(c for c in contact_ids if c))
        for start in range(0, len(ids), CONTACT_BATCH):
            params: dict[str, Any] = {"contact_id": ids[start:start + CONTACT_BATCH],
                                      "confidentiality": self.settings.confidentiality,
                                      "limit": LIMIT}
            if every_state:
                params["expand"] = EXPAND
            else:
                params["archived"] = "false"
            for response in self.paginate("/v1/opportunities", params, OffsetTokenPaginator()):
                for opp in self._data(response):
                    if not isinstance(opp, dict):
                        continue
                    contact = opp.get("contact")
                    contact = contact.get("id") if isinstance(contact, dict) else contact
                    if every_state:
                        self._seen[str(opp.get("id"))] = opp
                    if not (opp.get("archived") or opp.get("archivedAt")):
                        active.setdefault(str(contact), set()).add(str(opp.get("id")))
        return active

    def _event(self, opp: Mapping[str, Any]) -> RejectionEvent | None:
        """None for a hire (not a rejection at all); otherwise the event, whatever its category."""
        where = f"lever opportunity {opp.get('id')}"
        archived = opp.get("archived") or {"reason": opp.get("archiveReason"),   # legacy keys
                                           "archivedAt": opp.get("archivedAt")}  # [§4.3]
        when = _from_ms(archived.get("archivedAt"))
        if not opp.get("id") or when is None:
            raise RecordError(where, "archived.archivedAt is missing; not an archived record")
        reason_id = str(archived.get("reason") or "")
        reason = self._reasons.get(reason_id, {})
        category = categorize(reason, self._withdrawals, reason_id)
        if category is Category.HIRED:
            return None
        contact = opp.get("contact")
        contact = contact if isinstance(contact, dict) else {"id": contact}
        listed = opp.get("emails") or contact.get("emails") or []
        emails = [e for e in (clean_text(x) for x in listed if isinstance(x, str)) if e]
        apps = [a for a in opp.get("applications") or [] if isinstance(a, dict)]
        posting = str(apps[0].get("posting") or "") if apps else ""
        stage = opp.get("stage")
        protection = (opp.get("dataProtection") or {}).get("contact") or {}
        return RejectionEvent(
            ats=self.type, source=self.name, application_id=str(opp["id"]),
            candidate_id=str(contact.get("id") or ""),
            person=Person(full_name=clean_text(opp.get("name") or contact.get("name")),
                          emails=list(dict.fromkeys(emails))),
            job_title=self._postings.get(posting, ""), reason_id=reason_id,
            stage=clean_text(stage.get("text") if isinstance(stage, dict) else ""),
            reason_text=clean_text(reason.get("text")), category=category, rejected_at=when,
            flags=Flags(anonymized=bool(opp.get("isAnonymized") or contact.get("isAnonymized")),
                        can_email=protection.get("allowed") is not False,
                        confidential_job=opp.get("confidentiality") == "confidential",
                        agency_sourced=opp.get("origin") == "agency"),
            # No name, emails, phones or links: raw is stored and must hold no personal data.
            raw={k: opp.get(k) for k in ("id", "archived", "origin", "confidentiality",
                                         "sources", "createdAt", "updatedAt", "isAnonymized",
                                         "dataProtection")}
            | {"contact": contact.get("id"), "posting": posting, "reason_type": reason.get("type")})

    def _list_reasons(self) -> dict[str, dict[str, str]]:
        # All types, inactive included: old archives still carry inactive reasons [§3.1].
        return {str(r.get("id")): {"text": str(r.get("text") or ""),
                                   "type": str(r.get("type") or "")}
                for r in self._listing("/v1/archive_reasons", {"limit": LIMIT})}

    def _list_postings(self) -> dict[str, str]:
        return {str(p.get("id")): clean_text(p.get("text")) for p in self._listing(
            "/v1/postings", {"limit": LIMIT, "confidentiality": self.settings.confidentiality})}

    def _listing(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for response in self.paginate(path, params, OffsetTokenPaginator())
                for r in self._data(response) if isinstance(r, dict)]

    def _data(self, response: Any) -> list[Any]:
        data = self.json(response, dict).get("data")
        # `/archive_reasons?type=…` is shown returning one object in [DOC]: accept both [§3.1].
        return data if isinstance(data, list) else [data] if isinstance(data, dict) else []

    def _opportunity(self, opp_id: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/v1/opportunities/{opp_id}",
                                params={"expand": EXPAND}, accept=(404,))
        if response.status_code == 404:
            return None
        data = self.json(response, dict).get("data")
        return data if isinstance(data, dict) else None

    # --- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """`signature == hex HMAC-SHA256(token, body.token + str(body.triggeredAt))` [§9.4].
        The signature travels in the body, so only its envelope is read here: a body that is
        not a JSON object is refused as malformed, and `data` waits until this passed."""
        key = self.webhook_key
        envelope = self.webhook_body(raw_body)
        token, at = envelope.get("token"), envelope.get("triggeredAt")
        signature = envelope.get("signature")
        if not (isinstance(token, str) and isinstance(signature, str)
                and isinstance(at, int) and not isinstance(at, bool)):
            raise SignatureError(f"{self.name}: token, triggeredAt or signature is missing")
        if not signature_matches(key, f"{token}{at}".encode(), signature):
            raise SignatureError(f"{self.name}: the signature does not match; check "
                                 "webhook_signature_token against the token shown in Lever")
        if abs(self.now().timestamp() * 1000 - at) > self.settings.webhook_tolerance_seconds * 1000:
            raise SignatureError(f"{self.name}: triggeredAt is outside the "
                                 f"{self.settings.webhook_tolerance_seconds} s tolerance")

    def translate_webhook(self, headers: Mapping[str, str],
                          body: dict[str, Any]) -> WebhookResult:
        kind = str(body.get("event") or "unknown")
        event_id = str(body.get("id") or body["token"])
        data = body.get("data")
        if not data:   # the settings page's test button sends `"data": {}` [§9.1]
            return WebhookResult(kind, event_id, reply={"status": "ok"})
        opp_id = data.get("opportunityId") if isinstance(data, dict) else None
        if kind != "candidateArchiveChange" or not opp_id:
            return WebhookResult(kind, event_id, reply={"status": "ignored"})
        # The signature covers token + triggeredAt only, never `data` [§11.15], and the payload
        # carries no email: whatever it claims, act on what the API says now.
        opp = self._opportunity(str(opp_id))
        event = self._event(opp) if opp and opp.get("archived") else None
        if event is not None and event.category in (Category.WE_REJECTED, Category.OTHER):
            return WebhookResult(kind, event_id, events=[event])   # the core decides
        # Unarchived, hired, now a withdrawal, or deleted: cancel a pending send.
        return WebhookResult(kind, event_id, events=[event] if event else [],
                             unrejected=[str(opp_id)])

    # --- re-check, write-back, check ------------------------------------------------------------
    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        return self.recheck_cases({opp_id: "" for opp_id in application_ids})

    def recheck_cases(self, cases: Mapping[str, str]) -> dict[str, ApplicationStatus]:
        """Every opportunity of the due cases' contacts, one query per 50 contacts (no
        `archived` filter: both states [DOC]): whether each due opportunity is still archived
        for a non-withdrawal, non-hired reason, and whether its person is still active on
        another one (ACTIVE_ELSEWHERE) [§11.5][§11.7]. One missing from the answer was deleted.
        A case without a known contact is read on its own (older cases only)."""
        self._seen: dict[str, dict[str, Any]] = {}
        states: dict[str, ApplicationStatus] = {}
        contacts = {opp_id: contact for opp_id, contact in cases.items() if contact}
        for opp_id in (o for o, c in cases.items() if not c):
            opp = self._opportunity(opp_id)
            contact = (opp or {}).get("contact")
            contact = contact.get("id") if isinstance(contact, dict) else contact
            if contact:
                contacts[opp_id] = str(contact)
            else:       # deleted, or unreadable without its contact: decided below
                self._seen[opp_id] = opp or {}
                contacts[opp_id] = ""
        active = self._active_by_contact(list(contacts.values()), every_state=True)
        for opp_id in cases:
            opp = self._seen.get(opp_id)
            try:
                event = self._event(opp) if opp and (opp.get("archived")
                                                     or opp.get("archivedAt")) else None
            except RecordError:
                states[opp_id] = ApplicationStatus.UNKNOWN
                continue
            # No event: unarchived, deleted, or hired (no rejection at all).
            state = (ApplicationStatus.of(event.category, event.reason_text) if event
                     else ApplicationStatus.NOT_REJECTED)
            if (event and state.standing is Standing.REJECTED
                    and active.get(event.candidate_id, set()) - {opp_id}):
                state = state.elsewhere()
            states[opp_id] = state
        return states

    # A note is written only if none with this text exists (a repeated POST would add a
    # second). Tags are safe: the poll filters on archived_at, not on updated_at, which a
    # tag bumps [§8.2].
    def write_note(self, target: str, text: str) -> None:
        path = f"/v1/opportunities/{target}/notes"
        notes = [n for r in self.paginate(path, {"limit": LIMIT}, OffsetTokenPaginator())
                 for n in self._data(r)]
        if not any(text in str(f.get("value") or "") for n in notes if isinstance(n, dict)
                   for f in n.get("fields") or [] if isinstance(f, dict)):
            self.request("POST", path, params=self._as_user(), json={"value": text})

    def write_tag(self, target: str) -> None:
        self.request("POST", f"/v1/opportunities/{target}/addTags", params=self._as_user(),
                     json={"tags": [self.settings.tag_name]})

    def _as_user(self) -> dict[str, str] | None:
        return {"perform_as": self.settings.perform_as} if self.settings.perform_as else None

    def access_probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("archive reasons", "/v1/archive_reasons", {"limit": 1}),
                ("opportunities", "/v1/opportunities",
                 {"limit": 1, "confidentiality": "non-confidential"}),
                ("confidential opportunities", "/v1/opportunities",
                 {"limit": 1, "confidentiality": "confidential"}),
                ("postings", "/v1/postings", {"limit": 1})]

    def access_result(self, what: str, path: str, response: Any) -> CheckResult:
        result = super().access_result(what, path, response)
        if what.endswith(": confidential opportunities") and not result.ok:
            result.ok = self.settings.confidentiality == "non-confidential"
            result.detail = (
                "the key cannot see confidential opportunities; they are never polled"
                if result.ok else "the key cannot see confidential opportunities, so polling "
                "with confidentiality = \"all\" fails: create a key with confidential access, "
                "or set confidentiality = \"non-confidential\"")
        return result


def categorize(reason: Mapping[str, str], withdrawals: set[str], reason_id: str = ""
               ) -> Category:
    """The category of an archive reason ({} when the id is unknown → other)."""
    category = CATEGORY_BY_REASON_TYPE.get(str(reason.get("type") or ""), Category.OTHER)
    if category is Category.WE_REJECTED and (
            str(reason.get("text") or "").strip().casefold() in withdrawals
            or reason_id.casefold() in withdrawals):
        return Category.CANDIDATE_WITHDREW
    return category


def _from_ms(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
