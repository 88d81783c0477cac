"""Greenhouse Recruiting: Harvest API **v3** (OAuth 2.0 client credentials) and signed webhooks.

Docs: https://harvestdocs.greenhouse.io (Harvest v3) and https://developers.greenhouse.io/webhooks.html.
Harvest v1/v2 (API-key Basic auth) were retired on 2026-08-31; nothing here speaks them.
Facts and sources: ../shared/reference/greenhouse.md, cited below as [S#].

Credentials: in Greenhouse, Configure → Dev Center → API Credentials → Create new API credentials
→ "Harvest V3 (OAuth)"; copy the client id and secret (the secret is shown once); under Manage
Scopes grant harvest:applications:list, harvest:candidates:list, harvest:rejection_details:list,
harvest:rejection_reasons:list, harvest:jobs:list, harvest:job_posts:list and harvest:users:list
(`check` confirms the Site Admin with it); for write-back also harvest:notes:list/create,
harvest:candidate_tags:list/create, harvest:applied_candidate_tags:list/create. `user_id` is the
numeric id of a **Site Admin** (from /account/users/<id>): it becomes the token's `sub`, v3 list
endpoints answer only to Site Admins (to anyone else they answer with empty lists), and notes
are written in that user's name [S11][S21].

Requests per poll of R rejections, at most ceil(R/500) listing pages + 2·ceil(R/50) + 3, all
pages listed before any look-up (a cursor may expire), applications already stored unchanged
not looked up again: per 50 applications the candidates (with `private=false`, so a private
one costs nothing extra), and the same people's other active applications (`status=active`,
for "still in process elsewhere") — or, when the listing lacks each rejection's reason id, the
rejection details instead (then "elsewhere" is asked only right before sending); plus the token,
the rejection reasons and the job posts of the jobs seen (public title and language, cached by
job). A job with no post at all, or `eligibility.confidential_jobs = "skip"`, adds /v3/jobs.
Webhooks: Dev Center → Web Hooks, "Candidate or Prospect rejected" and "…unrejected", endpoint
https://<public host>/webhooks/greenhouse/<source name>, secret key = `webhook_secret`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from requests import Response

from relay_core.contract import (
    ApplicationStatus,
    CheckResult,
    Mode,
    Page,
    SecretRef,
    Standing,
    WebhookResult,
    WebhookSettings,
    clean_text,
    header,
    iso_utc,
    parse_time,
    signature_matches,
    zone_name,
)
from relay_core.errors import AuthError, FatalError, RecordError, RelayError, SignatureError
from relay_core.models import Category, Flags, Person, RejectionEvent

from .http import HttpConnector, HttpSettings, LinkHeaderPaginator, RateLimit, WriteBackSettings

BATCH = 50            # v3 `ids` / `*_ids` filters take at most 50 values [S13]
PER_PAGE = 500        # v3 maximum page size [S13]
# What a Site Admin always sees: Greenhouse's default rejection reasons (include_defaults).
# An empty list therefore means the token's user sees nothing at all [S21].
NOT_SITE_ADMIN = ("user_id {user} sees no records at all: Harvest v3 list endpoints answer only "
                  "to a Site Admin and show everyone else empty lists. In Greenhouse, Configure → "
                  "Users → that user → set the permission level to Site Admin (or set user_id to "
                  "a Site Admin's id, the number in their /account/users/<id> URL)")

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
log = logging.getLogger("career_relay.greenhouse")


class GreenhouseSettings(HttpSettings, WebhookSettings, WriteBackSettings):
    mode: Mode = "both"
    client_id: SecretRef | str      # no secret; the shipped example keeps it in the environment
    client_secret: SecretRef
    user_id: int = Field(gt=0)
    base_url: str = "https://harvest.greenhouse.io"
    auth_url: str = "https://auth.greenhouse.io"
    webhook_secret: SecretRef | None = None
    # Re-read before the cursor for records stamped just before a poll but listed only after it
    # (a replica behind): minutes, not the cron interval, or every rejection is read twice.
    overlap_minutes: int = Field(2, ge=0, le=1440)
    # The key of the application custom field HR fills in as candidate-facing feedback
    # (a long_text field; application custom fields are an Enterprise feature [S1]).
    feedback_field: str | None = Field(None, min_length=1, max_length=200)
    url_keys = ("base_url", "auth_url")
    host_only = True
    webhook_secret_help = "the secret key typed into Greenhouse's Web Hooks page"


# The webhook body's shape, as far as translate_webhook reads it: every object it calls
# .get on must be an object (a signed string there is a 400, not a crash). Extra keys allowed.
Id = int | str | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Reason(_Open):
    id: Id = None
    type: _Open | None = None


class _Candidate(_Open):
    id: Id = None
    email_addresses: list[Any] | None = None


class _Job(_Open):
    id: Id = None
    job_post_id: Id = None


class _Application(_Open):
    id: Id = None
    candidate: _Candidate | None = None
    rejection_reason: _Reason | None = None
    jobs: list[_Job] | None = None
    current_stage: _Open | None = None
    custom_fields: dict[str, Any] | None = None


class _Payload(_Open):
    application: _Application | None = None


class GreenhouseWebhook(_Open):
    action: str | None = None
    payload: _Payload | None = None


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

    tells_other_applications = True
    webhook_model = GreenhouseWebhook

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Rejection reasons change rarely: listed once an hour, and for an id not seen yet.
        self._reasons = self.lookup(self._list_reasons, eager=True)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._posts: dict[str, list[dict[str, Any]]] = {}    # job id → its posts
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
    # The whole window is listed before any look-up (HttpConnector.poll): a v3 cursor may
    # expire [S24] (422, like any cursor it no longer accepts [S12]) while 10 pages of look-ups
    # run; an expired one lists the window again, once. Records the core holds unchanged (same
    # id and rejected_at) are not looked up again.
    list_first = True
    enrich_batch = PER_PAGE
    expired_cursor_statuses = (422,)

    def listing(self, since: datetime) -> Iterator[Response]:
        params = {"status": "rejected", "updated_at": f"gte|{iso_utc(since)}", "per_page": PER_PAGE}
        return self.paginate("/v3/applications", params, LinkHeaderPaginator(), expiring=True)

    def records_from(self, response: Response) -> list[Any]:
        return [a for a in self.json(response, list) if isinstance(a, dict)]

    def empty_window(self) -> None:
        self._require_visibility()   # nothing at all: new, or invisible to a non-Site Admin?

    def record_stamp(self, record: Any) -> tuple[str, datetime] | None:
        when = parse_time(record.get("rejected_at"))
        return (str(record["id"]), when) if record.get("id") is not None and when else None

    def page_of(self, apps: list[Any], since: datetime) -> Page:
        candidate_ids = [str(a.get("candidate_id")) for a in apps]
        candidates, hidden = self._candidates(candidate_ids)
        # The listing carries each rejection's reason id and time [S24]; where it does not
        # [S23], /v3/rejection_details supplies them, and the people's other applications are
        # then left to the re-check before sending: two requests per 50 either way.
        lacking = dict.fromkeys(str(a.get("id")) for a in apps
                                if not (a.get("rejection_reason_id") and a.get("rejected_at")))
        details: dict[str, dict[str, Any]] = {}
        if lacking:
            details, _ = self._fetch_by_ids("/v3/rejection_details", "application_ids",
                                            list(lacking), key="application_id")
        # A hidden (private) person is skipped anyway: not asked about.
        active = self._active_applications([
            str(a.get("candidate_id")) for a in apps if str(a.get("id")) not in lacking
            and str(a.get("candidate_id")) not in hidden])
        self._load_jobs(apps)

        def translate(app: dict[str, Any]) -> RejectionEvent:
            cid, app_id = str(app.get("candidate_id")), str(app.get("id"))
            elsewhere = None if app_id in lacking else bool(active.get(cid, set()) - {app_id})
            return self._event_from_v3(app, candidates.get(cid), cid in hidden,
                                       details.get(str(app.get("id"))), elsewhere)

        return Page.of(apps, translate)

    def _candidates(self, candidate_ids: list[str]) -> tuple[dict[str, Any], set[str]]:
        """(candidate id → record, ids hidden from us). Asked with `private=false`, the v3
        candidates filter [S23][S21], so that a private candidate is left out of the answer
        instead of refusing the batch (v1 answers 403 "You don't have access to that record"
        [S1]; what v3 does with one private id in an `ids=` batch is UNCONFIRMED): one request
        per 50 people, and no extra one per private candidate. Every id missing from the answer
        is hidden: private, or deleted or merged since the listing; either way not mailed
        (eligibility skips a private candidate). A server that refuses the batch all the same
        gets it split (`_fetch_batch`), which costs more and is logged."""
        ids = list(dict.fromkeys(c for c in candidate_ids if c and c != "None"))
        found, hidden = self._fetch_by_ids("/v3/candidates", "ids", ids,
                                           extra={"private": "false"})
        if ids and not found:
            self._require_visibility()    # none readable: a user who sees nothing at all?
        return found, hidden | (set(ids) - set(found))

    def _event_from_v3(self, app: Mapping[str, Any], candidate: Mapping[str, Any] | None,
                       hidden: bool, detail: Mapping[str, Any] | None,
                       elsewhere: bool | None = None) -> RejectionEvent:
        where = f"greenhouse application {app.get('id')}"
        detail = detail or {}
        if candidate is None and not hidden:
            raise RecordError(where, "its candidate was not returned (deleted or merged?)")
        reason_id = detail.get("rejection_reason_id") or app.get("rejection_reason_id")
        reason = self._reason(reason_id) if reason_id else {}
        job = self._jobs.get(str(app.get("job_id")), {})
        post = self._post_for(app.get("job_id"), app.get("job_post_id"))
        candidate = candidate or {}
        return self._event(
            app, where=where, candidate=candidate, reason_id=reason_id, reason=reason,
            rejected_at=detail.get("rejected_at") or app.get("rejected_at"),
            job_title=post.get("title") or job.get("name", ""), stage=app.get("stage_name"),
            private=hidden or bool(candidate.get("private")),
            confidential=bool(job.get("confidential")), language=post.get("language"),
            # UNCONFIRMED [S23][S24]: v3 sets agency_note_id only on agency submissions.
            agency=bool(app.get("agency_note_id")), elsewhere=elsewhere,
            raw={"application": dict(app), "rejection_details": dict(detail)})

    def _event(self, app: Mapping[str, Any], *, where: str, candidate: Mapping[str, Any],
               reason_id: Any, reason: Mapping[str, Any], rejected_at: Any, job_title: Any,
               stage: Any, private: bool, agency: bool, raw: dict[str, Any],
               confidential: bool = False, language: Any = None,
               elsewhere: bool | None = None) -> RejectionEvent:
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
                        agency_sourced=agency, no_invitation=no_invitation,
                        confidential_job=confidential, in_process_elsewhere=elsewhere),
            language=clean_text(language) or None, feedback=self._feedback(app),
            raw=raw)

    def _feedback(self, app: Mapping[str, Any]) -> str:
        """The designated application custom field's text, and nothing else of the record.
        v3 and webhooks both key custom fields as {key: {name, type, value}} [S9][S23]."""
        key = self.settings.feedback_field
        field = (app.get("custom_fields") or {}).get(key) if key else None
        value = field.get("value") if isinstance(field, dict) else field
        return value.strip() if isinstance(value, str) else ""

    def _active_applications(self, candidate_ids: list[str]) -> dict[str, set[str]]:
        """candidate id → ids of their applications still in process (`status=active`, which
        the API returns as `in_process` [S21][S23]), prospects left out: a prospect pool is not
        a position the person applied for. One request per 50 people [S13][S14]."""
        active: dict[str, set[str]] = {}
        ids = list(dict.fromkeys(c for c in candidate_ids if c and c != "None"))
        for start in range(0, len(ids), BATCH):
            params = {"candidate_ids": ",".join(ids[start:start + BATCH]), "status": "active",
                      "per_page": PER_PAGE}
            for response in self.paginate("/v3/applications", params, LinkHeaderPaginator()):
                for app in self.json(response, list):
                    if isinstance(app, dict) and not app.get("prospect"):
                        active.setdefault(str(app.get("candidate_id")), set()).add(
                            str(app.get("id")))
        return active

    def _require_visibility(self) -> None:
        """Raise AuthError when the token's user sees nothing, not even Greenhouse's default
        rejection reasons: a user who is no Site Admin would otherwise find 0 rejections on
        every run, silently [S21][S24]."""
        if not self._reasons.current():
            raise AuthError(f"{self.name}: " + NOT_SITE_ADMIN.format(user=self.settings.user_id))

    def _fetch_by_ids(self, path: str, param: str, ids: list[str], key: str = "id",
                      many: bool = False, extra: Mapping[str, str] | None = None
                      ) -> tuple[dict[str, Any], set[str]]:
        """Records by id in batches of 50 (`extra`: more filters). A 403 splits the batch so
        that one private record becomes a skip (returned in the second set) instead of failing
        the other 49 [S1]; candidates avoid it (`_candidates`). `many`: several records per id
        (a job's posts), collected in lists."""
        ids = list(dict.fromkeys(i for i in ids if i and i != "None"))
        found: dict[str, Any] = {}
        hidden: set[str] = set()
        for start in range(0, len(ids), BATCH):
            self._fetch_batch(path, param, ids[start:start + BATCH], key, found, hidden, many,
                              dict(extra or {}))
        if hidden and not found:   # nothing readable at all: a missing scope, not privacy?
            self.request("GET", path, params={"per_page": 1})   # raises AuthError on 403
        return found, hidden

    def _fetch_batch(self, path: str, param: str, batch: list[str], key: str,
                     found: dict[str, Any], hidden: set[str], many: bool = False,
                     extra: dict[str, str] | None = None) -> None:
        params = {param: ",".join(batch), **(extra or {}), "per_page": PER_PAGE}
        for response in self.paginate(path, params, LinkHeaderPaginator(), accept=(403,)):
            if response.status_code == 403:
                if len(batch) == 1:
                    hidden.add(batch[0])
                    return
                if len(batch) == BATCH:
                    log.warning("%s: %s refused a batch of %d ids (403); splitting it costs "
                                "more requests", self.name, path, len(batch))
                half = len(batch) // 2
                self._fetch_batch(path, param, batch[:half], key, found, hidden, many, extra)
                self._fetch_batch(path, param, batch[half:], key, found, hidden, many, extra)
                return
            for record in self.json(response, list):
                if isinstance(record, dict) and many:
                    found.setdefault(str(record.get(key)), []).append(record)
                elif isinstance(record, dict):
                    found[str(record.get(key))] = record

    def _reason(self, reason_id: Any) -> dict[str, Any]:
        return self._reasons.get(str(reason_id), {})

    def _list_reasons(self) -> dict[str, dict[str, Any]]:
        return {str(r.get("id")): {"name": r.get("name") or "",
                                   "key": (r.get("type") or {}).get("key")}
                for response in self.paginate("/v3/rejection_reasons", {
                    "include_defaults": "true", "per_page": PER_PAGE}, LinkHeaderPaginator())
                for r in self.json(response, list) if isinstance(r, dict)}

    def _load_jobs(self, apps: list[Mapping[str, Any]], names: bool = True) -> None:
        """The job posts of the jobs these applications are on (the public title and the
        post's language; a job's `name` is internal [S23]), once per job. /v3/jobs only for a
        job without any post, or for the confidential flag when `confidential_jobs` skips."""
        job_ids = [str(a["job_id"]) for a in apps if a.get("job_id")]
        missing = [j for j in dict.fromkeys(job_ids) if j not in self._posts]
        if missing:
            # `job_ids`: the parent-id filter of v3 list endpoints [S13]; posts carry job_id,
            # title, language, internal, live, active [S23]. Code-observed, not in a vendor page.
            posts, _ = self._fetch_by_ids("/v3/job_posts", "job_ids", missing,
                                          key="job_id", many=True)
            for job_id in missing:
                self._posts[job_id] = posts.get(job_id, [])
        skip = self.config.eligibility.confidential_jobs == "skip"
        if not names:   # a webhook carries the job's name and confidential flag [S9]
            return
        need = [j for j in dict.fromkeys(job_ids) if j not in self._jobs
                and (skip or not self._posts.get(j))]
        if need:
            jobs, _ = self._fetch_by_ids("/v3/jobs", "ids", need)
            for job_id in need:
                job = jobs.get(job_id, {})
                self._jobs[job_id] = {"name": job.get("name") or "",
                                      "confidential": bool(job.get("confidential"))}

    def _post_for(self, job_id: Any, post_id: Any) -> dict[str, Any]:
        """The post the candidate applied through, else the job's external post (a live one
        first): what the candidate saw. {} when the job has none."""
        posts = self._posts.get(str(job_id), [])
        for post in posts:
            if post_id is not None and str(post.get("id")) == str(post_id):
                return post
        external = [p for p in posts if not p.get("internal") and p.get("active", True)]
        external.sort(key=lambda p: (not p.get("live"), str(p.get("id"))))
        return external[0] if external else {}

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
        post: dict[str, Any] = {}
        if job.get("id") is not None:   # the public title and language; cached per job
            try:
                self._load_jobs([{"job_id": job["id"]}], names=False)
            except RelayError as exc:   # the delivery matters more than the nicer title
                log.warning("%s: job post of job %s not read (%s); using the job's name",
                            self.name, job["id"], type(exc).__name__)
            post = self._post_for(job["id"], job.get("job_post_id"))
        # Whether the person is in process elsewhere is asked right before sending (batched),
        # not here: a look-up per delivery would be a request per candidate.
        return self._event(
            app, where=where, candidate=candidate,
            reason_id=reason.get("id"), reason={"name": reason.get("name"), "key": key},
            rejected_at=app.get("rejected_at"), job_title=post.get("title") or job.get("name"),
            stage=(app.get("current_stage") or {}).get("name"),
            private=bool(candidate.get("is_private")),
            confidential=bool(job.get("confidential")), language=post.get("language"),
            agency=False, raw={"application": minimal, "job_id": job.get("id")})

    # --- re-check, write-back, check ------------------------------------------------------------
    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        """Two requests per 50 applications: the applications themselves, then their people's
        applications still in process (ACTIVE_ELSEWHERE: rejected here, in process there);
        each still rejected with its reason's category now (a withdrawal is cancelled by the
        core). Where the listing lacks the reason id, one more per 50: the rejection details."""
        found, hidden = self._fetch_by_ids("/v3/applications", "ids", application_ids)
        if application_ids and not found and not hidden:
            self._require_visibility()     # all gone, or a user who sees nothing at all?
        lacking = [a for a, app in found.items()
                   if app.get("status") == "rejected" and not app.get("rejection_reason_id")]
        details = self._fetch_by_ids("/v3/rejection_details", "application_ids", lacking,
                                     key="application_id")[0] if lacking else {}
        states = {}
        for app_id in application_ids:
            app = found.get(app_id)
            if app_id in hidden:
                states[app_id] = ApplicationStatus.UNKNOWN
            elif app is not None and app.get("status") == "rejected":
                states[app_id] = self._rejected_now(app, details.get(app_id))
            else:   # un-rejected, hired, or deleted/merged/anonymized: do not mail
                states[app_id] = ApplicationStatus.NOT_REJECTED
        rejected = {a: str(found[a].get("candidate_id")) for a, st in states.items()
                    if st.standing is Standing.REJECTED
                    and st.category in (None, Category.WE_REJECTED)}
        active = self._active_applications(list(rejected.values()))
        for app_id, candidate_id in rejected.items():
            if active.get(candidate_id, set()) - {app_id}:
                states[app_id] = states[app_id].elsewhere()
        return states

    def _rejected_now(self, app: Mapping[str, Any], detail: Mapping[str, Any] | None
                      ) -> ApplicationStatus:
        """Still `rejected`, with the category and name of the reason it carries now: a
        reason changed to "They rejected us" since detection is a withdrawal, though the
        status still reads rejected [S23]. A reason that cannot be read: REJECTED alone."""
        reason_id = (detail or {}).get("rejection_reason_id") or app.get("rejection_reason_id")
        reason = self._reason(reason_id) if reason_id else {}
        if not reason.get("key"):
            return ApplicationStatus.REJECTED
        category, _ = categorize("rejected", reason["key"])
        return ApplicationStatus(Standing.REJECTED, category, clean_text(reason.get("name")))

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
                     "jobs", "job_posts"]
        if self.settings.write_back in ("note", "both"):
            resources.append("notes")
        if self.settings.write_back in ("tag", "both"):
            resources += ["candidate_tags", "applied_candidate_tags"]
        probes = [(f"harvest:{r}:list", f"/v3/{r}", {"per_page": 1}) for r in resources]
        # What a Site Admin always sees, and whether rejections exist that it should see.
        probes[3] = ("harvest:rejection_reasons:list", "/v3/rejection_reasons",
                     {"include_defaults": "true", "per_page": 1})
        probes[0] = ("harvest:applications:list", "/v3/applications",
                     {"status": "rejected", "per_page": 1})
        return probes

    def authenticated_note(self) -> str:
        return f"client credentials accepted, sub = user {self.settings.user_id}"

    def access_result(self, what: str, path: str, response: Any) -> CheckResult:
        result = super().access_result(what, path, response)
        if result.ok:
            body = self.json(response)
            self._probe_rows[path] = len(body) if isinstance(body, list) else 0
        return result

    def check(self) -> list[CheckResult]:
        """The base's probes, then whether `user_id` is a Site Admin and sees what Greenhouse
        reports to exist: rejection details without a visible rejected application, or no
        default rejection reason at all, mean the user sees less than the API holds [S21]."""
        self._probe_rows: dict[str, int] = {}
        results = super().check()
        if not self._probe_rows:      # the credentials were refused: nothing more to ask
            return results
        label = f"{self.name} ({self.type}): Site Admin"
        user = self.settings.user_id
        rows = self._probe_rows
        if rows.get("/v3/rejection_reasons") == 0:
            return [*results, CheckResult(label, False, NOT_SITE_ADMIN.format(user=user))]
        if rows.get("/v3/rejection_details", 0) > 0 and rows.get("/v3/applications") == 0:
            return [*results, CheckResult(label, False, (
                f"Greenhouse reports rejections (rejection details), but user_id {user} sees "
                "no rejected application: it is not a Site Admin, or lacks access to private "
                "candidates. In Greenhouse, Configure → Users → that user → permission level "
                "Site Admin, with the user-specific permission to see private candidates"))]
        response = self.request("GET", "/v3/users", params={"ids": str(user), "per_page": 1},
                                accept=(403,))
        if response.status_code == 403:
            return [*results, CheckResult(label, False, (
                "cannot confirm: the OAuth client lacks the scope harvest:users:list; add it "
                "under Dev Center → API Credentials → Manage Scopes"))]
        users = [u for u in self.json(response, list) if isinstance(u, dict)]
        if not users or users[0].get("site_admin") is not True:
            return [*results, CheckResult(label, False, NOT_SITE_ADMIN.format(user=user))]
        return [*results, CheckResult(label, True, f"user {user} is a Site Admin")]


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
