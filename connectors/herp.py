"""HERP Hire: the HERP Hire API **v1** (OpenAPI document 1.5.0 at the time of writing).

Docs: https://public-api.herp.cloud/hire/public/doc and the help page
https://help.herp.cloud/ja/articles/HERP-Hire-API-86ba917e. Facts and sources:
../shared/reference/hrmos_japan.md section 3.1, cited below as [S#] from its source list.

Credentials: the API is for paid plans and is enabled on request (help page form; 1–2 business
days) [S21]. An administrator then opens the top-right menu → 「APIキー」 and issues a key; only
administrators can issue or see keys [S20]. Store it with `career-relay secrets set herp` and
write `api_key = "keyring:career-relay/herp"`. Requests send `Authorization: Bearer <key>`.
There are no documented webhooks [S20][S24], so this connector polls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from requests import Response

from relay_core.contract import ApplicationStatus, Page, SecretRef, clean_text, parse_time
from relay_core.errors import FatalError, RecordError
from relay_core.models import Category, Flags, Person, RejectionEvent

from .http import HttpConnector, HttpSettings, PageNumberPaginator, RateLimit

JST = ZoneInfo("Asia/Tokyo")   # `stepUpdatedAtFrom/To` are dates in JST [S25], so is the cursor

# Normalise here, decide in the core (STYLE.md rule 4). A finished candidacy is
# `status=terminated` with one of four 選考終了理由 [S22][S25]; anything else → other, raw kept.
CATEGORY_BY_TERMINATION_REASON = {
    "rejected": Category.WE_REJECTED,                  # 不採用
    "refusedByCandidate": Category.CANDIDATE_WITHDREW,  # 応募者辞退: never mailed
    "hired": Category.HIRED,                           # 入社決定
    "notEligible": Category.OTHER,                     # 非選考対象 (spam, duplicates, …)
}
STEP_LABELS = {"entry": "エントリー", "casualInterview": "カジュアル面談",
               "resumeScreening": "書類選考", "firstInterview": "一次面接",
               "secondInterview": "二次面接", "thirdInterview": "三次面接",
               "finalInterview": "最終面接", "offered": "内定", "offerAccepted": "内定承諾"}


class HerpSettings(HttpSettings):
    api_key: SecretRef
    base_url: str = "https://public-api.herp.cloud/hire"
    overlap_days: int = Field(1, ge=1, le=14)   # the filter is a date: re-read the last day(s)


class Herp(HttpConnector):
    type = "herp"
    Settings = HerpSettings
    # 100 requests per minute per tenant; x-remaining-request / x-reset-at (ISO time) [S20].
    rate_limit = RateLimit(requests=100, per_seconds=60, remaining_header="x-remaining-request",
                           reset_header="x-reset-at", limit_header=None)
    token_key = "api_key"
    credential_name = "API key"
    quota_note = "{remaining} of {limit} requests left this minute"
    refused_hint = "HERP refused the API key; check api_key (issued under 「APIキー」)"
    permission_hint = ("the API key may not read this resource; keys are issued by an "
                       "administrator and the API must be enabled for the account (paid plans, "
                       "on request)")
    zone = JST
    detail_path = "/v1/candidacies/{id}"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._requisitions = self.lookup(self._list_requisitions)

    # --- polling ------------------------------------------------------------------------------
    def listing(self, since: datetime) -> Iterator[Response]:
        # The reason filter keeps withdrawals out of the listing; the table above still decides,
        # so a server that ignored the filter (it is not in the vendor's prose) mails no one.
        params = {"status": "terminated", "terminationReason": "rejected",
                  "stepUpdatedAtFrom": since.astimezone(JST).date().isoformat()}
        return self.paginate("/v1/candidacies", params, _paginator("candidacies"))

    def page_from(self, response: Response, since: datetime) -> Page:
        records = self.json(response, dict).get("candidacies")
        return Page.of(records if isinstance(records, list) else [], self._event)

    def cursor_at(self, started: datetime) -> str:
        return started.astimezone(JST).date().isoformat()

    def _event(self, record: Any) -> RejectionEvent:
        if not isinstance(record, dict) or not record.get("id"):
            raise RecordError("herp candidacy", "a record without an id")
        where = f"herp candidacy {record['id']}"
        category = categorize(record.get("status"), record.get("terminationReason"))
        when = parse_time(record.get("terminatedAt") or record.get("stepUpdatedAt"), JST)
        if when is None:
            raise RecordError(where, "terminatedAt is missing or not a timestamp")
        channel = record.get("channel") if isinstance(record.get("channel"), dict) else {}
        email = clean_text(record.get("email"))
        return RejectionEvent(
            ats=self.type, source=self.name, application_id=str(record["id"]),
            person=Person(full_name=clean_text(record.get("name")),
                          emails=[email] if email else []),
            job_title=self._requisitions.get(str(record.get("requisitionId") or ""), ""),
            stage=STEP_LABELS.get(str(record.get("step")), clean_text(record.get("step"))),
            reason_id=str(record.get("terminationReason") or ""), category=category,
            rejected_at=when,
            # エージェント経由: the agency tells its candidate [S6][S13].
            flags=Flags(agency_sourced=channel.get("type") == "agent"),
            raw={k: record.get(k) for k in ("id", "status", "terminationReason", "terminatedAt",
                                            "step", "stepUpdatedAt", "requisitionId",
                                            "appliedAt", "updatedAt")}
            | {"channel_type": channel.get("type")})

    def _list_requisitions(self) -> dict[str, str]:
        """Job titles from `GET /v1/requisitions`. The listing's shape is not in the vendor's
        prose (UNCONFIRMED): an unreadable answer leaves the titles it did not give as they
        were (empty at first)."""
        titles = dict(self._requisitions.table)
        try:
            for response in self.paginate("/v1/requisitions", {}, _paginator("requisitions"),
                                          accept=(403, 404)):
                body = self.json(response) if response.status_code < 400 else {}
                rows = body.get("requisitions") if isinstance(body, dict) else body
                for row in rows if isinstance(rows, list) else []:
                    if isinstance(row, dict) and row.get("id"):
                        titles[str(row["id"])] = clean_text(row.get("name"))
        except FatalError:
            pass   # a job title is cosmetic; the rejection still counts
        return titles

    # --- re-check and check ---------------------------------------------------------------------
    def status_from(self, record: dict[str, Any]) -> ApplicationStatus:
        """The detail response carries fewer fields than the listing [S24]; when it lacks the
        status the answer is UNKNOWN (send as planned)."""
        record = record["candidacy"] if isinstance(record.get("candidacy"), dict) else record
        if "status" not in record:
            return ApplicationStatus.UNKNOWN
        return ApplicationStatus.of(categorize(record["status"], record.get("terminationReason")))

    def access_probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("candidacies", "/v1/candidacies", {"status": "terminated"})]


def _paginator(records_field: str) -> PageNumberPaginator:
    # `page`, 100 per page fixed (`limit` is ignored), `hasNextPage` in the body [S24][S25].
    return PageNumberPaginator(size_param=None, records_field=records_field,
                               has_more_field="hasNextPage")


def categorize(status: Any, termination_reason: Any) -> Category:
    if status != "terminated":
        return Category.OTHER        # still in process (`active`), or a status we do not know
    return CATEGORY_BY_TERMINATION_REASON.get(str(termination_reason), Category.OTHER)
