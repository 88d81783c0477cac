"""Talentio: the Talentio API **v1** (OpenAPI documents 1.0.0 and 1.1.2 seen).

Docs: https://developers.talentio.com and the help page
https://intercom.help/talentio/ja/articles/1957111 (「APIの利用」). Facts and sources:
../shared/reference/hrmos_japan.md section 3.2, cited below as [S#] from its source list.

Credentials: an administrator opens 各種設定 > 基本設定 > 「API設定」 and issues an access token;
it is shown once, so store it at once with `career-relay secrets set talentio` and write
`api_token = "keyring:career-relay/talentio"` [S28][S29]. The token sees only the issuer's
workspace [S29], so issue it from the workspace whose candidates should be mailed. The help page
marks the API as unavailable on the Basic and Free plans [S29]. Requests send
`Authorization: Bearer <token>`. No webhooks are documented [S28], so this connector polls.

**`reject` is 辞退 (the candidate withdrew), not a rejection**; `fail` is 不合格 [S29][S30].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from requests import Response

from relay_core.contract import ApplicationStatus, Page, SecretRef, clean_text, parse_time
from relay_core.errors import RecordError
from relay_core.models import Category, Flags, Person, RejectionEvent

from .http import HttpConnector, HttpSettings, PageNumberPaginator, RateLimit

JST = ZoneInfo("Asia/Tokyo")

# Normalise here, decide in the core (STYLE.md rule 4): candidate `status` [S29][S30][S31].
# Unknown → other, raw kept. An evaluator's 合否=False that nobody finalized leaves the status
# `ongoing`, so it is never a rejection [S32].
CATEGORY_BY_STATUS = {
    "fail": Category.WE_REJECTED,           # 不合格 — only when finalized (a fixedAt), see below
    "reject": Category.CANDIDATE_WITHDREW,  # 辞退: the candidate withdrew; never mailed
    "pass": Category.HIRED,                 # 採用 (内定承諾)
    "ongoing": Category.OTHER,              # 選考中 (an unaccepted offer is still ongoing)
    "poolActive": Category.OTHER,           # コンタクト中 (talent pool)
    "poolInactive": Category.OTHER,         # 非コンタクト中
}
AGENCY_CHANNELS = {"agent", "agentCompany"}   # エージェント (個別担当 / 会社) [S30]
STAGE_LABELS = {"contact": "コンタクト", "resume": "書類選考", "interview": "面接",
                "reference": "リファレンスチェック"}


class TalentioSettings(HttpSettings):
    api_token: SecretRef
    base_url: str = "https://talentio.com/api/v1"
    overlap_days: int = Field(1, ge=1, le=14)        # fixedAt is often a date at 00:00 JST
    applied_within_days: int = Field(365, ge=30, le=3650)   # bounds the scan (no updated-since)
    requests_per_hour: int = Field(1000, ge=60, le=5000)    # 1,000 (docs 1.0.0) or 5,000 (1.1.2)


class Talentio(HttpConnector):
    type = "talentio"
    Settings = TalentioSettings
    rate_limit = RateLimit(requests=1000, per_seconds=3600, limit_header=None,
                           remaining_header="X-Remaining", reset_header="X-Reset")
    token_key = "api_token"
    credential_name = "access token"
    quota_note = "{remaining} requests left this hour"
    refused_hint = "Talentio refused the access token; issue a new one under API設定"
    permission_hint = ("the token may not read candidates (403: アクセス権限がない); issue it as "
                       "an administrator of the workspace, on a plan that includes the API")
    zone = JST                    # fixedAt without an offset, and the old date-only cursors
    detail_path = "/candidates/{id}"

    def source_rate_limit(self) -> RateLimit:
        return replace(self.rate_limit, requests=self.settings.requests_per_hour)

    # --- polling ------------------------------------------------------------------------------
    def listing(self, since: datetime) -> Iterator[Response]:
        """`status=fail` candidates who applied within `applied_within_days` before `since`: the
        API has no updated-since filter [S28][S32], so `page_from` keeps those finalized since."""
        applied_from = (since - timedelta(days=self.settings.applied_within_days)).astimezone(JST)
        params = {"status": "fail", "appliedAtFrom": applied_from.date().isoformat()}
        # 100 per page, `page` ≥ 1, the array is the body, X-Total counts them [S28][S31].
        return self.paginate("/candidates", params, PageNumberPaginator(size_param=None))

    def page_from(self, response: Response, since: datetime) -> Page:
        def finalized_since(record: Any) -> RejectionEvent | None:
            event = self._event(record)
            return event if event.rejected_at >= since else None

        return Page.of(self.json(response, list), finalized_since)

    def _event(self, record: Any) -> RejectionEvent:
        if not isinstance(record, dict) or record.get("id") in (None, ""):
            raise RecordError("talentio candidate", "a record without an id")
        where = f"talentio candidate {record['id']}"
        stage = finalized_fail(record)
        category = categorize(record.get("status"), stage is not None)
        when = parse_time((stage or {}).get("fixedAt") or record.get("fixedAt"), JST)
        if when is None:
            raise RecordError(where, "neither the failed stage nor the candidate has a fixedAt")
        requisition = record.get("requisition") if isinstance(record.get("requisition"),
                                                              dict) else {}
        email = clean_text(record.get("email"))
        last, first = clean_text(record.get("lastName")), clean_text(record.get("firstName"))
        label = ""
        if stage is not None:
            label = STAGE_LABELS.get(str(stage.get("type")), clean_text(stage.get("type")))
            label += f" ({stage['step']})" if stage.get("step") else ""
        return RejectionEvent(
            ats=self.type, source=self.name, application_id=str(record["id"]),
            person=Person(first_name=first, last_name=last,
                          full_name=" ".join(p for p in (last, first) if p),
                          emails=[email] if email else []),
            job_title=clean_text(requisition.get("name")), stage=label,
            reason_id=str(record.get("status") or ""), category=category, rejected_at=when,
            flags=Flags(agency_sourced=record.get("channelType") in AGENCY_CHANNELS),
            raw={k: record.get(k) for k in ("id", "status", "fixedAt", "registeredAt",
                                            "appliedAt", "channelType", "url")}
            | {"requisition_id": requisition.get("id"),
               "stages": [{k: s.get(k) for k in ("id", "type", "step", "status", "fixedAt")}
                          for s in record.get("stages") or [] if isinstance(s, dict)]})

    # --- re-check and check ---------------------------------------------------------------------
    def status_from(self, record: dict[str, Any]) -> ApplicationStatus:
        return ApplicationStatus.of(categorize(record.get("status"),
                                               finalized_fail(record) is not None))

    def access_probes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("candidates", "/candidates", {"status": "fail", "page": 1})]


def finalized_fail(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stage finalized as 不合格 (`status=fail` with a `fixedAt`), the latest if several."""
    stages = [s for s in record.get("stages") or []
              if isinstance(s, dict) and s.get("status") == "fail" and s.get("fixedAt")]
    return max(stages, key=lambda s: str(s.get("fixedAt"))) if stages else None


def categorize(status: Any, finalized: bool) -> Category:
    category = CATEGORY_BY_STATUS.get(str(status), Category.OTHER)
    if category is Category.WE_REJECTED and not finalized:
        return Category.OTHER        # no stage finalized as fail: not a decided rejection
    return category
