"""The transport-free connector base: pages that keep bad records as problems, `mode`, and the
webhook pipeline that verifies a delivery before any of it is parsed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from relay_core.contract.base import (
    ApplicationStatus,
    Connector,
    Page,
    Standing,
    WebhookResult,
    WebhookSettings,
    header,
    signature_matches,
)
from relay_core.errors import ConfigError, FatalError, RecordError, SignatureError
from relay_core.models import Category, Person, RejectionEvent
from relay_core.secrets import SecretRef

KEY = "test-signing-key"


def event(app_id: str) -> RejectionEvent:
    return RejectionEvent(ats="signed", source="src", application_id=app_id,
                          person=Person(full_name="A", emails=["a@example.com"]),
                          category=Category.WE_REJECTED,
                          rejected_at=datetime(2026, 9, 1, tzinfo=UTC))


class SignedSettings(WebhookSettings):
    signing_key: SecretRef | None = None
    account: SecretRef | str = "public-account"
    webhook_secret_key = "signing_key"



class Signed(Connector):
    """Signs deliveries with an `X-Signature` header over the raw body."""

    type = "signed"
    Settings = SignedSettings

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.translated: list[dict] = []

    def poll(self, cursor) -> Iterator[Page]:
        yield Page([], cursor)

    def verify_webhook(self, headers, raw_body):
        if not signature_matches(self.webhook_key, raw_body, headers.get("X-Signature", "")):
            raise SignatureError("bad signature")

    def translate_webhook(self, headers, body):
        self.translated.append(body)
        return WebhookResult(str(body.get("kind")))


@pytest.fixture
def signed(make_config, monkeypatch):
    monkeypatch.setenv("SIGNED_KEY", KEY)

    def make(**options) -> Signed:
        config = make_config({"sources": [{"name": "src", "type": "signed", **options}]})
        return Signed(config.sources[0], config, 0)

    return make


def sign(body: bytes, key: str = KEY) -> dict[str, str]:
    return {"X-Signature": hmac.new(key.encode(), body, hashlib.sha256).hexdigest()}


# --- pages ------------------------------------------------------------------------------------
def test_a_bad_record_is_a_problem_of_its_page_not_a_failed_poll():
    def translate(record: str) -> RejectionEvent | None:
        if record == "bad":
            raise RecordError(f"record {record}", "no id")
        return None if record == "hired" else event(record)

    page = Page.of(["1", "bad", "hired", "2"], translate, cursor="c")
    assert [e.application_id for e in page.events] == ["1", "2"]
    assert [str(p) for p in page.problems] == ["record bad: no id"]
    assert (page.cursor, page.size) == ("c", 3)


def test_other_errors_are_not_swallowed():
    def translate(record: str) -> RejectionEvent:
        raise FatalError("the ATS answered nonsense")

    with pytest.raises(FatalError):
        Page.of(["1"], translate)


def test_only_a_rejection_by_us_is_still_rejected():
    assert [ApplicationStatus.of(c).standing for c in Category] == [
        Standing.REJECTED if c is Category.WE_REJECTED else Standing.NOT_REJECTED
        for c in Category]
    # The category and the reason's name travel with the answer (the re-check compares them).
    withdrew = ApplicationStatus.of(Category.CANDIDATE_WITHDREW, reason="辞退")
    assert (withdrew.category, withdrew.reason) == (Category.CANDIDATE_WITHDREW, "辞退")
    assert withdrew.elsewhere() == ApplicationStatus(Standing.ACTIVE_ELSEWHERE,
                                                     Category.CANDIDATE_WITHDREW, "辞退")
    assert ApplicationStatus.REJECTED == ApplicationStatus(Standing.REJECTED)


# --- settings ---------------------------------------------------------------------------------
def test_a_key_typed_secretref_refuses_a_plain_secret_without_echo(signed):
    with pytest.raises(ConfigError) as info:
        signed(signing_key="s3cr3t-plaintext-value")
    assert "sources[0].signing_key" in str(info.value)
    assert "s3cr3t-plaintext-value" not in str(info.value)
    assert signed(signing_key="env:SIGNED_KEY").settings.signing_key.reference == (
        "env:SIGNED_KEY")


def test_a_key_typed_secretref_or_str_takes_either():
    assert SignedSettings(account="acme").account == "acme"
    assert SignedSettings(account="env:ACCOUNT").account == SecretRef("account", "env:ACCOUNT")


# --- mode -------------------------------------------------------------------------------------
def test_mode_follows_the_secret_unless_chosen(signed):
    assert (signed().polls, signed().receives_webhooks) == (True, False)
    both = signed(signing_key="env:SIGNED_KEY")
    assert (both.mode, both.polls, both.receives_webhooks) == ("both", True, True)
    hooks = signed(mode="webhook", signing_key="env:SIGNED_KEY")
    assert (hooks.polls, hooks.receives_webhooks) == (False, True)
    with pytest.raises(ConfigError, match="signing_key is required"):
        signed(mode="both")


def test_a_connector_without_webhook_settings_only_polls(make_config):
    class Plain(Connector):
        type = "plain"

        def poll(self, cursor):
            yield Page([], None)

    config = make_config({"sources": [{"name": "p", "type": "plain"}]})
    plain = Plain(config.sources[0], config, 0)
    assert (plain.mode, plain.polls, plain.receives_webhooks) == ("poll", True, False)
    with pytest.raises(FatalError, match="does not receive webhooks"):
        plain.parse_webhook({}, b"{}")


# --- the webhook pipeline ---------------------------------------------------------------------
def test_a_signed_delivery_is_translated(signed):
    connector = signed(signing_key="env:SIGNED_KEY")
    body = b'{"kind": "reject"}'
    assert connector.parse_webhook(sign(body), body).kind == "reject"
    assert connector.translated == [{"kind": "reject"}]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"kind": "reject"}', b""])
def test_a_bad_signature_is_refused_before_the_body_is_read(signed, body):
    connector = signed(signing_key="env:SIGNED_KEY")
    for headers in (sign(body, "wrong-key"), {}):
        with pytest.raises(SignatureError):      # never a FatalError about the JSON
            connector.parse_webhook(headers, body)
    assert connector.translated == []


def test_a_signed_body_that_is_not_a_json_object_is_fatal(signed):
    connector = signed(signing_key="env:SIGNED_KEY")
    for body in (b"not json", b"[1, 2]"):
        with pytest.raises(FatalError) as info:
            connector.parse_webhook(sign(body), body)
        assert not isinstance(info.value, SignatureError)


def test_the_default_verification_refuses_everything(make_config, monkeypatch):
    monkeypatch.setenv("SIGNED_KEY", KEY)

    class Unverified(Signed):
        verify_webhook = Connector.verify_webhook

    config = make_config({"sources": [{"name": "src", "type": "signed",
                                       "signing_key": "env:SIGNED_KEY"}]})
    connector = Unverified(config.sources[0], config, 0)
    body = b'{"kind": "reject"}'
    with pytest.raises(SignatureError):
        connector.parse_webhook(sign(body), body)
    assert connector.translated == []


def test_the_signing_secret_is_resolved_once_and_lazily(signed, monkeypatch):
    monkeypatch.delenv("SIGNED_KEY")
    connector = signed(signing_key="env:SIGNED_KEY")   # not resolved while building
    monkeypatch.setenv("SIGNED_KEY", KEY)
    assert connector.webhook_key == KEY.encode()
    monkeypatch.setenv("SIGNED_KEY", "changed")
    assert connector.webhook_key == KEY.encode()


def test_header_names_are_case_insensitive():
    assert header({"signature": "x"}, "Signature") == "x"
    assert header({"Signature": "y"}, "Signature") == "y"
    assert header({}, "Signature") is None


def test_signature_matches_is_case_and_blank_tolerant():
    digest = hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
    assert signature_matches(b"k", b"body", f" {digest.upper()}\n")
    assert not signature_matches(b"k", b"body!", digest)
    assert not signature_matches(b"k", b"body", "ｆｆ")          # not ASCII: no crash
