"""Hostile input never reaches a 500 (issue 13): property tests on everything that reads what
strangers send, regression tests for each crash the fuzzing run found, and schemathesis
against the OpenAPI schema of the webhook, consent and agency routes.

Fixed seed (derandomize) and small budgets: the whole file runs in well under a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_core.connectors.greenhouse import Greenhouse
from relay_core.connectors.lever import Lever
from requests.adapters import BaseAdapter
from schemathesis import GenerationMode
from sqlalchemy import func, select

from relay_core.errors import RelayError, SignatureError, TokenError
from relay_core.inbound import MAX_JSON_DEPTH, BadInput, check_depth, load_json, same_token
from relay_core.records.consent import tokens
from relay_core.records.handoff.channels import sign, verify_signature
from relay_core.store import admin as accounts
from relay_core.store import tables as t
from relay_core.store import utcnow
from relay_core.web.admin.passwords import hash_password
from relay_core.web.app import create_app
from relay_core.web.session import SessionSigner
from tests.handoff.support import SECRET as AGENCY_SECRET
from tests.handoff.support import agency


def fuzz(examples: int) -> settings:
    """Same inputs on every run (CI must not flake), no example database, no deadline (the
    machine is shared)."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


GH_SECRET = "fuzz-greenhouse-secret"
LEVER_TOKEN = "fuzz-lever-token"
DEEP = b"[" * 50_000 + b"]" * 50_000
anything = st.one_of(st.text(), st.binary(), st.none(), st.integers(), st.lists(st.text()))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


# --- the comparison helper -------------------------------------------------------------------
@fuzz(300)
@given(expected=st.text(alphabet=st.characters(max_codepoint=127)), received=anything)
def test_same_token_answers_every_input(expected, received):
    result = same_token(expected, received)
    assert result is (isinstance(received, str) and received == expected
                      or isinstance(received, bytes) and received == expected.encode())


@fuzz(200)
@given(token=st.text(min_size=1))
def test_same_token_refuses_non_ascii_even_against_itself(token):
    assert same_token(token, token) is token.isascii()
    assert same_token(token.encode(), token.encode()) is token.isascii()


def test_every_comparison_goes_through_same_token():
    """One bytes-safe comparison: a new `compare_digest` elsewhere would bring the TypeError
    on non-ASCII input back."""
    root = Path(__file__).resolve().parents[1]
    found = [str(path.relative_to(root)) for folder in ("relay_core", "connectors")
             for path in (root / folder).rglob("*.py")
             if "compare_digest" in path.read_text(encoding="utf-8")]
    assert found == ["relay_core/inbound.py"], found


# --- the JSON depth guard --------------------------------------------------------------------
@fuzz(300)
@given(raw=st.binary(max_size=200) | st.text(alphabet='[]{}"\\,:1a ', max_size=400)
       .map(str.encode))
def test_load_json_refuses_with_bad_input_only(raw):
    try:
        value = load_json(raw)
    except BadInput:
        return
    assert value == json.loads(raw)


@fuzz(200)
@given(value=json_values)
def test_load_json_reads_every_json_document(value):
    assert load_json(json.dumps(value).encode()) == value


@fuzz(100)
@given(depth=st.integers(1, 300), opener=st.sampled_from(["[", '{"k":']),
       noise=st.sampled_from(["", '"[[[[{{"', '"\\\\"', '"\\"[["']))
def test_depth_limit_is_exact_and_strings_do_not_count(depth, opener, noise):
    closer = "]" if opener == "[" else "}"
    text = opener * depth + (noise or "0") + closer * depth
    if depth > MAX_JSON_DEPTH:
        with pytest.raises(BadInput, match="nested more than 64 levels"):
            load_json(text)
    else:
        check_depth(text)
        assert load_json(text) is not None


def test_fifty_thousand_deep_is_bad_input_not_recursion_error():
    with pytest.raises(BadInput, match="nested more than"):
        load_json(DEEP)
    with pytest.raises(BadInput, match="nested more than"):
        load_json(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)


