"""Greenhouse Harvest v3 connector, replayed from hand-written cassettes (record_mode "none")
in cassettes/test_greenhouse/ — see the README there for the documentation each follows."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from contract import HttpConnectorContract, ManualClock, Reply, attach, pinned
from relay_core.connectors.greenhouse import Greenhouse, categorize, person_from

from relay_core.contract.base import ApplicationStatus, Standing
from relay_core.cycle.eligibility import assess
from relay_core.errors import AuthError, ConfigError, RetriableError
from relay_core.models import Category

CASSETTES = Path(__file__).parent / "cassettes" / "test_greenhouse"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
CURSOR = "2026-09-01T00:00:00Z"          # minus the 2-minute overlap: gte|2026-08-31T23:58:00Z
WEBHOOK_SECRET = "test-webhook-secret"
SETTINGS = {"mode": "both", "client_id": "env:GH_TEST_CLIENT_ID",
            "client_secret": "env:GH_TEST_CLIENT_SECRET", "user_id": 12345,
            "webhook_secret": "env:GH_TEST_WEBHOOK_SECRET"}
# The official reject_candidate example [S9] (abridged: educations, employments, attachments).
REJECT_EXAMPLE = {"action": "reject_candidate", "payload": {"application": {
    "id": 265293, "rejected_at": "2015-02-11T15:50:41Z", "prospect": False, "status": "rejected",
    "applied_at": "2013-03-22T00:00:00Z", "last_activity_at": "2015-02-11T15:50:41Z",
    "url": "https://app.greenhouse.io/people/265788?application_id=265293",
    "source": {"id": 27, "public_name": "LinkedIn"}, "credited_to": None,
    "rejection_reason": {"id": 14, "name": "Too Junior", "type": {"id": 3,
                                                                 "name": "Wrong skill set"}},
    "current_stage": {"id": 2708728, "name": "Offer", "interviews": []},
    "candidate": {"id": 265788, "first_name": "Hector", "last_name": "Porter",
                  "is_private": False, "can_email": True,
                  "email_addresses": [{"value": "hector.porter.265788@example.com",
                                       "type": "personal"}], "tags": ["Imported"]},
    "jobs": [{"id": 371417, "name": "Designer", "confidential": False, "status": "open"}]}}}


@pytest.fixture(autouse=True)
def _secrets_in_env(monkeypatch):
    monkeypatch.setenv("GH_TEST_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("GH_TEST_CLIENT_SECRET", "test-client-secret")
    monkeypatch.setenv("GH_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)


@pytest.fixture(scope="module")
def vcr_config():
    def scrub(response):
        body = response["body"]["string"]     # bytes (vcr also runs this when loading)
        response["body"]["string"] = re.sub(rb'("access_token":\s*")[^"]*', rb"\1<filtered>",
                                            body if isinstance(body, bytes) else body.encode())
        return response

    return {"record_mode": "none", "filter_headers": [("authorization", "<filtered>")],
            "filter_post_data_parameters": [("client_secret", "<filtered>")],
            "before_record_response": scrub}


@pytest.fixture
def build(make_config):
    def make(**overrides) -> tuple[Greenhouse, ManualClock]:
        config = make_config({"sources": [{"name": "gh", "type": "greenhouse",
                                           **SETTINGS, **overrides}]})
        connector = Greenhouse(config.sources[0], config, 0)
        return connector, pinned(connector, NOW)

    return make


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256 " + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- polling ----------------------------------------------------------------------------------
@pytest.mark.vcr("poll_two_pages.yaml")
def test_poll_two_pages_every_category(build, make_config, vcr_cassette):
    connector, _ = build(feedback_field="candidate_feedback")
    pages = list(connector.poll(CURSOR))
    assert [p.cursor for p in pages] == [None, "2026-09-01T03:00:00Z"]
    assert vcr_cassette.all_played
    # token; both listing pages first; then for all nine: candidates, rejection details (for
    # the three listed without a reason id), the others' active applications, job posts, the
    # one job without a post, reasons
    assert connector.request_count == 9
    events = {e.application_id: e for p in pages for e in p.events}
    assert not [p for page in pages for p in page.problems]

    taro = events["1001"]
    assert taro.category is Category.WE_REJECTED
    assert taro.person.full_name == "山田 太郎"
    assert taro.person.emails == ["taro@example.com", "taro@work.example"]   # personal first
    assert taro.person.timezone == "Asia/Tokyo"
    assert (taro.job_title, taro.stage, taro.reason_id) == ("法人営業（東京）", "1次面接", "8")
    assert taro.language == "ja"                       # the post the candidate applied through
    assert taro.reason_text == "Lacking skill(s)/qualification(s)"
    assert taro.rejected_at == datetime(2026, 9, 1, 1, 30, tzinfo=UTC)
    assert taro.flags.in_process_elsewhere is False    # the other one is a prospect's
    # only the designated field, never the interviewers' notes beside it
    assert taro.feedback.startswith("面接では具体例") and "INTERNAL" not in taro.feedback
    assert "INTERNAL" not in events["1001"].model_dump_json(exclude={"raw"})
    assert events["1002"].category is Category.CANDIDATE_WITHDREW
    assert (events["1002"].job_title, events["1002"].language) == ("Backend Engineer, Tokyo",
                                                                   "en")
    assert events["1003"].category is Category.WE_REJECTED
    assert events["1003"].flags.no_invitation
    assert events["1004"].category is Category.WE_REJECTED
    assert not events["1004"].flags.can_email
    assert events["1005"].flags.prospect and events["1005"].job_title == ""
    assert events["1007"].person.emails == []
    assert events["1008"].category is Category.OTHER and events["1008"].raw["application"]
    daichi = events["1009"]                            # a confidential job without any post
    assert daichi.job_title == "DA_confidential" and daichi.flags.confidential_job
    assert not daichi.flags.private and daichi.flags.in_process_elsewhere is True
    assert events["1006"].flags.in_process_elsewhere is None    # page 2: asked before sending

    bob = events["1006"].person
    assert "\r" not in bob.first_name and "\n" not in bob.first_name
    assert bob.first_name == 'Bob "Bobby" <b>Ann</b> Bcc: x@evil.example'   # data, not headers
    assert bob.last_name == "O'Brien"

    config = make_config()
    decisions = {k: assess(e, config, NOW) for k, e in events.items()}
    assert decisions["1001"].eligible and decisions["1001"].email == "taro@example.com"
    assert decisions["1001"].hold                      # feedback: a second reader first
    assert decisions["1003"].eligible and not decisions["1003"].invite
    assert "withdrew" in decisions["1002"].reason
    assert "may not be emailed" in decisions["1004"].reason
    assert "prospect" in decisions["1005"].reason
    assert "no valid email" in decisions["1007"].reason
    assert not decisions["1008"].eligible
    # a confidential job is mailed, without the invitation while still in process elsewhere
    assert decisions["1009"].eligible and not decisions["1009"].invite
    assert "another position" in decisions["1009"].invite_note
    skip = make_config({"eligibility": {"confidential_jobs": "skip"}})
    assert "confidential" in assess(daichi, skip, NOW).reason


def test_request_budget_for_r_rejections(build):
    """ceil(R/500) listing pages + 2·ceil(R/50) + 3, whatever R is: per 50 applications the
    candidates and their active applications; token, reasons and job posts once."""
    import math

    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.routes.append((lambda r: "auth.greenhouse.io" in r.url,
                           lambda r: Reply(200, {"access_token": "<filtered>",
                                                 "expires_in": 3600})))
    r_total = 1000
    apps = [{"id": 10_000 + i, "candidate_id": 20_000 + i, "job_id": 501, "job_post_id": 601,
             "status": "rejected", "prospect": False, "rejection_reason_id": 8,
             "rejected_at": "2026-09-01T01:30:00Z", "custom_fields": {}}
            for i in range(r_total)]

    def by_ids(request):
        from urllib.parse import parse_qs, urlsplit
        query = parse_qs(urlsplit(request.url).query)
        path = urlsplit(request.url).path
        if path == "/v3/candidates":
            return Reply(200, [{"id": int(i), "first_name": "A", "last_name": "B",
                                "can_email": True,
                                "email_addresses": [{"value": f"a{i}@example.com",
                                                     "type": "personal"}]}
                               for i in query["ids"][0].split(",")])
        if path == "/v3/job_posts":
            return Reply(200, [{"id": 601, "job_id": 501, "title": "Sales", "language": "ja",
                                "internal": False, "live": True, "active": True}])
        if path == "/v3/rejection_reasons":
            return Reply(200, [{"id": 8, "name": "x", "type": {"key": "WE_REJECTED_THEM"}}])
        if "candidate_ids" in query:
            return Reply(200, [])
        nxt = {"Link": '<https://harvest.greenhouse.io/v3/applications?cursor=p2>; rel="next"'}
        if "cursor" in query:
            return Reply(200, apps[500:])
        return Reply(200, apps[:500], nxt)

    adapter.routes.append((lambda r: "harvest.greenhouse.io" in r.url, by_ids))
    events = [e for p in connector.poll(CURSOR) for e in p.events]
    assert len(events) == r_total
    budget = math.ceil(r_total / 500) + 2 * math.ceil(r_total / 50) + 3
    assert connector.request_count <= budget == 45


@pytest.mark.vcr("poll_private_candidate.yaml")
def test_private_candidate_403_is_a_skip_not_a_failure(build, make_config, vcr_cassette):
    connector, _ = build()
    events = {e.application_id: e for p in connector.poll(CURSOR) for e in p.events}
    assert vcr_cassette.all_played
    assert not events["3001"].flags.private
    assert events["3001"].person.emails == ["aoi@example.com"]
    hidden = events["3002"]
    assert hidden.flags.private and hidden.person.emails == []
    assert "private" in assess(hidden, make_config(), NOW).reason


@pytest.mark.vcr("poll_expired_cursor.yaml")
def test_an_expired_cursor_lists_the_window_again_once(build, vcr_cassette):
    """The whole window is listed before any look-up; a cursor refused with 422 [S24] lists it
    again from the first request, once, and the report says so (no personal data)."""
    connector, _ = build()
    pages = list(connector.poll(CURSOR))
    assert vcr_cassette.all_played
    events = {e.application_id: e for p in pages for e in p.events}
    assert sorted(events) == ["5001", "5002"]
    problems = [str(p) for page in pages for p in page.problems]
    assert problems == ["gh: listing: a next-page link expired after 1 records (HTTP 422); "
                        "the window was listed again from its first page"]
    assert pages[-1].cursor == "2026-09-01T03:00:00Z"


@pytest.mark.vcr("poll_429_then_success.yaml")
def test_429_then_success(build, vcr_cassette):
    connector, clock = build()
    pages = list(connector.poll(CURSOR))
    assert pages[-1].cursor == "2026-09-01T03:00:00Z"
    assert 2 in clock.sleeps
    assert vcr_cassette.all_played


@pytest.mark.vcr("poll_5xx_exhausted.yaml")
def test_5xx_exhausted_leaves_the_cursor(build, vcr_cassette):
    connector, _ = build()
    seen = []
    with pytest.raises(RetriableError, match="HTTP 503"):
        for page in connector.poll(CURSOR):
            seen.append(page.cursor)
    assert seen == []                      # nothing stored, so nothing advanced
    assert vcr_cassette.play_count == 4


@pytest.mark.vcr("token_expiry.yaml")
def test_token_cached_then_refreshed_on_expiry_and_on_401(build, vcr_cassette):
    connector, clock = build()
    list(connector.poll(CURSOR))
    assert connector.request_count == 3      # token + an empty listing + is anything visible?
    list(connector.poll(CURSOR))
    assert connector.request_count == 4                 # token and reasons cached: one request
    connector.request_count = 0
    clock.now += 3600                                   # the hour is over
    list(connector.poll(CURSOR))
    assert connector.request_count == 3
    list(connector.poll(CURSOR))                        # 401 → new token → retry
    assert vcr_cassette.all_played


@pytest.mark.vcr("poll_not_site_admin.yaml")
def test_a_user_who_sees_nothing_is_reported_not_silent(build, vcr_cassette):
    """Harvest v3 answers a `sub` that is no Site Admin with empty lists [S21]: an empty
    listing is followed by the reasons Greenhouse always has; none means no Site Admin."""
    connector, _ = build()
    with pytest.raises(AuthError, match="Site Admin") as info:
        list(connector.poll(CURSOR))
    assert "Configure → Users" in str(info.value) and vcr_cassette.all_played


def test_first_poll_looks_back_max_age_days_only(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.routes.append((lambda r: "auth.greenhouse.io" in r.url,
                           lambda r: Reply(200, {"access_token": "<filtered>", "expires_in": 60})))
    adapter.script += [Reply(200, []), Reply(200, [{"id": 8, "name": "x", "type": {}}])]
    list(connector.poll(None))
    assert "updated_at=gte%7C2026-08-18T02%3A58%3A00Z" in adapter.api_requests()[0].url


# --- re-check, write-back, check -------------------------------------------------------------
@pytest.mark.vcr("recheck.yaml")
def test_recheck(build, vcr_cassette):
    connector, _ = build()
    still = ApplicationStatus(Standing.REJECTED, Category.WE_REJECTED,
                              "Lacking skill(s)/qualification(s)")
    assert connector.recheck(["1001", "1002", "1003", "1004", "1005"]) == {
        "1001": still,
        "1002": ApplicationStatus.NOT_REJECTED,     # un-rejected: back in process
        "1003": ApplicationStatus.NOT_REJECTED,     # deleted or merged
        "1004": still.elsewhere(),                  # rejected, in process for another job
        # the reason changed to "They rejected us": still `rejected`, now a withdrawal
        "1005": ApplicationStatus(Standing.REJECTED, Category.CANDIDATE_WITHDREW,
                                  "Took another offer"),
    }
    # token + 2 per 50 + the rejection reasons (listed once an hour)
    assert vcr_cassette.all_played and connector.request_count == 4


@pytest.mark.vcr("recheck_invisible.yaml")
def test_recheck_never_cancels_what_the_user_cannot_see(build):
    connector, _ = build()
    with pytest.raises(AuthError, match="Site Admin"):
        connector.recheck(["1001", "1002"])


@pytest.mark.vcr("write_back.yaml")
def test_write_back_note_and_tag_never_twice(build, vcr_cassette):
    connector, _ = build(write_back="both")
    text = "Career Relay: rejection email with relay invitation sent"
    assert connector.annotate("1001", text)
    assert connector.annotate("1001", text)
    assert vcr_cassette.all_played                 # exactly three POSTs, no fourth
    posts = [r for r in vcr_cassette.requests if r.method == "POST" and "notes" in r.uri]
    assert json.loads(posts[0].body)["visibility"] == "admin_only"


def test_write_back_off_by_default(build):
    connector, _ = build()
    assert connector.annotate("1001", "x") is False
    assert connector.request_count == 0


@pytest.mark.vcr("check_scopes.yaml")
def test_check_names_the_missing_scope(build):
    connector, _ = build()
    results = {r.what.split(": ", 1)[1]: r for r in connector.check()}
    assert results["OAuth token"].ok
    assert results["harvest:applications:list"].ok and results["harvest:job_posts:list"].ok
    missing = results["harvest:candidates:list"]
    assert not missing.ok
    assert "harvest:candidates:list" in missing.detail and "Site Admin" in missing.detail
    assert "/webhooks/greenhouse/gh" in results["webhook"].detail
    assert results["Site Admin"].ok and "12345" in results["Site Admin"].detail


@pytest.mark.parametrize("cassette,expected", [
    ("check_not_site_admin.yaml", "sees no records at all"),
    ("check_invisible_applications.yaml", "sees no rejected application"),
    ("check_users_scope_missing.yaml", "harvest:users:list"),
    ("check_user_not_admin.yaml", "Configure → Users"),
])
def test_check_fails_with_a_fix_when_the_user_is_no_site_admin(build, vcr, cassette, expected):
    connector, _ = build()
    with vcr.use_cassette(cassette):
        results = {r.what.split(": ", 1)[1]: r for r in connector.check()}
    admin = results["Site Admin"]
    assert not admin.ok and expected in admin.detail


def test_bad_client_credentials_are_an_auth_error(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.script.append(Reply(401, {"error": "invalid_client"}))
    with pytest.raises(AuthError, match="refused the client credentials"):
        list(connector.poll(CURSOR))
    assert "test-client-secret" not in repr(connector)


# --- webhooks (translation; the HTTP path is in test_greenhouse_webhooks.py) -----------------
@pytest.mark.vcr("webhook_reason_lookup.yaml")
def test_official_reject_example_with_custom_type_name_asks_v3_once(build, vcr_cassette):
    connector, _ = build()
    body = json.dumps(REJECT_EXAMPLE).encode()
    result = connector.parse_webhook({"Signature": sign(body), "Greenhouse-Event-ID": "e1"}, body)
    (event,) = result.events
    assert (result.kind, result.event_id) == ("reject_candidate", "e1")
    assert event.application_id == "265293" and event.candidate_id == "265788"
    assert event.category is Category.WE_REJECTED          # "Wrong skill set" → key via v3
    assert event.person.emails == ["hector.porter.265788@example.com"]
    # the job's public post, not its internal name "Designer", and the post's language
    assert (event.job_title, event.stage, event.reason_text) == ("Product Designer", "Offer",
                                                                  "Too Junior")
    assert event.language == "en" and event.flags.in_process_elsewhere is None
    assert "candidate" not in event.raw["application"]     # no personal data in raw
    connector.parse_webhook({"Signature": sign(body)}, body)
    assert vcr_cassette.play_count == 3                    # reasons and posts cached


def test_webhook_with_documented_type_name_asks_only_for_the_job_post(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.routes.append((lambda r: "auth.greenhouse.io" in r.url,
                           lambda r: Reply(200, {"access_token": "<filtered>",
                                                 "expires_in": 3600})))
    adapter.script.append(Reply(200, []))       # the job has no post: its name stays
    payload = json.loads(json.dumps(REJECT_EXAMPLE))
    payload["payload"]["application"]["rejection_reason"]["type"]["name"] = "They rejected us"
    body = json.dumps(payload).encode()
    (event,) = connector.parse_webhook({"signature": sign(body)}, body).events
    assert event.category is Category.CANDIDATE_WITHDREW and event.job_title == "Designer"
    assert [r.url.split("?")[0] for r in adapter.api_requests()] == [
        "https://harvest.greenhouse.io/v3/job_posts"]
    connector.parse_webhook({"signature": sign(body)}, body)
    assert len(adapter.api_requests()) == 1      # per job, once


def test_webhook_job_post_lookup_failure_keeps_the_delivery(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.routes.append((lambda r: "auth.greenhouse.io" in r.url,
                           lambda r: Reply(200, {"access_token": "<filtered>",
                                                 "expires_in": 3600})))
    adapter.script += [Reply(403, {"message": "Forbidden"})] * 2   # the batch, then a probe
    payload = json.loads(json.dumps(REJECT_EXAMPLE))
    payload["payload"]["application"]["rejection_reason"]["type"]["name"] = "We rejected them"
    body = json.dumps(payload).encode()
    (event,) = connector.parse_webhook({"signature": sign(body)}, body).events
    assert event.job_title == "Designer"        # the job's name, rather than a lost delivery


def test_published_signature_test_vector(build, monkeypatch):
    """Body, secret and signature published in greenhouse-api-docs issue #276 [S26a]."""
    monkeypatch.setenv("GH_VECTOR_SECRET", "1uSUju2H6AohOE7OQVaxeLT3O8Uxxuas")
    connector, _ = build(webhook_secret="env:GH_VECTOR_SECRET")
    body = (b'{"action":"ping","payload":{"web_hook_id":4001693002,"endpoint_url":'
            b'"https://67e09e60.ngrok.io/webhooks","created_at":"2018-12-20T15:43:12Z",'
            b'"updated_at":"2018-12-27T09:40:14Z","name":"Job Post Create","event":'
            b'"Job Post Created","active":true,"content-type":"application/json"}}')
    sig = "sha256 395b1309fd37f0732d1ed11c15e03edd61b818918df6bf93be7c71bafb09c877"
    assert connector.parse_webhook({"Signature": sig}, body).kind == "ping"


