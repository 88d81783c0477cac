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
               422: "Unprocessable Entity", 429: "Too Many Requests",
               503: "Service Unavailable"}[status]
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
                stage: str = "1次面接", job_post_id: int | None = None,
                custom_fields: dict | None = None, listed_reason: bool = True) -> dict:
    """A v3 application [S14][S23]. `listed_reason=False` drops rejection_reason_id, as in
    the MeltanoLabs schema generated from harvestdocs [S23] (Airbyte's manifest has it [S24])."""
    app = {"id": app_id, "created_at": "2026-08-20T01:00:00.000Z",
           "updated_at": "2026-09-01T02:00:00.000Z", "candidate_id": candidate_id,
           "job_id": job_id, "job_post_id": job_post_id, "prospect": prospect, "status": status,
           "rejected_at": "2026-09-01T01:30:00.000Z" if status == "rejected" else None,
           "rejection_reason_id": reason_id, "stage_id": 62828, "stage_name": stage,
           "last_activity_at": "2026-09-01T02:00:00.000Z", "recruiter_id": 92120,
           "coordinator_id": None, "source_id": 1871, "referrer_id": None,
           "location_address": None, "answers": [], "prospective_job_ids": [],
           "custom_fields": custom_fields or {}, "agency_note_id": None}
    if not listed_reason:
        del app["rejection_reason_id"]
    return app


def post(post_id: int, job_id: int, title: str, language: str, *, internal: bool = False,
         live: bool = True) -> dict:
    """A v3 job post [S23]: the public `title` (a job's `name` is internal) and its `language`."""
    return {"id": post_id, "created_at": "2026-08-01T00:00:00.000Z",
            "updated_at": "2026-08-01T00:00:00.000Z", "title": title, "internal": internal,
            "active": True, "live": live, "featured": False,
            "first_published_at": "2026-08-01T00:00:00.000Z", "content": "<p>…</p>",
            "language": language, "public_url": None, "demographic_question_set_id": None,
            "job_id": job_id, "job_board_id": 77, "questions": []}


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
JOBS = [{"id": 501, "name": "法人営業_中途", "confidential": False, "status": "open"},
        {"id": 502, "name": "BE-2026-07", "confidential": False, "status": "open"},
        {"id": 503, "name": "DA_confidential", "confidential": True, "status": "open"}]
POSTS = [post(601, 501, "法人営業（東京）", "ja"),
         post(602, 501, "法人営業_社内公募", "ja", internal=True),
         post(611, 502, "Backend Engineer, Tokyo", "en")]
FEEDBACK = {"candidate_feedback": {"name": "Candidate feedback", "type": "long_text",
                                   "value": "面接では具体例を交えてお話しいただきました。\n"
                                            "今後のご活躍をお祈りしております。"},
            "interviewer_notes": {"name": "Interviewer notes", "type": "long_text",
                                  "value": "INTERNAL: do not share"}}
SINCE = {"status": "rejected", "updated_at": "gte|2026-08-31T23:58:00Z", "per_page": 500}


def poll_two_pages() -> list[dict]:
    r = Rate()
    # Page 1 lists each rejection's reason id [S24]: candidates + the same people's active
    # applications. Page 2 does not [S23]: candidates + rejection details instead.
    page1 = [application(1001, 2001, job_post_id=601, custom_fields=FEEDBACK),
             application(1002, 2002, reason_id=9, job_id=502),
             application(1003, 2003, reason_id=11), application(1004, 2004, reason_id=10),
             application(1005, 2005, job_id=None, prospect=True),
             application(1009, 2009, job_id=503)]
    page2 = [application(1006, 2006, listed_reason=False),
             application(1007, 2007, listed_reason=False),
             application(1008, 2008, reason_id=12, listed_reason=False)]
    # 2009 is still in process for job 502; 2001's other application is a prospect's.
    active = [application(1901, 2009, job_id=502, status="in_process", reason_id=None),
              application(1902, 2001, job_id=None, prospect=True, status="in_process",
                          reason_id=None)]
    cands1 = [candidate(2001, "太郎", "山田", [("taro@work.example", "work"),
                                             ("taro@example.com", "personal")]),
              candidate(2002, "Hanako", "Suzuki", [("hanako@example.com", "personal")]),
              candidate(2003, "Ken", "Sato", [("ken@example.com", "other")]),
              candidate(2004, "Yui", "Ito", [("yui@example.com", "personal")], can_email=False),
              candidate(2005, "Prospect", "Person", [("p@example.com", "personal")]),
              candidate(2009, "Daichi", "Mori", [("daichi@example.com", "personal")])]
    cands2 = [candidate(2006, 'Bob "Bobby" <b>Ann</b>\r\nBcc: x@evil.example', "O'Brien",
                        [("bob@example.com", "personal")]),
              candidate(2007, "No", "Address", []),
              candidate(2008, "Mika", "Kato", [("mika@example.com", "personal")])]
    # Both pages are listed before any look-up; the candidates come with `private=false`.
    return [
        token(),
        get(r, "/v3/applications", SINCE, page1, next_cursor="eyJwYWdlIjoyfQ"),
        get(r, "/v3/applications", {"cursor": "eyJwYWdlIjoyfQ"}, page2),
        get(r, "/v3/candidates", {"ids": "2001,2002,2003,2004,2005,2009,2006,2007,2008",
                                  "private": "false", "per_page": 500}, cands1 + cands2),
        get(r, "/v3/rejection_details", {"application_ids": "1006,1007,1008", "per_page": 500},
            [detail(1006, 8), detail(1007, 8), detail(1008, 12)]),
        get(r, "/v3/applications", {"candidate_ids": "2001,2002,2003,2004,2005,2009",
                                    "status": "active", "per_page": 500}, active),
        get(r, "/v3/job_posts", {"job_ids": "501,502,503", "per_page": 500}, POSTS),
        get(r, "/v3/jobs", {"ids": "503", "per_page": 500}, JOBS[2:]),     # no post at all
        get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, REASONS),
    ]