# --- token parser, session and CSRF, agency signature ---------------------------------------
def test_relay_token_parser_answers_every_input_with_a_token_error(store, config):
    with store.begin() as conn:
        key = tokens.signing_key(config, conn)

        @fuzz(300)
        @given(token=st.text(max_size=250) | st.from_regex(r"\A[\w\-]{1,40}\.[^.]{0,50}\Z"),
               purpose=st.sampled_from(sorted(tokens.PURPOSES)))
        def check(token, purpose):
            with pytest.raises(TokenError):
                tokens.verify(conn, key, token, purpose)

        check()


@fuzz(300)
@given(cookie=st.text(max_size=420), submitted=anything)
def test_session_cookie_and_csrf_answer_every_input(cookie, submitted):
    signer = SessionSigner(b"k" * 32)
    assert signer.read(cookie) is None
    session = signer.read(signer.issue(7, sorted(tokens.PURPOSES)[0]))
    assert signer.csrf_ok(session, submitted) is (submitted == signer.csrf_token(session))


@fuzz(300)
@given(header=st.none() | st.text(max_size=120)
       | st.builds(lambda t, v: f"t={t},v1={v}", st.integers(), st.text(max_size=70)),
       body=st.binary(max_size=50))
def test_agency_signature_answers_every_header_with_signature_error(header, body):
    with pytest.raises(SignatureError):
        verify_signature(b"secret", header, body, now=0)


def test_agency_signature_still_verifies():
    now = int(time.time())
    assert verify_signature(b"secret", sign(b"secret", b"{}", now), b"{}") == now


# --- the connectors' webhook verifiers and body models -----------------------------------------
class Quiet(BaseAdapter):
    """The ATS as a translation may ask it: a token, empty lists and an empty opportunity.
    No network, and any answer is acceptable: only crashes are looked for."""

    def send(self, request, **kwargs):
        response = requests.Response()
        response.status_code = 200
        if "auth.greenhouse.io" in request.url:
            body: Any = {"access_token": "x", "expires_in": 3600}
        else:
            body = [] if "greenhouse" in request.url else {"data": {}}
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url, response.request = request.url, request
        return response

    def close(self):
        pass


@pytest.fixture
def config(make_config, monkeypatch):
    monkeypatch.setenv("FUZZ_GH_ID", "id")
    monkeypatch.setenv("FUZZ_GH_SECRET", "client-secret")
    monkeypatch.setenv("FUZZ_GH_WEBHOOK", GH_SECRET)
    monkeypatch.setenv("FUZZ_LEVER_KEY", "key")
    monkeypatch.setenv("FUZZ_LEVER_TOKEN", LEVER_TOKEN)
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", AGENCY_SECRET)
    return make_config({"agencies": [agency("agency-a")], "sources": [
        {"name": "gh", "type": "greenhouse", "mode": "both", "client_id": "env:FUZZ_GH_ID",
         "client_secret": "env:FUZZ_GH_SECRET", "user_id": 1,
         "webhook_secret": "env:FUZZ_GH_WEBHOOK"},
        {"name": "lever", "type": "lever", "api_key": "env:FUZZ_LEVER_KEY",
         "webhook_signature_token": "env:FUZZ_LEVER_TOKEN"}]})


@pytest.fixture
def connectors(config):
    found = {}
    for index, (cls, source) in enumerate(zip((Greenhouse, Lever), config.sources,
                                              strict=True)):
        connector = cls(source, config, index)
        connector.session.mount("https://", Quiet())
        connector.session.mount("http://", Quiet())
        connector.sleep = lambda seconds: None
        found[source.name] = connector
    return found


def gh_signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Signature": f"sha256 {digest}", "Greenhouse-Event-ID": "evt-fuzz",
            "Content-Type": "application/json"}


def lever_envelope(data: Any, **extra: Any) -> bytes:
    at = int(time.time() * 1000)
    token = "t" * 20
    signature = hmac.new(LEVER_TOKEN.encode(), f"{token}{at}".encode(),
                         hashlib.sha256).hexdigest()
    return json.dumps({"token": token, "triggeredAt": at, "signature": signature,
                       "event": "candidateArchiveChange", "data": data, **extra}).encode()


