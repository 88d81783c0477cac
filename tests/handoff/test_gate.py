"""The consent gate and the field filter (reference/privacy_email.md sec. 6 items 1, 8, 9, 13)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from relay_core.errors import TransferRefused
from relay_core.mail import FileTransport
from relay_core.records.agencies import offered_agencies
from relay_core.records.consent.records import active_grant
from relay_core.records.handoff import payload
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.handoff.gate import authorise
from relay_core.store import tables as t
from relay_core.store.handoffs import Handoff
from tests.handoff.support import T0, agency, consented_case, withdraw

SAMPLE_ATS_RECORD = {
    "name": "山田 太郎", "email": "taro@example.com", "phone": "090-0000-0000",
    "job_title": "法人営業", "desired_role": "営業企画",
    "honseki": "大阪府", "本籍": "大阪府", "birthplace": "Osaka", "出身地": "大阪",
    "family_occupation": "自営業", "家族構成": "4人", "assets": "持ち家", "appearance": "…",
    "height_cm": "170", "photo_url": "x", "religion": "…", "political_party": "…",
    "favourite_books": "…", "union_membership": "yes", "health_status": "…",
    "medical_history": "…", "criminal_record": "none", "race": "…", "ethnicity": "…",
    "interviewer_notes": "weak on SQL", "interview_score": 3, "scorecard": {"a": 1},
    "面接評価": "B", "rating": 4, "evaluation": "…", "notes": "…",
}


def test_payload_builder_drops_banned_keys_even_when_allowlisted():
    allow = list(SAMPLE_ATS_RECORD)          # an administrator allowlisted everything
    kept = payload.filter_fields(SAMPLE_ATS_RECORD, allow)
    assert kept == {"name": "山田 太郎", "email": "taro@example.com",
                    "phone": "090-0000-0000", "job_title": "法人営業",
                    "desired_role": "営業企画"}
    for key in ("family_name", "given_name", "desired_income", "location", "start_period",
                "message"):
        assert payload.banned_category(key) is None, key


class Sink:
    """Stands in for `requests`: records what would have reached each agency."""

    def __init__(self):
        self.sent: list[dict] = []

    def post(self, url, data, headers, **kwargs):
        self.sent.append({"url": url, "doc": json.loads(data)})
        return SimpleNamespace(status_code=200, headers={})


def webhook_config(make_config, ids, **company):
    data = {"agencies": [agency(i, url=f"https://{i}.example/intake") for i in ids]}
    if company:
        data["company"] = company
    return make_config(data)


def test_a_handoff_without_consent_is_refused_and_logged(store, make_config, tmp_path,
                                                        caplog):
    config = webhook_config(make_config, ["agency-a", "agency-b"])
    case_id = consented_case(store, config, "1", ["agency-a"])
    with store.begin() as conn:
        consent_id = conn.execute(select(t.consents.c.id)).scalar_one()
        # A row nobody consented to (a bug, a hand edit): the gate must stop it.
        conn.execute(insert(t.handoffs).values(
            consent_id=consent_id, case_id=case_id, agency_id="agency-b", state="pending",
            attempts=0, next_attempt_at=T0, last_error="", created_at=T0, updated_at=T0))
    sink = Sink()
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=sink)
    assert out.delivered == 1 and out.refused == 1
    assert [s["url"] for s in sink.sent] == ["https://agency-a.example/intake"]
    actions = [(r["action"], r["reason"]) for r in store.audit_trail(case_id)]
    assert ("transfer_refused", "handoff 2: no active consent names agency agency-b") in actions
    assert "no active consent names agency agency-b" in caplog.text
    assert "example.com" not in caplog.text


def test_after_withdrawal_the_next_transfer_is_refused(store, make_config, tmp_path):
    config = webhook_config(make_config, ["agency-a"])
    case_id = consented_case(store, config, "1", ["agency-a"])
    withdraw(store, case_id)
    with store.engine.connect() as conn:
        handoff = Handoff(**conn.execute(select(t.handoffs)).one()._mapping)
        with pytest.raises(TransferRefused, match="no active consent"):
            authorise(conn, config, handoff)
    sink = Sink()
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=sink)
    assert sink.sent == [] and handoff.state == "stopped"


def test_an_incomplete_agency_receives_nothing(store, make_config, tmp_path):
    config = webhook_config(make_config, ["agency-a"])
    consented_case(store, config, "1", ["agency-a"])
    # The licence number disappeared from the configuration after the consent.
    broken = make_config({"agencies": [agency("agency-a", url="https://agency-a.example/in",
                                              licence_number="")]})
    sink = Sink()
    out = deliver_handoffs(store, broken, FileTransport(tmp_path / "o"), now=T0, session=sink)
    assert sink.sent == [] and out.refused == 1
    assert "licence_number is empty" in out.errors[0]


def test_an_empty_manifest_field_refuses_the_transfer(store, make_config, tmp_path):
    config = webhook_config(make_config, ["agency-a"])
    consented_case(store, config, "1", ["agency-a"])
    no_address = webhook_config(make_config, ["agency-a"], address="")
    sink = Sink()
    out = deliver_handoffs(store, no_address, FileTransport(tmp_path / "o"), now=T0,
                           session=sink)
    assert sink.sent == [] and "provider.address" in out.errors[0]
    # Fixed configuration: the refused handoff goes out at the next check.
    later = deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                             now=T0 + timedelta(hours=2), session=sink)
    assert later.delivered == 1 and len(sink.sent) == 1


def test_fields_widened_after_the_consent_are_not_sent(store, make_config, tmp_path):
    narrow = make_config({"agencies": [agency("agency-a", url="https://a.example/in",
                                              fields=["name", "email"])]})
    consented_case(store, narrow, "1", ["agency-a"],
                   preferences={"desired_role": "営業", "message": "よろしく"})
    wide = make_config({"agencies": [agency("agency-a", url="https://a.example/in",
                                            fields=["name", "email", "desired_role",
                                                    "message", "interview_notes"])]})
    sink = Sink()
    deliver_handoffs(store, wide, FileTransport(tmp_path / "o"), now=T0, session=sink)
    assert set(sink.sent[0]["doc"]["candidate"]) == {"name", "email"}


# --- property: no field ever reaches an agency without consent --------------------------------
AGENCY_IDS = ["ag-a", "ag-b", "ag-c", "ag-d"]
FIELD_POOL = ["name", "email", "job_title", "desired_role", "location", "message",
              "interview_notes", "health"]

scenario = st.fixed_dictionaries({
    "fields": st.dictionaries(st.sampled_from(AGENCY_IDS),
                              st.lists(st.sampled_from(FIELD_POOL), min_size=1, unique=True),
                              min_size=1),
    "candidates": st.lists(st.tuples(
        st.sets(st.sampled_from(AGENCY_IDS)),        # agencies ticked (maybe none)
        st.sampled_from(["never", "before", "between"]),  # when they withdraw
        st.booleans()), min_size=1, max_size=4),     # the agency set changes later
})


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(scenario)
def test_no_field_reaches_an_agency_without_consent(store, make_config, tmp_path, data):
    config = make_config({"agencies": [agency(a, url=f"https://{a}.example/in", fields=f)
                                       for a, f in data["fields"].items()]})
    # An agency whose every field is banned receives nothing and is not offered at all.
    offered = {a.id for a in offered_agencies(config)}
    # Later configuration: some agencies dropped, every remaining one allowlists everything.
    later = make_config({"agencies": [agency(a, url=f"https://{a}.example/in",
                                             fields=FIELD_POOL)
                                      for a in AGENCY_IDS[: len(data["fields"])]]})
    sink = Sink()
    cases = []
    with store.engine.connect() as conn:
        start = conn.execute(select(t.relay_cases.c.id).order_by(
            t.relay_cases.c.id.desc())).scalars().first() or 0
    for n, (ticked, when, reconfigure) in enumerate(data["candidates"]):
        chosen = sorted(a for a in ticked if a in offered)
        case_id = consented_case(store, config, f"p{start}-{n}", chosen)
        cases.append((case_id, chosen, when, reconfigure))
    consented_fields = {}
    with store.engine.connect() as conn:
        for case_id, chosen, _, _ in cases:
            for a in chosen:
                consented_fields[(case_id, a)] = set(active_grant(conn, case_id, a).fields)
    for case_id, chosen, when, _ in cases:
        if chosen and when == "before":
            withdraw(store, case_id)
    first_config = later if any(c[3] for c in cases) else config
    before = len(sink.sent)
    deliver_handoffs(store, first_config, FileTransport(tmp_path / "o"), now=T0, session=sink)
    for case_id, chosen, when, _ in cases:
        if chosen and when == "between":
            withdraw(store, case_id)
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                     now=T0 + timedelta(days=1), session=sink)
    withdrawn_before = {c[0] for c in cases if c[2] == "before" and c[1]}
    with store.engine.connect() as conn:
        refs = {r.reference: (r.handoff_id) for r in conn.execute(select(t.handoff_references))}
        handoffs = {r.id: r for r in conn.execute(select(t.handoffs))}
    for item in sink.sent[before:]:
        doc = item["doc"]
        handoff = handoffs[refs[doc["reference"]]]
        key = (handoff.case_id, handoff.agency_id)
        if doc["type"] == payload.DELETION_TYPE:
            assert "candidate" not in doc
            continue
        assert key in consented_fields, "sent to an agency the candidate did not tick"
        assert handoff.case_id not in withdrawn_before
        assert set(doc["candidate"]) <= consented_fields[key]
        assert not {"interview_notes", "health"} & set(doc["candidate"])