# --- translation tables and settings ---------------------------------------------------------
@pytest.mark.parametrize("status,key,expected,no_invite", [
    ("rejected", "WE_REJECTED_THEM", Category.WE_REJECTED, False),
    ("rejected", "NONE_SPECIFIED", Category.WE_REJECTED, False),
    ("rejected", "THEY_REJECTED_US", Category.CANDIDATE_WITHDREW, False),
    ("rejected", "SECURITY_CONCERN", Category.WE_REJECTED, True),
    ("rejected", "NEW_KEY", Category.OTHER, False),
    ("rejected", None, Category.OTHER, False),
    ("hired", None, Category.HIRED, False),
    ("in_process", None, Category.OTHER, False),
])
def test_categories(status, key, expected, no_invite):
    assert categorize(status, key) == (expected, no_invite)


def test_names_kanji_order_and_preferred_name():
    assert person_from({"first_name": "花子", "last_name": "鈴木"}).full_name == "鈴木 花子"
    assert person_from({"first_name": "Jane", "preferred_name": "JJ",
                        "last_name": "Doe"}).full_name == "JJ Doe"
    assert repr(person_from({"first_name": "花子"})) == "Person(<redacted>)"


def test_webhook_mode_requires_the_secret(build):
    with pytest.raises(ConfigError, match="webhook_secret is required"):
        build(mode="webhook", webhook_secret=None)
    connector, _ = build(mode="poll", webhook_secret=None)
    assert connector.polls and not connector.receives_webhooks


