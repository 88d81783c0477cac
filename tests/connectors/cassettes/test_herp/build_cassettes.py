"""Writes the hand-made HERP Hire API v1 cassettes in this folder (see README.md).

Nothing here was recorded from a live account. Responses follow the documented and
code-observed shapes: `{"candidacies": [...], "hasNextPage": bool}` pages of (fixed) 100,
`x-remaining-request` / `x-reset-at` on every response, 429 when the 100-per-minute tenant limit
is exceeded. Run `python build_cassettes.py` from this folder after editing the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import yaml

HERE = Path(__file__).parent
API = "https://public-api.herp.cloud/hire"
HEADER = """\
# Hand-written cassette for tests/connectors/test_herp.py (not recorded; see README.md).
# Shapes follow the HERP Hire API 1.5.0 document (https://public-api.herp.cloud/hire/public/doc)
# and the field list of https://help.herp.cloud/ja/articles/HERP-Hire-API-86ba917e. No credential.
"""
LISTING = [("status", "terminated"), ("terminationReason", "rejected"),
           ("stepUpdatedAtFrom", "2026-08-31")]
RESET = "2026-09-01T12:01:00+09:00"
MESSAGES = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class Quota:
    """x-remaining-request counts down like the tenant's 100-per-minute window."""

    def __init__(self):
        self.left = 100

    def headers(self) -> dict[str, list[str]]:
        self.left = max(0, self.left - 1)
        return {"Content-Type": ["application/json"], "x-remaining-request": [str(self.left)],
                "x-reset-at": [RESET]}


def call(quota: Quota, path: str, query: list | None, body, status: int = 200) -> dict:
    uri = f"{API}{path}" + (f"?{urlencode(query)}" if query else "")
    return {"request": {"method": "GET", "uri": uri, "body": None, "headers": {}},
            "response": {"status": {"code": status, "message": MESSAGES[status]},
                         "headers": quota.headers(),
                         "body": {"string": json.dumps(body, ensure_ascii=False)}}}


def write(name: str, interactions: list[dict]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                          sort_keys=False, width=100)
    (HERE / name).write_text(HEADER + text, encoding="utf-8")


REQ_SALES = "4ee22d29-8fde-401e-bf9e-779c8846b0f1"
REQ_ENG = "4ee22d29-8fde-401e-bf9e-779c8846b0f2"
AGENT = {"type": "agent", "agent": {"id": "A-00001", "company": "〇〇エージェント",
                                    "name": "鈴木"}}
MEDIA = {"type": "media", "mediaName": "ビズリーチ", "isScout": False}


def cid(n: int) -> str:
    return f"459ba99c-8f28-4744-bac1-3686940{n:05d}"


def candidacy(n: int, name: str, email: str | None, reason: str | None, *,
              channel: dict = MEDIA, status: str = "terminated", step: str = "firstInterview",
              terminated_at: str | None = "2026-09-01T10:30:00+09:00",
              requisition: str = REQ_SALES) -> dict:
    return {"id": cid(n), "name": name, "status": status, "requisitionId": requisition,
            "appliedAt": "2026-08-20T10:00:00+09:00", "step": step,
            "stepUpdatedAt": terminated_at, "channel": channel, "operators": ["U-51VV5"],
            "tags": [], "email": email, "telephoneNumber": "090-0000-0000", "age": 30,
            "company": "株式会社前職", "education": "", "career": "", "note": "",
            "terminationReason": reason, "terminatedAt": terminated_at,
            "updatedAt": terminated_at}


PAGE1 = [candidacy(1, "山田 太郎", "taro.yamada@example.com", "rejected"),
         candidacy(2, "佐藤 花子", "hanako@example.com", "rejected", channel=AGENT),
         candidacy(3, "鈴木 一郎", "ichiro@example.com", "refusedByCandidate"),
         candidacy(4, "高橋 次郎", "jiro@example.com", "hired", step="offerAccepted",
                   requisition=REQ_ENG)]
PAGE2 = [candidacy(5, "伊藤 三郎", "saburo@example.com", "notEligible", step="entry"),
         candidacy(6, "渡辺 四郎", "shiro@example.com", "somethingNew"),
         candidacy(7, "メール なし", None, "rejected", step="resumeScreening"),
         candidacy(8, "日付 なし", "nodate@example.com", "rejected", terminated_at=None),
         candidacy(9, "Bob\r\nBcc: x@evil.example", "bob@example.com", "rejected",
                   channel={"type": "careerPage"})]


def main() -> None:
    q = Quota()
    write("poll_two_pages.yaml", [
        call(q, "/v1/candidacies", LISTING, {"candidacies": PAGE1, "hasNextPage": True}),
        call(q, "/v1/requisitions", None, {"requisitions": [
            {"id": REQ_SALES, "name": "法人営業"},
            {"id": REQ_ENG, "name": "バックエンドエンジニア"}],
            "hasNextPage": False}),
        call(q, "/v1/candidacies", [*LISTING, ("page", 2)],
             {"candidacies": PAGE2, "hasNextPage": False})])
    q = Quota()
    q.left = 1
    write("poll_429_then_success.yaml", [
        call(q, "/v1/candidacies", LISTING, {"message": "Too Many Requests"}, status=429),
        call(q, "/v1/candidacies", LISTING, {"candidacies": [], "hasNextPage": False})])
    q = Quota()
    write("poll_5xx_exhausted.yaml", [
        call(q, "/v1/candidacies", LISTING, {"message": "Internal Server Error"}, status=500)
    ] * 3)
    detail = {k: v for k, v in candidacy(1, "山田 太郎", None, "rejected").items()
              if k not in ("email", "telephoneNumber", "age", "company", "education", "career")}
    detail["agentEmailAddress"] = None
    q = Quota()
    write("recheck.yaml", [
        call(q, f"/v1/candidacies/{cid(1)}", None, {"candidacy": detail}),
        call(q, f"/v1/candidacies/{cid(2)}", None, {"candidacy": {
            **detail, "id": cid(2), "status": "active", "terminationReason": None,
            "terminatedAt": None}}),
        call(q, f"/v1/candidacies/{cid(3)}", None, {"message": "Not Found"}, status=404)])
    q = Quota()
    write("check.yaml", [call(q, "/v1/candidacies", [("status", "terminated")],
                              {"candidacies": PAGE1[:1], "hasNextPage": True})])


if __name__ == "__main__":
    main()
