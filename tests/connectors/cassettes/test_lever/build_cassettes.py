"""Writes the hand-made Lever Data API v1 cassettes in this folder and in ../test_lever_webhooks
(see README.md in each).

Nothing here was recorded from a live account: every response is written by hand to follow the
documented v1 shapes — `{"data": [...], "next": "<offset token>", "hasNext": bool}` lists,
`{"data": {...}}` singletons, `archived: {reason, archivedAt}` with millisecond timestamps, `emails`
as a plain list of strings, `{"code", "message"}` errors and a 429 **without** `Retry-After` (none
is documented). Run `python build_cassettes.py` from this folder after editing the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import yaml

HERE = Path(__file__).parent
API = "https://api.lever.co"
HEADER = """\
# Hand-written cassette for tests/connectors/{module}.py (not recorded; see README.md).
# Shapes follow Lever Data API v1 [DOC https://hire.lever.co/developer/documentation]: data/next/
# hasNext lists, archived {{reason, archivedAt ms}}, emails as strings. No credential appears.
"""
EXPAND = [("expand", "applications"), ("expand", "contact"), ("expand", "stage")]
SINCE_MS = 1788220680000                 # 2026-08-31T23:58:00Z: the cursor minus 2 minutes
LISTING = [("archived", "true"), ("archived_at_start", SINCE_MS), *EXPAND,
           ("confidentiality", "all"), ("limit", 100)]
TOKEN = "0.1414895548650.a6070140-33db-407c-91f5-2760e15c8e94"   # the docs' example token
MESSAGES = {200: "OK", 201: "Created", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 503: "Service Unavailable"}


def call(path: str, query: list[tuple[str, object]] | None, body, *, status: int = 200,
         method: str = "GET", request_body: dict | None = None) -> dict:
    uri = f"{API}{path}" + (f"?{urlencode(query)}" if query else "")
    return {"request": {"method": method, "uri": uri,
                        "body": json.dumps(request_body) if request_body else None,
                        "headers": {}},
            "response": {"status": {"code": status, "message": MESSAGES[status]},
                         "headers": {"Content-Type": ["application/json; charset=utf-8"]},
                         "body": {"string": json.dumps(body, ensure_ascii=False)}}}


def write(folder: str, name: str, module: str, interactions: list[dict]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True,
                          sort_keys=False, width=100)
    (HERE.parent / folder / name).write_text(HEADER.format(module=module) + text,
                                             encoding="utf-8")


# --- records ----------------------------------------------------------------------------------
# The docs' own archive-reason example, verbatim [DOC "Archive Reasons"].
REASONS = [
    {"id": "63dd55b2-a99f-4e7b-985f-22c7bf80ab42", "text": "Underqualified", "status": "active",
     "type": "non-hired"},
    {"id": "41f98875-06c7-4cb1-b3d0-07f7ae192c0c", "text": "Culture Fit", "status": "active",
     "type": "non-hired"},
    {"id": "737b8899-7f32-42a5-954f-e199b0306fcb", "text": "Timing", "status": "active",
     "type": "non-hired"},
    {"id": "3274b963-c37c-4465-abeb-1113896e2aa3", "text": "Withdrew", "status": "active",
     "type": "non-hired"},
    {"id": "1fdbfaac-4c73-45f7-af32-369054426364", "text": "Offer declined", "status": "active",
     "type": "non-hired"},
    {"id": "16308515-dc77-4aa7-b3af-96161b2b4e9b", "text": "Hired", "status": "active",
     "type": "hired"},
    {"id": "9b6f482e-0399-4ba4-9a2f-1e1d9e3da15b", "text": "Position filled",
     "status": "inactive", "type": "non-hired"},
]
R = {r["text"]: r["id"] for r in REASONS}
UNKNOWN_REASON = "0798a6e3-aed0-4cee-9e99-4dc25db0d7b1"   # the Airbyte fixture's id [§4.3]
POSTINGS = [{"id": "2200dd68-0000-4000-8000-000000000001", "text": "法人営業 (Tokyo)",
             "state": "published", "confidentiality": "non-confidential",
             "categories": {"team": "Sales", "location": "Tokyo", "commitment": "Full-time"}},
            {"id": "2200dd68-0000-4000-8000-000000000002", "text": "Backend Engineer",
             "state": "closed", "confidentiality": "confidential",
             "categories": {"team": "Engineering", "location": "Remote"}}]
P1, P2 = POSTINGS[0]["id"], POSTINGS[1]["id"]
ARCHIVED_AT = 1788224400000              # 2026-09-01T01:00:00Z


def opportunity(n: int, name: str, emails: list[str], reason: str | None, *,
                posting: str = P1, origin: str = "applied", anonymized: bool = False,
                contact_allowed: bool | None = None, confidential: bool = False,
                archived: bool = True) -> dict:
    oid = f"250d8f03-738a-4bba-a671-8a3d7347{n:04d}"
    contact = f"7f23e772-f2cb-4ebb-b33f-54b87299{n:04d}"
    protection = None if contact_allowed is None else {
        "store": {"allowed": True, "expiresAt": None},
        "contact": {"allowed": contact_allowed, "expiresAt": None}}
    return {
        "id": oid, "name": name, "headline": "", "contact": {
            "id": contact, "name": name, "headline": "", "isAnonymized": anonymized,
            "location": {"name": "Tokyo"}, "emails": emails, "phones": []},
        "emails": emails, "phones": [{"type": "mobile", "value": "090-0000-0000"}],
        "confidentiality": "confidential" if confidential else "non-confidential",
        "location": "Tokyo", "links": [], "createdAt": 1787000000000,
        "updatedAt": ARCHIVED_AT, "lastInteractionAt": ARCHIVED_AT,
        "lastAdvancedAt": 1787500000000, "snoozedUntil": None,
        "archived": {"reason": reason, "archivedAt": ARCHIVED_AT} if archived else None,
        "stage": {"id": "applicant-new", "text": "New applicant"},
        "stageChanges": [{"toStageId": "applicant-new", "toStageIndex": 3,
                          "userId": "df0adaa6-172c-4cd6-8520-49b203660fe1",
                          "updatedAt": 1787500000000}],
        "owner": "df0adaa6-172c-4cd6-8520-49b203660fe1", "tags": [], "sources": ["Careers"],
        "origin": origin, "sourcedBy": None,
        "applications": [{"id": f"cdb4ff13-f7aa-49b0-b6ec-eb461700{n:04d}", "type": "posting",
                          "opportunityId": oid, "posting": posting,
                          "createdAt": 1787000000000,
                          "archived": {"reason": reason, "archivedAt": ARCHIVED_AT}
                          if archived else None}],
        "followers": [], "urls": {"list": "https://hire.lever.co/candidates",
                                  "show": f"https://hire.lever.co/candidates/{oid}"},
        "dataProtection": protection, "isAnonymized": anonymized,
        "opportunityLocation": "Tokyo"}


def oid(n: int) -> str:
    return f"250d8f03-738a-4bba-a671-8a3d7347{n:04d}"


def cid(n: int) -> str:
    return f"7f23e772-f2cb-4ebb-b33f-54b87299{n:04d}"


PAGE1 = [opportunity(1, "山田 太郎", ["taro@example.com", "taro@work.example"],
                     R["Underqualified"]),
         opportunity(2, "Hanako Suzuki", ["hanako@example.com"], R["Withdrew"]),
         opportunity(3, "Ken Sato", ["ken@example.com"], R["Offer declined"], posting=P2),
         opportunity(4, "Hired Person", ["hired@example.com"], R["Hired"]),
         opportunity(5, "", [], R["Culture Fit"], anonymized=True),
         opportunity(6, "Yui Ito", ["yui@example.com"], R["Timing"], contact_allowed=False)]
PAGE2 = [opportunity(7, "Agent Intro", ["agent.intro@example.com"], R["Underqualified"],
                     origin="agency"),
         opportunity(8, "Mika Kato", ["mika@example.com"], UNKNOWN_REASON),
         opportunity(9, "Old Reason", ["old@example.com"], R["Position filled"]),
         opportunity(10, "Secret Role", ["secret@example.com"], R["Underqualified"],
                     posting=P2, confidential=True),
         opportunity(11, 'Bob "Bobby"\r\nBcc: x@evil.example', ["bob@example.com"],
                     R["Underqualified"]),
         opportunity(12, "No Address", [], R["Underqualified"])]


def reasons() -> dict:
    return call("/v1/archive_reasons", [("limit", 100)], {"data": REASONS, "hasNext": False})


def postings() -> dict:
    return call("/v1/postings", [("limit", 100), ("confidentiality", "all")],
                {"data": POSTINGS, "hasNext": False})


def single(n: int, record: dict | None) -> dict:
    if record is None:
        return call(f"/v1/opportunities/{oid(n)}", EXPAND, {
            "code": "ResourceNotFound", "message": f"opportunities {oid(n)} was not found"},
            status=404)
    return call(f"/v1/opportunities/{oid(n)}", EXPAND, {"data": record})


def every_state(contacts: list[int], found: list[dict]) -> dict:
    """All opportunities of these people, archived or not (no `archived` filter) [DOC]."""
    query = [("contact_id", cid(n)) for n in contacts] + [
        ("confidentiality", "all"), ("limit", 100), *EXPAND]
    return call("/v1/opportunities", query, {"data": found, "hasNext": False})


def with_contact(record: dict, n: int) -> dict:
    return record | {"contact": cid(n)}


def main() -> None:
    mod = "test_lever"
    # The window is listed whole, then translated; "still active elsewhere" waits for the
    # re-check before sending (recheck.yaml), where one query per 50 people answers both.
    write("test_lever", "poll_two_pages.yaml", mod, [
        call("/v1/opportunities", LISTING, {"data": PAGE1, "next": TOKEN, "hasNext": True}),
        call("/v1/opportunities", [*LISTING, ("offset", TOKEN)],
             {"data": PAGE2, "hasNext": False}),
        reasons(), postings()])
    write("test_lever", "poll_429_then_success.yaml", mod, [
        call("/v1/opportunities", LISTING, {"code": "TooManyRequests",
                                            "message": "Too many requests"}, status=429),
        call("/v1/opportunities", LISTING, {"data": [], "hasNext": False})])
    write("test_lever", "poll_5xx_exhausted.yaml", mod, [
        call("/v1/opportunities", LISTING, {"code": "ServiceUnavailable",
                                            "message": "Lever is down for maintenance"},
             status=503)] * 3)
    other = with_contact(opportunity(20, "Yui Ito", ["yui@example.com"], None, archived=False), 6)
    unarchived = opportunity(2, "Hanako Suzuki", ["hanako@example.com"], None, archived=False)
    yui = opportunity(6, "Yui Ito", ["yui@example.com"], R["Timing"])
    # One query for every due case's person: 1 still rejected, 2 unarchived since, 3 deleted
    # (absent), 6 rejected but active on another opportunity.
    write("test_lever", "recheck.yaml", mod, [
        every_state([1, 2, 3, 6], [PAGE1[0], unarchived, yui, other]),
        reasons(), postings()])
    # Cases stored before contacts were kept: each opportunity read once to learn its contact.
    write("test_lever", "recheck_without_contacts.yaml", mod, [
        single(1, PAGE1[0]), single(2, unarchived), single(3, None), single(6, yui),
        every_state([1, 2, 6], [PAGE1[0], unarchived, yui, other]),
        reasons(), postings()])
    note = {"value": "Career Relay: rejection email with relay invitation sent"}
    base = f"/v1/opportunities/{oid(1)}"
    written = {"id": "915a6cef-4f91-4f3d-b8ff-a49e1eae2c30", "text": "Note",
               "fields": [{"type": "note", "text": "Note", "value": note["value"]}],
               "user": "df0adaa6-172c-4cd6-8520-49b203660fe1", "secret": False,
               "completedAt": None, "createdAt": 1788228000000, "deletedAt": None}
    write("test_lever", "write_back.yaml", mod, [
        call(f"{base}/notes", [("limit", 100)], {"data": [], "hasNext": False}),
        call(f"{base}/notes", None, {"data": {"noteId": written["id"]}}, status=201,
             method="POST", request_body=note),
        call(f"{base}/addTags", None, {"data": PAGE1[0] | {"tags": ["Career Relay invited"]}},
             method="POST", request_body={"tags": ["Career Relay invited"]}),
        call(f"{base}/notes", [("limit", 100)], {"data": [written], "hasNext": False}),
        call(f"{base}/addTags", None, {"data": PAGE1[0] | {"tags": ["Career Relay invited"]}},
             method="POST", request_body={"tags": ["Career Relay invited"]})])
    denied = {"code": "Forbidden", "message": "You do not have access to confidential data"}
    write("test_lever", "check.yaml", mod, [
        call("/v1/archive_reasons", [("limit", 1)], {"data": REASONS[:1], "next": "x",
                                                     "hasNext": True}),
        call("/v1/opportunities", [("limit", 1), ("confidentiality", "non-confidential")],
             {"data": [PAGE1[0]], "hasNext": False}),
        call("/v1/opportunities", [("limit", 1), ("confidentiality", "confidential")], denied,
             status=403),
        call("/v1/postings", [("limit", 1)], {"data": POSTINGS[:1], "hasNext": False})])

    mod = "test_lever_webhooks"
    write("test_lever_webhooks", "archive_then_unarchive.yaml", mod, [
        single(1, PAGE1[0]), reasons(), postings(),
        single(1, PAGE1[0]),        # a redelivery is parsed (and fetched) before de-duplication
        single(1, opportunity(1, "山田 太郎", ["taro@example.com", "taro@work.example"], None,
                              archived=False))])     # the recruiter unarchived the candidate
    unarchived = opportunity(1, "山田 太郎", ["taro@example.com", "taro@work.example"], None,
                             archived=False)
    write("test_lever_webhooks", "archive_unarchive_archive_again.yaml", mod, [
        single(1, PAGE1[0]), reasons(), postings(),
        single(1, unarchived),
        single(1, rearchived(PAGE1[0], ARCHIVED_AT + 5_400_000))])   # archived again, 90 min on


def rearchived(opp: dict, at: int) -> dict:
    """The same opportunity archived again later, after an unarchive: a new `archivedAt` on
    the opportunity and its application [DOC "Opportunities": archived {reason, archivedAt}]."""
    archived = {"reason": opp["archived"]["reason"], "archivedAt": at}
    return opp | {"archived": archived, "updatedAt": at, "lastInteractionAt": at,
                  "applications": [a | {"archived": archived} for a in opp["applications"]]}


if __name__ == "__main__":
    main()