def poll_private_candidate() -> list[dict]:
    r = Rate()
    apps = [application(3001, 4001), application(3002, 4002)]
    return [
        token(),
        get(r, "/v3/applications", SINCE, apps),
        # `private=false` leaves the private candidate 4002 out of the answer [S23][S21]
        get(r, "/v3/candidates", {"ids": "4001,4002", "private": "false", "per_page": 500},
            [candidate(4001, "Aoi", "Mori", [("aoi@example.com", "personal")])]),
        get(r, "/v3/applications", {"candidate_ids": "4001", "status": "active",
                                    "per_page": 500}, []),
        get(r, "/v3/job_posts", {"job_ids": "501", "per_page": 500}, POSTS[:2]),
        get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, REASONS),
    ]


def poll_expired_cursor() -> list[dict]:
    """A next-page cursor refused with 422 (an expired cursor [S24]; the body's wording is not
    documented): the window is listed again from its first request, once, then looked up."""
    r = Rate()
    page1 = [application(5002, 6002)]
    page2 = [application(5001, 6001)]
    return [
        token(),
        get(r, "/v3/applications", SINCE, page1, next_cursor="c3RhbGU"),
        get(r, "/v3/applications", {"cursor": "c3RhbGU"},
            {"message": "Invalid cursor: the cursor has expired"}, status=422),
        get(r, "/v3/applications", SINCE, page1, next_cursor="ZnJlc2g"),
        get(r, "/v3/applications", {"cursor": "ZnJlc2g"}, page2),
        get(r, "/v3/candidates", {"ids": "6002,6001", "private": "false", "per_page": 500},
            [candidate(6002, "Aoi", "Mori", [("aoi@example.com", "personal")]),
             candidate(6001, "Ken", "Sato", [("ken@example.com", "personal")])]),
        get(r, "/v3/applications", {"candidate_ids": "6002,6001", "status": "active",
                                    "per_page": 500}, []),
        get(r, "/v3/job_posts", {"job_ids": "501", "per_page": 500}, POSTS[:2]),
        get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, REASONS),
    ]


def poll_429_then_success() -> list[dict]:
    r = Rate()
    r.remaining = 1
    return [token(),
            get(r, "/v3/applications", SINCE, {"message": "Rate limit exceeded"}, status=429,
                extra={"Retry-After": ["2"]}),
            get(r, "/v3/applications", SINCE, []),
            # an empty first page: does the user see anything at all (a Site Admin would)?
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500},
                REASONS)]


def poll_5xx_exhausted() -> list[dict]:
    r = Rate()
    return [token()] + [get(r, "/v3/applications", SINCE, {"message": "Server timeout in API"},
                            status=503) for _ in range(3)]


def token_expiry() -> list[dict]:
    r = Rate()
    reasons = {"include_defaults": "true", "per_page": 500}
    return [token(), get(r, "/v3/applications", SINCE, []),     # first poll
            get(r, "/v3/rejection_reasons", reasons, REASONS),     # visible? (hourly)
            get(r, "/v3/applications", SINCE, []),                 # token cached
            token(), get(r, "/v3/applications", SINCE, []),        # after the hour
            get(r, "/v3/rejection_reasons", reasons, REASONS),
            get(r, "/v3/applications", SINCE, {"message": "Unauthorized"}, status=401),
            token(), get(r, "/v3/applications", SINCE, [])]


