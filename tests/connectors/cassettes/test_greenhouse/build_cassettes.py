"""Writes the hand-made Greenhouse Harvest v3 cassettes in this folder (see README.md).

Nothing here was recorded from a live account: every response is written by hand to follow
the documented v3 shapes (bare JSON arrays, `Link: <...?cursor=...>; rel="next"` only,
`X-RateLimit-Limit/-Remaining/-Reset`, `Retry-After` on 429). Credentials appear only as the
literal "<filtered>". Run `python build_cassettes.py` from this folder after editing the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import yaml

HERE = Path(__file__).parent
API = "https://harvest.greenhouse.io"
AUTH = "https://auth.greenhouse.io"
RESET = 1788220830          # X-RateLimit-Reset: epoch seconds of the 30 s window's end
HEADER = """\
# Hand-written cassette for tests/connectors/test_greenhouse.py (not recorded; see README.md).
# Shapes follow Greenhouse Harvest v3: bare arrays, Link rel="next" cursor URLs with the cursor
# as the only parameter, X-RateLimit-* on every response [S12][S13][S14][S16][S21][S23].
# Credentials are the literal "<filtered>".
"""


class Rate:
    """X-RateLimit-Remaining counts down like the server's 75-per-30-s window."""

    def __init__(self):
        self.remaining = 75

    def headers(self) -> dict[str, list[str]]:
        self.remaining = max(0, self.remaining - 1)
        return {"X-RateLimit-Limit": ["75"], "X-RateLimit-Remaining": [str(self.remaining)],
                "X-RateLimit-Reset": [str(RESET)]}


def token(expires_in: int = 3600) -> dict:
    return {"request": {"method": "POST", "uri": f"{AUTH}/token",
                        "body": "grant_type=client_credentials&sub=12345", "headers": {}},
            "response": {"status": {"code": 200, "message": "OK"},
                         "headers": {"Content-Type": ["application/json"]},
                         "body": {"string": json.dumps({"access_token": "<filtered>",
                                                        "token_type": "Bearer",
                                                        "expires_in": expires_in})}}}


def get(rate: Rate, path: str, params: dict | None, body, *, status: int = 200,
        next_cursor: str | None = None, extra: dict | None = None, method: str = "GET",
        request_body: dict | None = None) -> dict:
    uri = f"{API}{path}" + (f"?{urlencode(params)}" if params else "")
    headers = {"Content-Type": ["application/json"], **rate.headers()}
    if next_cursor:
        headers["Link"] = [f'<{API}{path}?cursor={next_cursor}>; rel="next"']
    headers.update(extra or {})
    message = {200: "OK", 201: "Created", 401: "Unauthorized", 403: "Forbidden",
               429: "Too Many Requests", 503: "Service Unavailable"}[status]
    return {"request": {"method": method, "uri": uri,
                        "body": json.dumps(request_body) if request_body else None,
                        "headers": {}},
            "response": {"status": {"code": status, "message": message}, "headers": headers,
                         "body": {"string": json.dumps(body, ensure_ascii=False)}}}


def write(name: str, interactions: list[dict]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                          sort_keys=False, width=100)
    (HERE / name).write_text(HEADER + text, encoding="utf-8")


# --- records ----------------------------------------------------------------------------------
def application(app_id: int, candidate_id: int, *, reason_id: int | None = 8,
                job_id: int | None = 501, prospect: bool = False, status: str = "rejected",
                stage: str = "1次面接") -> dict:
    return {"id": app_id, "created_at": "2026-08-20T01:00:00.000Z",
            "updated_at": "2026-09-01T02:00:00.000Z", "candidate_id": candidate_id,
            "job_id": job_id, "job_post_id": None, "prospect": prospect, "status": status,
            "rejected_at": "2026-09-01T01:30:00.000Z" if status == "rejected" else None,
            "rejection_reason_id": reason_id, "stage_id": 62828, "stage_name": stage,
            "last_activity_at": "2026-09-01T02:00:00.000Z", "recruiter_id": 92120,
            "coordinator_id": None, "source_id": 1871, "referrer_id": None,
            "location_address": None, "answers": [], "prospective_job_ids": [],
            "custom_fields": {}, "agency_note_id": None}


def candidate(cid: int, first: str, last: str, emails: list[tuple[str, str]], *,
              can_email: bool = True, private: bool = False) -> dict:
    return {"id": cid, "first_name": first, "last_name": last, "preferred_name": None,
            "company": None, "title": None, "last_activity_at": "2026-09-01T02:00:00.000Z",
            "private": private, "can_email": can_email, "time_zone": "Asia/Tokyo",
            "tags": [], "linked_user_ids": [], "phone_numbers": [], "addresses": [],
            "email_addresses": [{"value": v, "type": t} for v, t in emails],
            "website_addresses": [], "social_media_addresses": [], "custom_fields": {},
            "created_at": "2026-08-20T01:00:00.000Z", "updated_at": "2026-09-01T02:00:00.000Z"}