maybe = st.one_of(json_values, st.text(max_size=5))
application = st.fixed_dictionaries({
    "id": st.integers(1, 9) | maybe, "rejected_at": st.just("2026-01-01T00:00:00Z") | maybe,
}, optional={
    "status": st.sampled_from(["rejected", "hired"]) | maybe,
    "candidate": st.fixed_dictionaries({}, optional={
        "first_name": maybe, "email_addresses": st.lists(
            st.fixed_dictionaries({"value": maybe, "type": maybe}) | maybe, max_size=2) | maybe,
        "time_zone": maybe}) | maybe,
    "rejection_reason": st.fixed_dictionaries({}, optional={
        "id": maybe, "type": st.fixed_dictionaries({"name": maybe}) | maybe}) | maybe,
    "jobs": st.lists(st.fixed_dictionaries({}, optional={"id": maybe}) | maybe,
                     max_size=2) | maybe,
    "current_stage": maybe, "custom_fields": maybe})
greenhouse_bodies = st.fixed_dictionaries({
    "action": st.sampled_from(["reject_candidate", "unreject_candidate", "ping"]) | maybe,
    "payload": st.fixed_dictionaries({"application": application}) | maybe})


def test_greenhouse_signed_bodies_of_any_shape_are_refused_cleanly(connectors):
    gh = connectors["gh"]
    seen: Counter[str] = Counter()

    @fuzz(250)
    @given(body=greenhouse_bodies | json_values)
    def check(body):
        raw = json.dumps(body).encode()
        try:
            result = gh.parse_webhook(gh_signed(raw), raw)
        except RelayError as exc:
            assert not isinstance(exc, SignatureError)   # it was signed: refused for its shape
            seen["shape" if "shape" in str(exc) else "refused"] += 1
        else:
            seen["event" if result.events else "reply"] += 1

    check()
    # The strategy reaches every outcome: translated, answered, refused by the model, and
    # refused otherwise (not an object, a record without rejected_at).
    assert {"event", "reply", "shape", "refused"} <= set(seen), seen


def test_greenhouse_signature_header_of_any_kind_is_a_signature_error(connectors):
    gh = connectors["gh"]

    @fuzz(200)
    @given(value=st.text(max_size=80) | st.builds("sha256 {}".format, st.text(max_size=70)))
    def check(value):
        with pytest.raises(SignatureError):
            gh.verify_webhook({"Signature": value}, b"{}")

    check()


def test_lever_signed_bodies_of_any_shape_are_refused_cleanly(connectors):
    lever = connectors["lever"]

    @fuzz(200)
    @given(data=st.fixed_dictionaries({}, optional={"opportunityId": maybe}) | json_values,
           extra=st.dictionaries(st.sampled_from(["id", "event"]), maybe, max_size=2),
           signature=st.none() | st.text(max_size=70))
    def check(data, extra, signature):
        raw = lever_envelope(data, **extra)
        if signature is not None:     # a forged one: must be a SignatureError, whatever it is
            raw = json.dumps({**json.loads(raw), "signature": signature}).encode()
        try:
            lever.parse_webhook({}, raw)
        except SignatureError:
            assert signature is not None
        except RelayError:
            pass

    check()


# --- through the app: the crashes the fuzzing run found -----------------------------------------
@pytest.fixture
def app(config, store, connectors):
    return create_app(config, store, connectors)


@pytest.fixture
def client(app):
    with TestClient(app, base_url=config_base(app), follow_redirects=False) as c:
        yield c


def config_base(app) -> str:
    return app.state.relay.config.relay.public_base_url


def counts(store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in t.metadata.tables.items()}


def test_non_ascii_relay_link_is_a_clean_refusal(client):
    for path in ("/r/x.%C3%A9", "/w/x.%C3%A9", "/u/%C3%A9.%C3%A9", "/r/%FF%FE.%00"):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)


def test_non_ascii_signature_headers_are_401(client):
    body = b'{"id": "e1", "type": "registered", "reference": "cr_x"}'
    now = str(int(time.time())).encode()     # a fresh timestamp: the signature is compared
    for value in (b"t=" + now + ",v1=\u00e9".encode("latin-1"), b"t=" + now + b",v1=\xff00",
                  b"t=" + now + ",v1=é".encode(), "é".encode()):
        response = client.post("/agency/agency-a/events", content=body,
                               headers={"X-Relay-Signature": value})
        assert response.status_code == 401, response.text
        response = client.post("/webhooks/greenhouse/gh", content=body,
                               headers={"Signature": b"sha256 " + value})
        assert response.status_code == 401, response.text


