"""Writes the hand-made Talentio API v1 cassettes in this folder (see README.md).

Nothing here was recorded from a live account. Responses follow the documented shapes: the
candidate list is a **bare JSON array** of at most 100, `page` ≥ 1, `X-Total` counts them, and
`X-Remaining` / `X-Reset` (seconds until the hourly quota resets) come with every response.
Run `python build_cassettes.py` from this folder after editing the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import yaml

HERE = Path(__file__).parent
API = "https://talentio.com/api/v1"
HEADER = """\
# Hand-written cassette for tests/connectors/test_talentio.py (not recorded; see README.md).
# Shapes follow https://developers.talentio.com (API 1.0.0 / 1.1.2) and the field tables of
# https://qiita.com/tbpgr/items/be7f2be7543db84b6a9a. No credential appears.
"""
# cursor 2026-09-01T00:00Z − 1 day overlap − 365 days, as a JST date
LISTING = [("status", "fail"), ("appliedAtFrom", "2025-08-31")]
MESSAGES = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class Quota:
    def __init__(self, left: int = 1000):
        self.left = left

    def headers(self, total: int | None) -> dict[str, list[str]]:
        self.left = max(0, self.left - 1)
        headers = {"Content-Type": ["application/json; charset=utf-8"],
                   "X-Remaining": [str(self.left)], "X-Reset": ["1153"]}
        if total is not None:
            headers["X-Total"] = [str(total)]
        return headers


def call(quota: Quota, path: str, query: list | None, body, status: int = 200,
         total: int | None = None) -> dict:
    uri = f"{API}{path}" + (f"?{urlencode(query)}" if query else "")
    return {"request": {"method": "GET", "uri": uri, "body": None, "headers": {}},
            "response": {"status": {"code": status, "message": MESSAGES[status]},
                         "headers": quota.headers(total),
                         "body": {"string": json.dumps(body, ensure_ascii=False)}}}


def write(name: str, interactions: list[dict]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                          sort_keys=False, width=100)
    (HERE / name).write_text(HEADER + text, encoding="utf-8")


def stage(n: int, type_: str, step: int, status: str, fixed: str | None,
          evaluations: list | None = None) -> dict:
    return {"id": 9000 + n * 10 + step, "type": type_, "step": step, "status": status,
            "fixedAt": fixed, "scheduledAt": None, "evaluations": evaluations or []}


def candidate(n: int, last: str, first: str, email: str | None, status: str, stages: list,
              *, channel: str = "site", fixed: str | None = "2026-09-01T00:00:00+09:00",
              requisition: str = "【12】法人営業") -> dict:
    record = {"id": 5225000 + n, "lastName": last, "firstName": first, "email": email,
              "description": "", "requisition": {"id": 42, "name": requisition,
                                                 "active": True},
              "registeredAt": "2026-08-01T16:37:47+09:00",
              "appliedAt": "2026-08-01T00:00:00+09:00", "fixedAt": fixed, "joinedAt": None,
              "stages": stages, "status": status, "channelType": channel, "priority": 0,
              "tags": [], "customFields": [],
              "url": f"https://talentio.com/r/ats/candidates/{5225000 + n}"}
    if channel == "agentCompany":
        record["agentCompany"] = {"id": 7, "name": "〇〇エージェント"}
    return record


FAIL_AT = "2026-09-01T00:00:00+09:00"        # stage fixedAt: a date at 00:00 JST [S30]
NOT_DECIDED = [{"id": 1, "finished": True, "employee": {"id": 3, "lastName": "面接",
                                                        "firstName": "官"},
                "evaluatedAt": "2026-08-31T18:00:00+09:00",
                "items": [{"name": "合否", "type": "bool", "input": False,
                           "comment": "【理由】経験不足"}]}]
PAGE1 = [candidate(1, "山田", "太郎", "taro.yamada@example.com", "fail",
                   [stage(1, "resume", 1, "pass", "2026-08-20T00:00:00+09:00"),
                    stage(1, "interview", 2, "fail", FAIL_AT)])]
PAGE1 += [candidate(2, "佐藤", "花子", "hanako@example.com", "fail",
                    [stage(2, "resume", 1, "fail", FAIL_AT)], channel="agentCompany"),
          candidate(3, "鈴木", "一郎", "ichiro@example.com", "fail",
                    [stage(3, "interview", 1, "fail", None, NOT_DECIDED)]),   # not finalized
          candidate(4, "古い", "不合格", "old@example.com", "fail",
                    [stage(4, "resume", 1, "fail", "2026-06-01T00:00:00+09:00")])]
PAGE1 += [candidate(10 + i, "候補", f"{i}", f"c{i}@example.com", "fail",
                    [stage(10 + i, "resume", 1, "fail", "2026-06-02T00:00:00+09:00")])
          for i in range(96)]                                   # a full page of 100
PAGE2 = [candidate(5, "メール", "なし", None, "fail", [stage(5, "resume", 1, "fail", FAIL_AT)]),
         candidate(6, "Bob\r\nBcc:", "x@evil.example", "bob@example.com", "fail",
                   [stage(6, "contact", 1, "fail", FAIL_AT)], channel="agent"),
         candidate(7, "日付", "なし", "nodate@example.com", "fail",
                   [stage(7, "resume", 1, "fail", None)], fixed=None)]


def main() -> None:
    q = Quota()
    write("poll_two_pages.yaml", [
        call(q, "/candidates", LISTING, PAGE1, total=103),
        call(q, "/candidates", [*LISTING, ("page", 2)], PAGE2, total=103)])
    q = Quota(left=1)
    write("poll_429_then_success.yaml", [
        call(q, "/candidates", LISTING, {"message": "Too Many Requests"}, status=429),
        call(q, "/candidates", LISTING, [], total=0)])
    q = Quota()
    write("poll_5xx_exhausted.yaml", [
        call(q, "/candidates", LISTING, {"message": "Internal Server Error"}, status=500)] * 3)
    q = Quota()
    withdrew = candidate(8, "辞退", "さん", "jitai@example.com", "reject",
                         [stage(8, "interview", 1, "pass", "2026-08-25T00:00:00+09:00")])
    write("recheck.yaml", [
        call(q, f"/candidates/{PAGE1[0]['id']}", None, PAGE1[0]),
        call(q, f"/candidates/{withdrew['id']}", None, withdrew),
        call(q, f"/candidates/{PAGE1[2]['id']}", None, PAGE1[2]),
        call(q, "/candidates/5225099", None, {"message": "Not Found"}, status=404)])
    q = Quota()
    write("check.yaml", [call(q, "/candidates", [("status", "fail"), ("page", 1)], PAGE1[:1],
                              total=1)])


if __name__ == "__main__":
    main()