def detail(app_id: int, reason_id: int) -> dict:
    return {"id": 90000 + app_id, "application_id": app_id, "rejected_by_id": 92120,
            "rejection_note_id": None, "rejection_reason_id": reason_id,
            "rejected_at": "2026-09-01T01:30:00.000Z", "question_custom_fields": {}}


REASONS = [
    {"id": 8, "name": "Lacking skill(s)/qualification(s)",
     "type": {"id": 1, "key": "WE_REJECTED_THEM", "name": "We rejected them"}},
    {"id": 9, "name": "Took another offer",
     "type": {"id": 2, "key": "THEY_REJECTED_US", "name": "They rejected us"}},
    {"id": 10, "name": "No reason given",
     "type": {"id": 3, "key": "NONE_SPECIFIED", "name": "None Specified"}},
    {"id": 11, "name": "Background check",
     "type": {"id": 4, "key": "SECURITY_CONCERN", "name": "Security concern"}},
    {"id": 12, "name": "Something new",
     "type": {"id": 5, "key": "SOMETHING_NEW", "name": "Something new"}},
    {"id": 14, "name": "Too Junior", "type": {"id": 3, "key": "WE_REJECTED_THEM",
                                              "name": "Wrong skill set"}},
]
JOBS = [{"id": 501, "name": "法人営業 (Tokyo)", "confidential": False, "status": "open"},
        {"id": 502, "name": "Backend Engineer", "confidential": False, "status": "open"}]
SINCE = {"status": "rejected", "updated_at": "gte|2026-08-31T23:50:00Z", "per_page": 500}


def poll_two_pages() -> list[dict]:
    r = Rate()
    page1 = [application(1001, 2001), application(1002, 2002, reason_id=9, job_id=502),
             application(1003, 2003, reason_id=11), application(1004, 2004, reason_id=10),
             application(1005, 2005, job_id=None, prospect=True)]
    page2 = [application(1006, 2006), application(1007, 2007), application(1008, 2008,
                                                                          reason_id=12)]
    cands1 = [candidate(2001, "太郎", "山田", [("taro@work.example", "work"),
                                             ("taro@example.com", "personal")]),
              candidate(2002, "Hanako", "Suzuki", [("hanako@example.com", "personal")]),
              candidate(2003, "Ken", "Sato", [("ken@example.com", "other")]),
              candidate(2004, "Yui", "Ito", [("yui@example.com", "personal")], can_email=False),
              candidate(2005, "Prospect", "Person", [("p@example.com", "personal")])]
    cands2 = [candidate(2006, 'Bob "Bobby" <b>Ann</b>\r\nBcc: x@evil.example', "O'Brien",
                        [("bob@example.com", "personal")]),
              candidate(2007, "No", "Address", []),
              candidate(2008, "Mika", "Kato", [("mika@example.com", "personal")])]
    return [
        token(),
        get(r, "/v3/applications", SINCE, page1, next_cursor="eyJwYWdlIjoyfQ"),
        get(r, "/v3/candidates", {"ids": "2001,2002,2003,2004,2005", "per_page": 500}, cands1),
        get(r, "/v3/rejection_details", {"application_ids": "1001,1002,1003,1004,1005",
                                         "per_page": 500},
            [detail(1001, 8), detail(1002, 9), detail(1003, 11), detail(1004, 10),
             detail(1005, 8)]),
        get(r, "/v3/jobs", {"ids": "501,502", "per_page": 500}, JOBS),
        get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, REASONS),
        get(r, "/v3/applications", {"cursor": "eyJwYWdlIjoyfQ"}, page2),
        get(r, "/v3/candidates", {"ids": "2006,2007,2008", "per_page": 500}, cands2),
        get(r, "/v3/rejection_details", {"application_ids": "1006,1007,1008", "per_page": 500},
            [detail(1006, 8), detail(1007, 8), detail(1008, 12)]),
    ]