def test_signed_string_where_an_object_belongs_is_400_naming_the_field(client, store):
    before = counts(store)
    for body in ({"action": "reject_candidate", "payload": "x"},
                 {"action": "reject_candidate", "payload": {"application": "x"}},
                 {"action": "reject_candidate", "payload": {"application": {
                     "id": 1, "candidate": "x", "rejection_reason": {"type": "x"}}}}):
        raw = json.dumps(body).encode()
        response = client.post("/webhooks/greenhouse/gh", content=raw, headers=gh_signed(raw))
        assert response.status_code == 400, response.text
        assert "does not have the shape greenhouse sends: payload" in response.json()["detail"]
    response = client.post("/webhooks/lever/lever", content=lever_envelope("x"))
    assert response.status_code == 400 and "data" in response.json()["detail"]
    assert counts(store) == before


def test_fifty_thousand_deep_signed_json_is_400(client, store):
    before = counts(store)
    response = client.post("/webhooks/greenhouse/gh", content=DEEP, headers=gh_signed(DEEP))
    assert response.status_code == 400 and "nested more than 64" in response.json()["detail"]
    response = client.post("/webhooks/lever/lever", content=DEEP)
    assert response.status_code == 400 and "nested more than 64" in response.json()["detail"]
    stamp = sign(AGENCY_SECRET.encode(), DEEP, int(time.time()))
    response = client.post("/agency/agency-a/events", content=DEEP,
                           headers={"X-Relay-Signature": stamp})
    assert response.status_code == 400 and "nested more than 64" in response.json()["detail"]
    assert counts(store) == before


@pytest.mark.parametrize("payload, words", [
    ("x", "Input should be a valid dictionary"),
    ({"events": "x"}, "events: Input should be a valid list"),
    ({"events": [{"id": "1", "type": "registered", "reference": {"a": 1}}]},
     "events.0.reference: Input should be a valid string"),
    ({"events": []}, "events: List should have at least 1 item"),
    ({"id": "1", "type": "registered", "reference": "r", "extra": 1}, "extra: Extra inputs"),
])
def test_signed_agency_event_of_the_wrong_shape_is_422_naming_it(client, store, payload, words):
    raw = json.dumps(payload).encode()
    stamp = sign(AGENCY_SECRET.encode(), raw, int(time.time()))
    response = client.post("/agency/agency-a/events", content=raw,
                           headers={"X-Relay-Signature": stamp})
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]


def test_oversized_bodies_are_413(make_config, store, connectors, config):
    small = create_app(config.model_copy(update={"web": config.web.model_copy(
        update={"max_body_bytes": 1000})}), store, connectors)
    with TestClient(small) as c:
        for url in ("/webhooks/greenhouse/gh", "/agency/agency-a/events"):
            assert c.post(url, content=b"[" * 1001).status_code == 413


# --- forms: consent CSRF and the console's -------------------------------------------------------
def open_relay_page(client, store) -> str:
    """Mails an invitation through the pipeline and follows its link; the page's CSRF token."""
    from tests.consent.conftest import link_in, outbox_files, send_invitations

    config = client.app.state.relay.config
    send_invitations(config, store)
    link = link_in(outbox_files(config)[0], f"{config.relay.public_base_url}/r/")
    opened = client.get(link.split(config.relay.public_base_url, 1)[1])
    assert opened.status_code in (302, 303), opened.text
    page = client.get(opened.headers["location"])
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_consent_forms_refuse_any_csrf_value_without_a_crash(client, store, caplog):
    config = client.app.state.relay.config
    open_relay_page(client, store)
    before = counts(store)

    @fuzz(40)
    @given(csrf=st.text(max_size=80) | st.just("é" * 64),
           path=st.sampled_from(["/relay/consent", "/relay/decline", "/relay/unsubscribe"]))
    def check(csrf, path):
        response = client.post(path, data={"csrf": csrf, "lang": "ja"},
                               headers={"Origin": config.relay.public_base_url})
        assert response.status_code == 403, (path, response.status_code)

    check()
    assert counts(store) == before
    assert "CSRF token missing or wrong" in caplog.text      # the check reached, not the
    assert "foreign or missing Origin" not in caplog.text    # Origin or session before it