def test_cassettes_hold_no_credentials():
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?im)^\s*authorization:", text), path.name
        for value in re.findall(r'"access_token":\s*"([^"]*)"', text):
            assert value == "<filtered>", path.name
        assert "Bearer " not in text.replace('"token_type": "Bearer"', ""), path.name
        assert "client_secret" not in text and "test-client" not in text, path.name


# --- the shared contract ----------------------------------------------------------------------
class TestGreenhouseContract(HttpConnectorContract):
    connector_class = Greenhouse
    secret_keys = ["client_secret", "webhook_secret"]
    invalid_settings = [({"user_id": 0}, "user_id"), ({"mode": "sometimes"}, "mode"),
                        ({"base_url": "harvest.greenhouse.io/v3"}, "base_url"),
                        ({"write_back": "always"}, "write_back"),
                        ({"overlap_minutes": -5}, "overlap_minutes"),
                        ({"client_secrets": "env:X"}, "client_secrets")]

    def settings(self):
        return dict(SETTINGS)

    def route_auth(self, adapter):
        adapter.routes.append((lambda r: r.url.startswith("https://auth.greenhouse.io/"),
                               lambda r: Reply(200, {"access_token": "<filtered>",
                                                     "token_type": "Bearer",
                                                     "expires_in": 3600})))
        # An empty listing is followed by the reasons a Site Admin always sees.
        adapter.routes.append((lambda r: "/v3/rejection_reasons" in r.url,
                               lambda r: Reply(200, [{"id": 8, "name": "x", "type": {}}])))

    def listing_pages(self, count):
        return [Reply(200, [], {"Link": f'<https://harvest.greenhouse.io/v3/applications?'
                                        f'cursor=c{i + 1}>; rel="next"'} if i < count - 1 else {})
                for i in range(count)]

    def event_with_unknown_status(self, connector):
        return connector._event_from_v3(
            {"id": 1, "candidate_id": 2, "status": "archived_somehow",
             "rejected_at": "2026-09-01T00:00:00Z"},
            {"id": 2, "first_name": "A", "email_addresses": []}, False, None)

    def webhook_delivery(self, connector, *, valid):
        body = json.dumps({"action": "ping", "payload": {"web_hook_id": 1}}).encode()
        return {"Signature": sign(body, WEBHOOK_SECRET if valid else "wrong")}, body

    def forged_malformed_delivery(self, connector):
        body = b'{"action": "reject_candidate", "payload": {"application": '   # cut short
        return {"Signature": sign(body, "wrong")}, body

    def secret_values(self):
        return ["test-client-secret", WEBHOOK_SECRET]
