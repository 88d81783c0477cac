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

from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.eligibility import assess
from relay_core.errors import AuthError, ConfigError, RetriableError
from relay_core.models import Category

CASSETTES = Path(__file__).parent / "cassettes" / "test_greenhouse"
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
CURSOR = "2026-09-01T00:00:00Z"          # minus the 10-minute overlap: gte|2026-08-31T23:50:00Z
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
    connector, _ = build()
    pages = list(connector.poll(CURSOR))
    assert [p.cursor for p in pages] == [None, None, "2026-09-01T03:00:00Z"]
    assert vcr_cassette.all_played
    # token + 2 pages × (applications, candidates, rejection details) + jobs + reasons
    assert connector.request_count == 9
    events = {e.application_id: e for p in pages for e in p.events}
    assert not [p for page in pages for p in page.problems]

    taro = events["1001"]
    assert taro.category is Category.WE_REJECTED
    assert taro.person.full_name == "山田 太郎"
    assert taro.person.emails == ["taro@example.com", "taro@work.example"]   # personal first
    assert taro.person.timezone == "Asia/Tokyo"
    assert (taro.job_title, taro.stage, taro.reason_id) == ("法人営業 (Tokyo)", "1次面接", "8")
    assert taro.reason_text == "Lacking skill(s)/qualification(s)"
    assert taro.rejected_at == datetime(2026, 9, 1, 1, 30, tzinfo=UTC)
    assert events["1002"].category is Category.CANDIDATE_WITHDREW
    assert events["1002"].job_title == "Backend Engineer"
    assert events["1003"].category is Category.WE_REJECTED
    assert events["1003"].flags.no_invitation
    assert events["1004"].category is Category.WE_REJECTED
    assert not events["1004"].flags.can_email
    assert events["1005"].flags.prospect and events["1005"].job_title == ""
    assert events["1007"].person.emails == []
    assert events["1008"].category is Category.OTHER and events["1008"].raw["application"]

    bob = events["1006"].person
    assert "\r" not in bob.first_name and "\n" not in bob.first_name
    assert bob.first_name == 'Bob "Bobby" <b>Ann</b> Bcc: x@evil.example'   # data, not headers
    assert bob.last_name == "O'Brien"

    config = make_config()
    decisions = {k: assess(e, config, NOW) for k, e in events.items()}
    assert decisions["1001"].eligible and decisions["1001"].email == "taro@example.com"
    assert decisions["1003"].eligible and not decisions["1003"].invite
    assert "withdrew" in decisions["1002"].reason
    assert "may not be emailed" in decisions["1004"].reason
    assert "prospect" in decisions["1005"].reason
    assert "no valid email" in decisions["1007"].reason
    assert not decisions["1008"].eligible


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
    assert connector.request_count == 2                 # token + an empty listing
    list(connector.poll(CURSOR))
    assert connector.request_count == 3                 # token cached: one request
    connector.request_count = 0
    clock.now += 3600                                   # the hour is over
    list(connector.poll(CURSOR))
    assert connector.request_count == 2
    list(connector.poll(CURSOR))                        # 401 → new token → retry
    assert vcr_cassette.all_played


def test_first_poll_looks_back_max_age_days_only(build):
    connector, _ = build()
    adapter, _ = attach(connector)
    adapter.routes.append((lambda r: "auth.greenhouse.io" in r.url,
                           lambda r: Reply(200, {"access_token": "<filtered>", "expires_in": 60})))
    adapter.script.append(Reply(200, []))
    list(connector.poll(None))
    assert "updated_at=gte%7C2026-08-18T02%3A50%3A00Z" in adapter.api_requests()[0].url


# --- re-check, write-back, check -------------------------------------------------------------
@pytest.mark.vcr("recheck.yaml")
def test_recheck(build):
    connector, _ = build()
    assert connector.recheck(["1001", "1002", "1003"]) == {
        "1001": ApplicationStatus.REJECTED,
        "1002": ApplicationStatus.NOT_REJECTED,     # un-rejected: back in process
        "1003": ApplicationStatus.NOT_REJECTED,     # deleted or merged
    }


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
    assert results["harvest:applications:list"].ok
    missing = results["harvest:candidates:list"]
    assert not missing.ok
    assert "harvest:candidates:list" in missing.detail and "Site Admin" in missing.detail
    assert "/webhooks/greenhouse/gh" in results["webhook"].detail


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
    assert (event.job_title, event.stage, event.reason_text) == ("Designer", "Offer",
                                                                  "Too Junior")
    assert "candidate" not in event.raw["application"]     # no personal data in raw
    connector.parse_webhook({"Signature": sign(body)}, body)
    assert vcr_cassette.play_count == 2                    # reasons cached


def test_webhook_with_documented_type_name_needs_no_api_call(build):
    connector, _ = build()
    payload = json.loads(json.dumps(REJECT_EXAMPLE))
    payload["payload"]["application"]["rejection_reason"]["type"]["name"] = "They rejected us"
    body = json.dumps(payload).encode()
    (event,) = connector.parse_webhook({"signature": sign(body)}, body).events
    assert event.category is Category.CANDIDATE_WITHDREW
    assert connector.request_count == 0


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