def test_consent_form_with_its_token_answers_any_fields_without_a_crash(client, store):
    """Past the CSRF check (the candidate's own session): odd values in every field."""
    csrf = open_relay_page(client, store)
    base = client.app.state.relay.config.relay.public_base_url
    odd = st.text(max_size=30) | st.sampled_from(["\u00e9" * 3000, "\x00", "\ud7ff", "a" * 5000])

    @fuzz(40)
    @given(fields=st.fixed_dictionaries({}, optional={
        "text_sha256": odd, "lang": odd | st.sampled_from(["ja", "en"]),
        "agency": st.lists(odd | st.sampled_from(["agency-a", "agency-b"]), max_size=3),
        "desired_role": odd, "location": odd, "start_period": odd, "message": odd}))
    def check(fields):
        response = client.post("/relay/consent", data={"csrf": csrf, **fields},
                               headers={"Origin": base})
        seen[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, response.text[:200])

    seen: Counter[int] = Counter()
    check()
    assert 403 not in seen, seen      # every one got past the CSRF check


def test_console_sign_in_refuses_any_form_token_without_a_crash(client, store):
    accounts.create_account(store, "hanako", email="hanako@example.co.jp",
                            password_hash=hash_password("a long passphrase"), actor="test",
                            now=utcnow())
    page = client.get("/admin/sign-in")
    assert page.status_code == 200 and 'name="form_token"' in page.text
    assert client.cookies      # the sign-in nonce, so the token is compared

    @fuzz(40)
    @given(token=st.text(max_size=80) | st.just("é" * 64), name=st.text(max_size=20))
    def check(token, name):
        response = client.post("/admin/sign-in", data={"form_token": token, "name": name,
                                                       "password": "x"})
        assert response.status_code == 403

    before = counts(store)
    check()
    assert counts(store) == before


# --- schemathesis: the routes as their OpenAPI schema describes them ---------------------------
FUZZED = ("/webhooks/", "/agency/", "/r/", "/w/", "/u/", "/relay")


def narrowed_schema(app) -> dict[str, Any]:
    """The app's own schema, its paths limited to the unauthenticated routes, and the
    source/agency path parameters to the configured ones (random names only meet a 404)."""
    doc = json.loads(json.dumps(app.openapi()))
    doc["paths"] = {p: v for p, v in doc["paths"].items() if p.startswith(FUZZED)}
    enums = {"ats_type": ["greenhouse", "lever"], "source": ["gh", "lever"],
             "agency_id": ["agency-a"]}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in enums:
                    parameter["schema"] = {"type": "string", "enum": enums[parameter["name"]]}
    return doc


NO_HEAD_IDS = pytest.mark.filterwarnings("ignore:Duplicate Operation ID")  # GET+HEAD routes


@NO_HEAD_IDS
def test_openapi_documents_the_signed_bodies(app):
    doc = narrowed_schema(app)
    events = doc["paths"]["/agency/{agency_id}/events"]["post"]
    assert "X-Relay-Signature" in [p["name"] for p in events["parameters"]]
    body = events["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(body) and "events" in json.dumps(body)
    hook = doc["paths"]["/webhooks/{ats_type}/{source}"]["post"]
    assert "Signature" in [p["name"] for p in hook["parameters"]]
    assert "application/x-www-form-urlencoded" in json.dumps(doc["paths"]["/relay/consent"])


def both_modes(operation) -> st.SearchStrategy:
    """Requests that fit the schema and requests that break it on purpose."""
    return st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                     operation.as_strategy(GenerationMode.NEGATIVE))


@NO_HEAD_IDS
def test_schemathesis_finds_no_5xx_and_no_state_change(app, store):
    schema = schemathesis.openapi.from_dict(narrowed_schema(app))
    schema.app = app
    with store.begin() as conn:     # made on first use; an installation that mailed has it
        tokens.signing_key(app.state.relay.config, conn)
    before = counts(store)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        @fuzz(20)
        @given(case=both_modes(operation))
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 response.status_code, response.text[:200])

        check()
    assert counts(store) == before