def poll_private_candidate() -> list[dict]:
    r = Rate()
    forbidden = {"message": "You don't have access to that record"}
    apps = [application(3001, 4001), application(3002, 4002)]
    return [
        token(),
        get(r, "/v3/applications", SINCE, apps),
        get(r, "/v3/candidates", {"ids": "4001,4002", "per_page": 500}, forbidden, status=403),
        get(r, "/v3/candidates", {"ids": "4001", "per_page": 500},
            [candidate(4001, "Aoi", "Mori", [("aoi@example.com", "personal")])]),
        get(r, "/v3/candidates", {"ids": "4002", "per_page": 500}, forbidden, status=403),
        get(r, "/v3/rejection_details", {"application_ids": "3001,3002", "per_page": 500},
            [detail(3001, 8), detail(3002, 8)]),
        get(r, "/v3/jobs", {"ids": "501", "per_page": 500}, JOBS[:1]),
        get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, REASONS),
    ]


def poll_429_then_success() -> list[dict]:
    r = Rate()
    r.remaining = 1
    return [token(),
            get(r, "/v3/applications", SINCE, {"message": "Rate limit exceeded"}, status=429,
                extra={"Retry-After": ["2"]}),
            get(r, "/v3/applications", SINCE, [])]


def poll_5xx_exhausted() -> list[dict]:
    r = Rate()
    return [token()] + [get(r, "/v3/applications", SINCE, {"message": "Server timeout in API"},
                            status=503) for _ in range(3)]


def token_expiry() -> list[dict]:
    r = Rate()
    return [token(), get(r, "/v3/applications", SINCE, []),     # first poll
            get(r, "/v3/applications", SINCE, []),                 # token cached
            token(), get(r, "/v3/applications", SINCE, []),        # after the hour
            get(r, "/v3/applications", SINCE, {"message": "Unauthorized"}, status=401),
            token(), get(r, "/v3/applications", SINCE, [])]


def recheck() -> list[dict]:
    r = Rate()
    return [token(), get(r, "/v3/applications", {"ids": "1001,1002,1003", "per_page": 500},
                         [application(1001, 2001),
                          application(1002, 2002, status="in_process", reason_id=None)])]


def write_back() -> list[dict]:
    r = Rate()
    text = "Career Relay: rejection email with relay invitation sent"
    note = {"candidate_id": 2001, "application_id": 1001, "user_id": 12345, "body": text,
            "visibility": "admin_only", "note_type": "NOTE"}
    created_note = {"id": 777, "created_at": "2026-09-02T01:00:00.000Z", "body": text,
                    "user_id": 12345, "candidate_id": 2001, "application_id": 1001,
                    "visibility": "admin_only_visible", "type": "NOTE"}
    app = [application(1001, 2001)]
    applied = {"id": 555, "candidate_id": 2001, "candidate_tag_id": 77}
    return [
        token(),
        get(r, "/v3/applications", {"ids": "1001", "per_page": 500}, app),
        get(r, "/v3/notes", {"application_ids": "1001", "per_page": 500}, []),
        get(r, "/v3/notes", None, created_note, status=201, method="POST", request_body=note),
        get(r, "/v3/candidate_tags", {"per_page": 500}, [{"id": 5, "name": "Imported"}]),
        get(r, "/v3/candidate_tags", None, {"id": 77, "name": "Career Relay invited"},
            status=201, method="POST", request_body={"name": "Career Relay invited"}),
        get(r, "/v3/applied_candidate_tags", {"candidate_ids": "2001", "candidate_tag_ids": "77"},
            []),
        get(r, "/v3/applied_candidate_tags", None, applied, status=201, method="POST",
            request_body={"candidate_id": 2001, "candidate_tag_id": 77}),
        # the same case again: everything is already there, nothing is written twice
        get(r, "/v3/applications", {"ids": "1001", "per_page": 500}, app),
        get(r, "/v3/notes", {"application_ids": "1001", "per_page": 500}, [created_note]),
        get(r, "/v3/applied_candidate_tags", {"candidate_ids": "2001", "candidate_tag_ids": "77"},
            [applied]),
    ]


def check_scopes() -> list[dict]:
    r = Rate()
    forbidden = {"message": "Forbidden"}
    one = {"per_page": 1}
    return [token(),
            get(r, "/v3/applications", one, [application(1001, 2001)]),
            get(r, "/v3/candidates", one, forbidden, status=403),
            get(r, "/v3/rejection_details", one, [detail(1001, 8)]),
            get(r, "/v3/rejection_reasons", one, REASONS[:1]),
            get(r, "/v3/jobs", one, JOBS[:1])]


def webhook_reason_lookup() -> list[dict]:
    r = Rate()
    return [token(),
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500},
                REASONS)]


if __name__ == "__main__":
    for build in (poll_two_pages, poll_private_candidate, poll_429_then_success,
                  poll_5xx_exhausted, token_expiry, recheck, write_back, check_scopes,
                  webhook_reason_lookup):
        write(f"{build.__name__}.yaml", build())