def poll_not_site_admin() -> list[dict]:
    """A `sub` that is no Site Admin: v3 list endpoints answer it with empty lists [S21]."""
    r = Rate()
    return [token(), get(r, "/v3/applications", SINCE, []),
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, [])]


def recheck() -> list[dict]:
    """1005: rejected at detection for "Lacking skill(s)", its reason since changed to one of
    type THEY_REJECTED_US (the status still reads `rejected`) [S23]: a withdrawal now."""
    r = Rate()
    return [token(),
            get(r, "/v3/applications", {"ids": "1001,1002,1003,1004,1005", "per_page": 500},
                [application(1001, 2001),
                 application(1002, 2002, status="in_process", reason_id=None),
                 application(1004, 2004), application(1005, 2005, reason_id=9)]),
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500},
                REASONS),
            # the people still rejected: their applications still in process elsewhere
            get(r, "/v3/applications", {"candidate_ids": "2001,2004", "status": "active",
                                        "per_page": 500},
                [application(1904, 2004, job_id=502, status="in_process", reason_id=None)])]


def recheck_invisible() -> list[dict]:
    """Every due application missing, and no default rejection reason either: the user sees
    nothing, so nothing may be cancelled as "no longer rejected"."""
    r = Rate()
    return [token(), get(r, "/v3/applications", {"ids": "1001,1002", "per_page": 500}, []),
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500}, [])]


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


USER = {"id": 12345, "name": "Greenhouse Admin", "first_name": "Greenhouse",
        "last_name": "Admin", "primary_email": "admin@example.com", "deactivated": False,
        "site_admin": True, "emails": [], "linked_candidate_ids": [], "office_ids": [],
        "department_ids": [], "interviewer_tags": [], "custom_fields": {},
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}


def probes(r: Rate, *, applications: list, candidates, details: list, reasons: list,
           users) -> list[dict]:
    """The `check` probes in order: one row each, then the Site Admin look-up [S23 users]."""
    one = {"per_page": 1}
    cand_status = 403 if isinstance(candidates, dict) else 200
    user_status = 403 if isinstance(users, dict) else 200
    found = [get(r, "/v3/applications", {"status": "rejected", "per_page": 1}, applications),
             get(r, "/v3/candidates", one, candidates, status=cand_status),
             get(r, "/v3/rejection_details", one, details),
             get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 1},
                 reasons),
             get(r, "/v3/jobs", one, JOBS[:1]),
             get(r, "/v3/job_posts", one, POSTS[:1])]
    if users is not None:
        found.append(get(r, "/v3/users", {"ids": "12345", "per_page": 1}, users,
                         status=user_status))
    return found


def check_scopes() -> list[dict]:
    r = Rate()
    return [token(), *probes(r, applications=[application(1001, 2001)],
                             candidates={"message": "Forbidden"}, details=[detail(1001, 8)],
                             reasons=REASONS[:1], users=[USER])]


def check_not_site_admin() -> list[dict]:
    """Everything readable and empty, not even a default reason: no Site Admin [S21]."""
    r = Rate()
    return [token(), *probes(r, applications=[], candidates=[], details=[], reasons=[],
                             users=None)]


def check_invisible_applications() -> list[dict]:
    """Rejection details exist, yet no rejected application is visible to the user."""
    r = Rate()
    return [token(), *probes(r, applications=[], candidates=[], details=[detail(1001, 8)],
                             reasons=REASONS[:1], users=None)]


def check_users_scope_missing() -> list[dict]:
    r = Rate()
    return [token(), *probes(r, applications=[application(1001, 2001)], candidates=[],
                             details=[detail(1001, 8)], reasons=REASONS[:1],
                             users={"message": "Forbidden"})]


def check_user_not_admin() -> list[dict]:
    r = Rate()
    return [token(), *probes(r, applications=[application(1001, 2001)], candidates=[],
                             details=[detail(1001, 8)], reasons=REASONS[:1],
                             users=[dict(USER, site_admin=False)])]


def webhook_reason_lookup() -> list[dict]:
    r = Rate()
    return [token(),
            get(r, "/v3/rejection_reasons", {"include_defaults": "true", "per_page": 500},
                REASONS),
            # the job's posts: the public title and language (once per job) [S23]
            get(r, "/v3/job_posts", {"job_ids": "371417", "per_page": 500},
                [post(54321, 371417, "Product Designer", "en")])]


if __name__ == "__main__":
    for build in (poll_two_pages, poll_private_candidate, poll_expired_cursor,
                  poll_429_then_success,
                  poll_5xx_exhausted, token_expiry, poll_not_site_admin, recheck,
                  recheck_invisible, write_back, check_scopes, check_not_site_admin,
                  check_invisible_applications, check_users_scope_missing,
                  check_user_not_admin, webhook_reason_lookup):
        write(f"{build.__name__}.yaml", build())