# --- odd bytes in paths and query strings, console signed in -------------------------------------
ODD_GETS = ["/r/{}", "/w/{}.{}", "/u/{}", "/relay?lang={}&s={}", "/relay/static/{}",
            "/admin/sign-in?out={}", "/admin/language?to={}&next={}", "/admin/cases/{}",
            "/admin/cases/{}/mail.html", "/admin/static/{}", "/admin/report?format={}",
            "/admin/cases?q={}&state={}&source={}&since={}&until={}&page={}",
            "/admin/oidc/callback?state={}&code={}", "/admin/queue?{}={}"]


def sign_in(client, store) -> str:
    """Signs the client in to the console through its form; the console's CSRF token."""
    accounts.create_account(store, "hanako", email="hanako@example.co.jp",
                            password_hash=hash_password("a long passphrase"), actor="test",
                            now=utcnow())
    page = client.get("/admin/sign-in")
    token = page.text.split('name="form_token" value="', 1)[1].split('"', 1)[0]
    signed = client.post("/admin/sign-in", data={"form_token": token, "name": "hanako",
                                                  "password": "a long passphrase"})
    assert signed.status_code == 303, signed.text
    return client.get("/admin/").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_console_queue_reads_case_ids_of_any_text(client, store):
    csrf = sign_in(client, store)
    for case in ("\u00b2", "\u0663", "9" * 5000, "-1", "1.5", ""):
        response = client.post("/admin/queue", data={"csrf": csrf, "action": "approve",
                                                     "case": [case, "1"]})
        assert response.status_code < 500, (case, response.status_code)


def test_odd_content_length_is_no_5xx(client):
    for url in ("/webhooks/greenhouse/gh", "/agency/agency-a/events"):
        response = client.post(url, content=b"{}", headers={"Content-Length": b"\xb2"})
        assert response.status_code < 500, (url, response.status_code)


def test_odd_bytes_in_paths_and_queries_never_answer_5xx(client, store):
    sign_in(client, store)
    before = counts(store)
    audit = before.pop("audit_log", None)

    @fuzz(150)
    @given(template=st.sampled_from(ODD_GETS),
           parts=st.lists(st.binary(min_size=0, max_size=12) | st.sampled_from(
               [b"\xc3\xa9", b"\xff", b"\x00", b"..", b"%", "é".encode(), b"x.\xc3\xa9"]),
               min_size=6, max_size=6))
    def check(template, parts):
        url = template.format(*(quote_from_bytes(p, safe="") for p in parts))
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)

    check()
    after = counts(store)
    after.pop("audit_log", None)
    assert after == before and audit is not None   # reading writes nothing but the audit log


def agency_signed(raw: bytes) -> dict[str, str]:
    return {"X-Relay-Signature": sign(AGENCY_SECRET.encode(), raw, int(time.time()))}


@NO_HEAD_IDS
def test_schemathesis_bodies_signed_are_refused_or_stored_never_5xx(app, store, client):
    """The same generated bodies with a valid signature: past the signature check, the body
    models and the depth limit answer them (a model refusal is 4xx; a good one is stored)."""
    schema = schemathesis.openapi.from_dict(narrowed_schema(app))
    seen: Counter[int] = Counter()

    def fuzz_signed(path: str, url: str, signed) -> None:
        @fuzz(25)
        @given(case=both_modes(schema[path]["POST"]))
        def check(case):
            body = case.body       # a negative case may carry raw bytes
            raw = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
            response = client.post(url, content=raw, headers=signed(raw))
            seen[response.status_code] += 1
            assert response.status_code < 500, (url, response.status_code, response.text[:200])

        check()

    fuzz_signed("/agency/{agency_id}/events", "/agency/agency-a/events", agency_signed)
    fuzz_signed("/webhooks/{ats_type}/{source}", "/webhooks/greenhouse/gh", gh_signed)
    assert seen[401] == 0 and len(seen) >= 2, seen     # all verified; more than one answer
