"""Records that come out of the store never show a candidate's data in `repr` (STYLE.md item 9):
a record ends up in a log line or a traceback sooner or later."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from relay_core.mail import FileTransport
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.retention import record_incident
from relay_core.store import consents, handoffs, ledger, retention, utcnow
from tests.handoff.support import SECRET, T0, agency, consented_case, withdraw

NAME, EMAIL, MESSAGE = "山田 太郎", "cand1@example.com", "よろしくお願いします"
PERSONAL = (NAME, "山田", "太郎", EMAIL, "cand1@", MESSAGE, "東京都", "営業企画", "candidate c1")


def assert_no_personal_data(record: object) -> None:
    text = repr(record)
    for value in PERSONAL:
        assert value not in text, f"{value!r} in {text}"


def test_constructed_records_keep_personal_fields_out_of_repr():
    records = [
        consents.ConsentRecord(
            id=1, case_id=2, invitation_id=3, source="greenhouse", application_id="app-9",
            candidate_id="candidate c1", text_version="1+abc", text_sha256="0" * 64,
            language="ja", method="web form POST", consented_at=T0, withdrawn_at=None,
            withdrawal_method=None,
            agencies=(consents.ConsentAgency("agency-a", "株式会社A", ["name", "email"]),)),
        consents.ConsentPreferences(desired_role="営業企画", location="東京都",
                                    message=MESSAGE),
        handoffs.ProvisionRecord(
            handoff_id=1, consent_id=1, case_id=2, consent_reference="consent-1-00",
            consented_at=T0, agency_id="agency-a", recipient_legal_name="株式会社A",
            recipient_address="東京都港区", recipient_country="JP",
            candidate_ref="fake/1 (candidate c1)", items=["email", "name"], channel="email",
            destination=EMAIL, provided_at=T0, keep_until=T0, id=5),
        retention.SentMail(T0, "confirmation", "fake", "1", EMAIL),
        retention.LoggedIncident(T0, "fake", "1", f"misdirected to {EMAIL}", EMAIL),
        retention.SentNotice(T0, "agency-a", "fake", "1"),
    ]
    for record in records:
        assert_no_personal_data(record)
    assert "ConsentRecord(id=1, case_id=2" in repr(records[0])
    assert "filled=['desired_role', 'location', 'message']" in repr(records[1])


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)


class Sink:
    def post(self, url, data, headers, **kwargs):
        return SimpleNamespace(status_code=200, headers={})


def test_records_read_back_from_the_store_show_ids_not_people(store, make_config, tmp_path):
    config = make_config({"agencies": [agency("agency-a", url="https://a.example/in"),
                                       agency("agency-b", url="https://b.example/in")]})
    case_id = consented_case(store, config, "1", ["agency-a", "agency-b"],
                             preferences={"desired_role": "営業企画", "location": "東京都",
                                          "message": MESSAGE})
    with store.engine.connect() as conn:
        [first, _] = handoffs.pending_handoffs(conn, T0)
        prefs = consents.preferences(conn, first.consent_id)   # the withdrawal deletes them
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=Sink())
    withdraw(store, case_id, T0 + timedelta(hours=1))
    assert record_incident(store, case_id, f"misdirected to {EMAIL}", actor="test")
    later = T0 + timedelta(days=1)
    with store.engine.connect() as conn:
        read = [
            consents.consent_for_case(conn, case_id),
            prefs,
            first,
            handoffs.handoff(conn, first.id),
            *handoffs.pending_deletion_notices(conn, later),
            *handoffs.provision_records_between(conn, T0 - timedelta(days=1), later),
            # record_incident stamps the real time, not the test's clock
            *retention.incidents_between(conn, T0, utcnow() + timedelta(days=1)),
        ]
    assert [type(r).__name__ for r in read] == [
        "ConsentRecord", "ConsentPreferences", "Handoff", "Handoff", "DeletionNotice",
        "DeletionNotice", "ProvisionRecord", "ProvisionRecord", "LoggedIncident"]
    for record in read:
        assert_no_personal_data(record)


def test_a_credit_entry_and_a_ledger_event_are_identifiers_and_numbers():
    entry = ledger.CreditEntry("agency-a", 7, "per_placement", 1, 300000, "placement", T0, T0)
    event = ledger.LedgerEvent(1, "agency-a", "evt-1", "placed", "cr_x", 2, 3, T0, T0, "api")
    assert repr(entry).startswith("CreditEntry(agency_id='agency-a', event_row_id=7")
    assert repr(event).startswith("LedgerEvent(id=1, agency_id='agency-a'")
