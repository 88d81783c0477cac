"""Greenhouse Recruiting: Harvest API **v3** (OAuth 2.0 client credentials) and signed webhooks.

Docs: https://harvestdocs.greenhouse.io (Harvest v3) and https://developers.greenhouse.io/webhooks.html.
Harvest v1/v2 (API-key Basic auth) were retired on 2026-08-31; nothing here speaks them.
Facts and sources: ../shared/reference/greenhouse.md, cited below as [S#].

Credentials: in Greenhouse, Configure → Dev Center → API Credentials → Create new API credentials
→ "Harvest V3 (OAuth)"; copy the client id and secret (the secret is shown once); under Manage
Scopes grant harvest:applications:list, harvest:candidates:list, harvest:rejection_details:list,
harvest:rejection_reasons:list, harvest:jobs:list (and for write-back harvest:notes:list/create,
harvest:candidate_tags:list/create, harvest:applied_candidate_tags:list/create). `user_id` is the
numeric id of a **Site Admin** (from /account/users/<id>): it becomes the token's `sub`, v3 list
endpoints answer only to Site Admins, and notes are written in that user's name [S11][S21].
Webhooks: Dev Center → Web Hooks, "Candidate or Prospect rejected" and "…unrejected", endpoint
https://<public host>/webhooks/greenhouse/<source name>, secret key = `webhook_secret`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field
from requests import Response

from relay_core.contract import (
    ApplicationStatus,
    Mode,
    Page,
    SecretRef,
    WebhookResult,
    WebhookSettings,
    clean_text,
    header,
    iso_utc,
    parse_time,
    signature_matches,
    zone_name,
)
from relay_core.errors import FatalError, RecordError, SignatureError
from relay_core.models import Category, Flags, Person, RejectionEvent

from .http import HttpConnector, HttpSettings, LinkHeaderPaginator, RateLimit, WriteBackSettings

BATCH = 50            # v3 `ids` / `*_ids` filters take at most 50 values [S13]
PER_PAGE = 500        # v3 maximum page size [S13]

# Normalise here, decide in the core (STYLE.md rule 4). v3 reason types carry a stable `key`
# [S23]; webhook payloads are v1-shaped and carry only the type's display name [S9].
CATEGORY_BY_REASON_TYPE: dict[str, tuple[Category, bool]] = {   # key → (category, no_invitation)
    "WE_REJECTED_THEM": (Category.WE_REJECTED, False),
    "NONE_SPECIFIED": (Category.WE_REJECTED, False),
    "THEY_REJECTED_US": (Category.CANDIDATE_WITHDREW, False),
    "SECURITY_CONCERN": (Category.WE_REJECTED, True),   # courteous mail, no relay invitation
}
REASON_KEY_BY_WEBHOOK_TYPE_NAME = {
    "we rejected them": "WE_REJECTED_THEM", "none specified": "NONE_SPECIFIED",
    "they rejected us": "THEY_REJECTED_US", "security concern": "SECURITY_CONCERN",
}
CATEGORY_BY_STATUS = {"hired": Category.HIRED}   # "rejected" → by reason; anything else → other
EMAIL_ORDER = {"personal": 0, "other": 1, "work": 2}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


class GreenhouseSettings(HttpSettings, WebhookSettings, WriteBackSettings):
    mode: Mode = "both"
    client_id: SecretRef | str      # no secret; the shipped example keeps it in the environment
    client_secret: SecretRef
    user_id: int = Field(gt=0)
    base_url: str = "https://harvest.greenhouse.io"
    auth_url: str = "https://auth.greenhouse.io"
    webhook_secret: SecretRef | None = None
    overlap_minutes: int = Field(10, ge=0, le=1440)
    url_keys = ("base_url", "auth_url")
    host_only = True
    webhook_secret_help = "the secret key typed into Greenhouse's Web Hooks page"


class Greenhouse(HttpConnector):
    type = "greenhouse"
    Settings = GreenhouseSettings
    # The v3 guide's example is 75 requests per 30 s fixed window [S21][S37a] (secondary: no
    # vendor page confirming it was found with the docs search); X-RateLimit-* narrow it.
    rate_limit = RateLimit(requests=75, per_seconds=30)
    reauthenticate_on_401 = True      # the token expires (one hour [S18])
    credential_name = "OAuth token"
    refused_hint = ("a freshly fetched access token was refused too; check client_id and "
                    "client_secret under Dev Center → API Credentials")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Rejection reasons change rarely: listed once an hour, and for an id not seen yet.
        self._reasons = self.lookup(self._list_reasons, eager=True)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._tag_id: int | None = None

    # --- auth ---------------------------------------------------------------------------------
    def authenticate(self) -> dict[str, str]:
        """A token on behalf of `user_id` (`sub`). Its lifetime field is UNCONFIRMED:
        `expires_in` was measured [S37a], Airbyte reads `expires_at` [S24], the transition
        endpoint says `expires` [S37a]; the base reads all three, else one hour [S18]."""
        s = self.settings
        return self.client_credentials(
            f"{s.auth_url}/token", self.secret("client_id"), self.secret("client_secret"),
            sub=str(s.user_id),
            fix=f"check client_id, client_secret and that user_id {s.user_id} exists")

    def missing_permission(self, method: str, path: str) -> str:
        parts = path.strip("/").split("/")
        action = {"GET": "list", "POST": "create", "PATCH": "update", "DELETE": "delete"}.get(
            method, method.lower())
        scope = f"harvest:{parts[1] if len(parts) > 1 else '?'}:{action}"
        return (f"the OAuth client lacks the scope {scope}, or user_id {self.settings.user_id} "
                "is not a Site Admin (v3 list endpoints require one); add the scope under Dev "
                "Center → API Credentials → Manage Scopes")

    # --- polling ------------------------------------------------------------------------------
    def listing(self, since: datetime) -> Iterator[Response]:
        params = {"status": "rejected", "updated_at": f"gte|{iso_utc(since)}", "per_page": PER_PAGE}
        return self.paginate("/v3/applications", params, LinkHeaderPaginator())

    def page_from(self, response: Response, since: datetime) -> Page:
        apps = [a for a in self.json(response, list) if isinstance(a, dict)]
        if not apps:
            return Page(events=[], cursor=None)
        candidates, hidden = self._fetch_by_ids(
            "/v3/candidates", "ids", [str(a.get("candidate_id")) for a in apps])
        details, _ = self._fetch_by_ids("/v3/rejection_details", "application_ids",
                                        [str(a.get("id")) for a in apps], key="application_id")
        self._load_jobs([str(a["job_id"]) for a in apps if a.get("job_id")])

        def translate(app: dict[str, Any]) -> RejectionEvent:
            cid = str(app.get("candidate_id"))
            return self._event_from_v3(app, candidates.get(cid), cid in hidden,
                                       details.get(str(app.get("id"))))

        return Page.of(apps, translate)

    def _event_from_v3(self, app: Mapping[str, Any], candidate: Mapping[str, Any] | None,
                       hidden: bool, detail: Mapping[str, Any] | None) -> RejectionEvent:
        where = f"greenhouse application {app.get('id')}"
        detail = detail or {}
        if candidate is None and not hidden:
            raise RecordError(where, "its candidate was not returned (deleted or merged?)")
        reason_id = detail.get("rejection_reason_id") or app.get("rejection_reason_id")
        reason = self._reason(reason_id) if reason_id else {}
        job = self._jobs.get(str(app.get("job_id")), {})
        candidate = candidate or {}
        return self._event(
            app, where=where, candidate=candidate, reason_id=reason_id, reason=reason,
            rejected_at=detail.get("rejected_at") or app.get("rejected_at"),
            job_title=job.get("name", ""), stage=app.get("stage_name"),
            private=hidden or bool(candidate.get("private")) or bool(job.get("confidential")),
            # UNCONFIRMED [S23][S24]: v3 sets agency_note_id only on agency submissions.
            agency=bool(app.get("agency_note_id")),
            raw={"application": dict(app), "rejection_details": dict(detail)})

    def _event(self, app: Mapping[str, Any], *, where: str, candidate: Mapping[str, Any],
               reason_id: Any, reason: Mapping[str, Any], rejected_at: Any, job_title: Any,
               stage: Any, private: bool, agency: bool, raw: dict[str, Any]) -> RejectionEvent:
        category, no_invitation = categorize(app.get("status"), reason.get("key"))
        when = parse_time(rejected_at)
        if when is None:
            raise RecordError(where, "rejected_at is missing or not a timestamp")
        return RejectionEvent(
            ats=self.type, source=self.name, application_id=str(app["id"]),
            candidate_id=str(candidate.get("id") or app.get("candidate_id") or ""),
            person=person_from(candidate), job_title=clean_text(job_title), stage=clean_text(stage),
            reason_id=str(reason_id or ""), reason_text=clean_text(reason.get("name")),
            category=category, rejected_at=when,
            flags=Flags(prospect=bool(app.get("prospect")), private=private,
                        can_email=candidate.get("can_email") is not False,
                        agency_sourced=agency, no_invitation=no_invitation),
            raw=raw)

    def _fetch_by_ids(self, path: str, param: str, ids: list[str], key: str = "id"
                      ) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Records by id in batches of 50. A 403 splits the batch so that one private record
        becomes a skip (returned in the second set) instead of failing the other 49 [S1]."""
        ids = list(dict.fromkeys(i for i in ids if i and i != "None"))
        found: dict[str, dict[str, Any]] = {}
        hidden: set[str] = set()
        for start in range(0, len(ids), BATCH):
            self._fetch_batch(path, param, ids[start:start + BATCH], key, found, hidden)
        if hidden and not found:   # nothing readable at all: a missing scope, not privacy?
            self.request("GET", path, params={"per_page": 1})   # raises AuthError on 403
        return found, hidden

    def _fetch_batch(self, path: str, param: str, batch: list[str], key: str,
                     found: dict[str, dict[str, Any]], hidden: set[str]) -> None:
        params = {param: ",".join(batch), "per_page": PER_PAGE}
        for response in self.paginate(path, params, LinkHeaderPaginator(), accept=(403,)):
            if response.status_code == 403:
                if len(batch) == 1:
                    hidden.add(batch[0])
                    return
                half = len(batch) // 2
                self._fetch_batch(path, param, batch[:half], key, found, hidden)
                self._fetch_batch(path, param, batch[half:], key, found, hidden)
                return
            for record in self.json(response, list):
                if isinstance(record, dict):
                    found[str(record.get(key))] = record

    def _reason(self, reason_id: Any) -> dict[str, Any]:
        return self._reasons.get(str(reason_id), {})

    def _list_reasons(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("id")): {"name": r.get("name") or "",
                                   "key": (r.get("type") or {}).get("key")}
                for response in self.paginate("/v3/rejection_reasons", {
                    "include_defaults": "true", "per_page": PER_PAGE}, LinkHeaderPaginator())
                for r in self.json(response, list) if isinstance(r, dict)}

    def _load_jobs(self, job_ids: list[str]) -> None:
        missing = [j for j in dict.fromkeys(job_ids) if j not in self._jobs]
        if missing:
            jobs, _ = self._fetch_by_ids("/v3/jobs", "ids", missing)
            for job_id in missing:
                job = jobs.get(job_id, {})
                self._jobs[job_id] = {"name": job.get("name") or "",
                                      "confidential": bool(job.get("confidential"))}

    # --- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """`Signature: sha256 <hex HMAC-SHA256 of the raw body>` [S8]; never re-serialised."""
        key = self.webhook_key
        algorithm, _, received = (header(headers, "Signature") or "").strip().partition(" ")
        if algorithm.lower() != "sha256" or not received.strip():
            raise SignatureError(f"{self.name}: missing or malformed Signature header")
        if not signature_matches(key, raw_body, received):
            raise SignatureError(f"{self.name}: the Signature does not match the body; check "
                                 "webhook_secret against the secret key in Greenhouse")

    def translate_webhook(self, headers: Mapping[str, str],
                          body: dict[str, Any]) -> WebhookResult:
        action = str(body.get("action") or "unknown")
        event_id = header(headers, "Greenhouse-Event-ID")
        app = (body.get("payload") or {}).get("application") or {}
        if action == "ping":
            return WebhookResult(action, event_id, reply={"status": "ok"})
        if action == "unreject_candidate" and app.get("id") is not None:
            return WebhookResult(action, event_id, unrejected=[str(app["id"])])
        if action != "reject_candidate" or not isinstance(app, dict) or "id" not in app:
            return WebhookResult(action, event_id, reply={"status": "ignored"})
        return WebhookResult(action, event_id, events=[self._event_from_webhook(app)])

    def _event_from_webhook(self, app: Mapping[str, Any]) -> RejectionEvent:
        where = f"greenhouse application {app.get('id')} (webhook)"
        candidate = app.get("candidate") or {}
        reason = app.get("rejection_reason") or {}
        key = REASON_KEY_BY_WEBHOOK_TYPE_NAME.get(
            str((reason.get("type") or {}).get("name") or "").strip().lower())
        if key is None and reason.get("id") is not None:
            # Custom type names (the docs' own example says "Wrong skill set" [S9]): ask v3.
            key = self._reason(reason["id"]).get("key")
        jobs = [j for j in app.get("jobs") or [] if isinstance(j, dict)]
        job = jobs[0] if jobs else {}
        minimal = {k: v for k, v in app.items() if k not in ("candidate", "jobs")}
        return self._event(
            app, where=where, candidate=candidate,
            reason_id=reason.get("id"), reason={"name": reason.get("name"), "key": key},
            rejected_at=app.get("rejected_at"), job_title=job.get("name"),
            stage=(app.get("current_stage") or {}).get("name"),
            private=bool(candidate.get("is_private")) or bool(job.get("confidential")),
            agency=False, raw={"application": minimal, "job_id": job.get("id")})

    # --- re-check, write-back, check ------------------------------------------------------------
    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        found, hidden = self._fetch_by_ids("/v3/applications", "ids", application_ids)
        states = {}
        for app_id in application_ids:
            app = found.get(app_id)
            if app_id in hidden:
                states[app_id] = ApplicationStatus.UNKNOWN
            elif app is not None and app.get("status") == "rejected":
                states[app_id] = ApplicationStatus.REJECTED
            else:   # un-rejected, hired, or deleted/merged/anonymized: do not mail
                states[app_id] = ApplicationStatus.NOT_REJECTED
        return states

    def annotation_target(self, application_id: str) -> tuple[str, Any]:
        """(application id, candidate id). v3 has no idempotency keys [S37a]: the hooks
        below look before they write."""
        found, _ = self._fetch_by_ids("/v3/applications", "ids", [application_id])
        if application_id not in found:
            raise FatalError(f"{self.name}: application {application_id} is no longer readable")
        return application_id, found[application_id].get("candidate_id")

    def write_note(self, target: tuple[str, Any], text: str) -> None:
        application_id, candidate_id = target
        notes = [n for r in self.paginate("/v3/notes", {"application_ids": application_id,
                                                        "per_page": PER_PAGE},
                                          LinkHeaderPaginator())
                 for n in self.json(r, list)]
        if not any(isinstance(n, dict) and text in str(n.get("body") or "") for n in notes):
            self.request("POST", "/v3/notes", json={
                "candidate_id": candidate_id, "application_id": int(application_id),
                "user_id": self.settings.user_id, "body": text,
                "visibility": "admin_only", "note_type": "NOTE"})

    def write_tag(self, target: tuple[str, Any]) -> None:
        _, candidate_id = target
        tag_id = self._candidate_tag_id()
        applied = self.json(self.request("GET", "/v3/applied_candidate_tags", params={
            "candidate_ids": candidate_id, "candidate_tag_ids": tag_id}), list)
        if not applied:
            self.request("POST", "/v3/applied_candidate_tags",
                         json={"candidate_id": candidate_id, "candidate_tag_id": tag_id})

    def _candidate_tag_id(self) -> int:
        if self._tag_id is None:
            wanted = self.settings.tag_name.casefold()
            for response in self.paginate("/v3/candidate_tags", {"per_page": PER_PAGE},
                                          LinkHeaderPaginator()):
                for tag in self.json(response, list):
                    if str(tag.get("name", "")).casefold() == wanted:
                        self._tag_id = int(tag["id"])
            if self._tag_id is None:
                created = self.request("POST", "/v3/candidate_tags",
                                       json={"name": self.settings.tag_name})
                self._tag_id = int(self.json(created, dict)["id"])
        return self._tag_id

    def access_probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        resources = ["applications", "candidates", "rejection_details", "rejection_reasons",
                     "jobs"]
        if self.settings.write_back in ("note", "both"):
            resources.append("notes")
        if self.settings.write_back in ("tag", "both"):
            resources += ["candidate_tags", "applied_candidate_tags"]
        return [(f"harvest:{r}:list", f"/v3/{r}", {"per_page": 1}) for r in resources]

    def authenticated_note(self) -> str:
        return f"client credentials accepted, sub = user {self.settings.user_id}"


# --- translation helpers ----------------------------------------------------------------------
def categorize(status: Any, reason_key: Any) -> tuple[Category, bool]:
    """(category, no_invitation) from an application status and a reason type key."""
    if status != "rejected":
        return CATEGORY_BY_STATUS.get(str(status), Category.OTHER), False
    return CATEGORY_BY_REASON_TYPE.get(str(reason_key), (Category.OTHER, False))


def person_from(candidate: Mapping[str, Any]) -> Person:
    first = clean_text(candidate.get("preferred_name") or candidate.get("first_name"))
    last = clean_text(candidate.get("last_name"))
    eastern = bool(_CJK.search(first + last))
    full = " ".join(p for p in ((last, first) if eastern else (first, last)) if p)
    entries = [e for e in candidate.get("email_addresses") or [] if isinstance(e, dict)]
    entries.sort(key=lambda e: EMAIL_ORDER.get(str(e.get("type")), 3))
    emails = [v for v in (clean_text(e.get("value")) for e in entries) if v]
    return Person(first_name=first, last_name=last, full_name=full, emails=emails,
                  timezone=zone_name(candidate.get("time_zone")))
