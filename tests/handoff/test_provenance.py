"""Issue 11, point 2: nothing outside the consent. Every item an agency receives, the provenance
of the APPI Art. 30 manifest included (job applied for, decision date, consent date), is an
item the consent page listed for that agency, and is recorded in the provision record and the
incident export."""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from email import message_from_bytes, policy
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from relay_core.mail import FileTransport
from relay_core.models import CaseState
from relay_core.records.agencies import consented_items
from relay_core.records.consent import records, tokens
from relay_core.records.consent.disclosure import PageRenderer, field_label
from relay_core.records.handoff.deliver import deliver_handoffs
from relay_core.records.items import DESCRIBABLE, PROVENANCE_ITEMS
from relay_core.records.retention import export_incident
from relay_core.store import tables as t
from tests.fakes import event
from tests.handoff.support import T0, agency, consented_case, store_case

COUNTER = itertools.count(1)


class Sink:
    def __init__(self):
        self.docs: list[dict] = []

    def post(self, url, data, headers, **kwargs):
        self.docs.append(json.loads(data))
        return SimpleNamespace(status_code=200, headers={})


def test_point_2_the_manifest_no_longer_carries_what_the_consent_does_not_list(
        store, make_config, tmp_path):
    """The audit's reproduction: an agency allowlisting name, email, role, location and message
    received the job title and decision date without a consent listing them. Now the consent
    lists them (and records them); a consent that does not, gets a manifest without them."""
    config = make_config({"agencies": [agency("agency-a", url="https://a.example/in",
                                              fields=["name", "email", "desired_role",
                                                      "location", "message"])]})
    new = consented_case(store, config, "1", ["agency-a"])
    old = consented_case(store, config, "2", ["agency-a"])
    with store.begin() as conn:   # a consent given before the page listed the provenance
        conn.execute(update(t.consent_agencies).where(
            t.consent_agencies.c.consent_id == select(t.consents.c.id).where(
                t.consents.c.case_id == old).scalar_subquery())
            .values(fields_json=json.dumps(["name", "email", "desired_role", "location",
                                            "message"])))
    sink = Sink()
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=sink)
    by_case = {}
    with store.engine.connect() as conn:
        refs = {r.reference: r.handoff_id for r in conn.execute(select(t.handoff_references))}
        cases = {r.id: r.case_id for r in conn.execute(select(t.handoffs))}
    for doc in sink.docs:
        by_case[cases[refs[doc["reference"]]]] = doc
    assert "法人営業" in by_case[new]["manifest"]["acquisition"]
    assert set(PROVENANCE_ITEMS) <= set(by_case[new]["items"])
    assert "法人営業" not in json.dumps(by_case[old], ensure_ascii=False)
    assert by_case[old]["manifest"]["decided_on"] == ""
    assert not set(PROVENANCE_ITEMS) & set(by_case[old]["items"])
    assert by_case[old]["manifest"]["acquisition"].startswith("本人が株式会社サンプルの求人に")
    rows = {r.case: r.items for r in export_incident(store, config, T0 - timedelta(days=1),
                                                     T0 + timedelta(days=1))
            if r.what.startswith("transfer")}
    assert rows == {"fake/1": by_case[new]["items"], "fake/2": by_case[old]["items"]}


# --- the property -------------------------------------------------------------------------
BANNED = ["interview_notes", "health"]
scenario = st.fixed_dictionaries({
    "channel": st.sampled_from(["webhook", "email"]),
    "allowlist": st.lists(st.sampled_from([*DESCRIBABLE, *BANNED]), min_size=1, unique=True),
    # What the agency allowlisted when the candidate consented (a subset: lists grow later),
    # and whether the consent predates the provenance on the consent page.
    "earlier": st.lists(st.booleans(), min_size=len(DESCRIBABLE) + 2,
                        max_size=len(DESCRIBABLE) + 2),
    "old_consent": st.booleans(),
    "job": st.one_of(st.just(""), st.text("アイウエオカキクケコ営業職", min_size=1, max_size=6)),
    "days_before": st.integers(1, 13),
    "prefs": st.fixed_dictionaries({k: st.booleans() for k in
                                    ("desired_role", "location", "start_period", "message")}),
})


@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario)
def test_point_2_delivered_items_are_a_subset_of_the_consented_items(store, make_config,
                                                                     tmp_path, data):
    """Point 2, property: for random allowlists and cases, the delivered document's items
    (candidate fields and provenance alike) are a subset of the items the consent covers; each
    consented item is listed for that agency on the consent page; the provision record and
    the incident export record exactly the delivered items; and no value of an item outside
    the consent appears anywhere in what the agency received."""
    n = next(COUNTER)
    later = data["allowlist"]
    earlier = [f for f, keep in zip([*DESCRIBABLE, *BANNED], data["earlier"], strict=True)
               if keep and f in later] or later[:1]
    outbox = tmp_path / f"o{n}"
    spec = dict(url="https://a.example/in") if data["channel"] == "webhook" else {}
    at_consent = make_config({"agencies": [agency("agency-a", data["channel"], fields=earlier,
                                                  **spec)],
                              "mail": {"outbox_dir": str(outbox)}})
    now_config = make_config({"agencies": [agency("agency-a", data["channel"], fields=later,
                                                  **spec)],
                              "mail": {"outbox_dir": str(outbox)}})
    offered = consented_items(at_consent.agencies[0])
    if not [f for f in earlier if f not in BANNED]:
        return   # nothing sendable: the agency is not offered at all (tested elsewhere)
    markers = {"name": f"NM{n}Q", "email": f"em{n}q@example.com", "job_title": data["job"]
               and f"{data['job']}{n}Q", "desired_role": f"DR{n}Q", "location": f"LC{n}Q",
               "start_period": f"SP{n}Q", "message": f"MS{n}Q"}
    prefs = {k: markers[k] for k, on in data["prefs"].items() if on}
    rejected_at = T0 - timedelta(days=data["days_before"])
    case_id = _consented(store, at_consent, n, markers, rejected_at, prefs)
    if data["old_consent"]:
        with store.begin() as conn:
            conn.execute(update(t.consent_agencies).where(
                t.consent_agencies.c.consent_id == select(t.consents.c.id).where(
                    t.consents.c.case_id == case_id).scalar_subquery())
                .values(fields_json=json.dumps([f for f in earlier if f not in BANNED])))
    with store.engine.connect() as conn:
        consented = set(records.consent_for_case(conn, case_id).agencies[0].fields)

    # Each consented item is on the consent page, in that agency's own section.
    page = str(PageRenderer(at_consent).consent_text("ja").html)
    section = re.search(r'<article class="agency" aria-labelledby="agency-agency-a">(.*?)'
                        r"</article>", page, re.S).group(1)
    for item in offered:
        assert field_label(item, "ja") in section, item

    sink = Sink()
    # Two days after the consent, so that the day of the transfer (which the agency knows
    # anyway) is not the consent's day, and a leaked consent date would show.
    sent_at = T0 + timedelta(days=2)
    deliver_handoffs(store, now_config, FileTransport(outbox), now=sent_at, session=sink)
    if data["channel"] == "webhook":
        [doc] = [d for d in sink.docs if d["type"] == "candidate.handoff"]
        received = json.dumps(doc, ensure_ascii=False)
        delivered = set(doc["items"])
        assert delivered == set(doc["candidate"]) | {
            i for i, k in (("job_title", "job_title"), ("decision_date", "decided_on"),
                           ("consent_date", "consented_on")) if doc["manifest"][k]}
    else:
        [mail] = [message_from_bytes(p.read_bytes(), policy=policy.default)
                  for p in outbox.glob("*.eml") if "intake@" in p.read_text(errors="ignore")]
        received = mail.get_body(("plain",)).get_content()
        delivered = None

    with store.engine.connect() as conn:
        [record] = conn.execute(select(t.provision_records).where(
            t.provision_records.c.case_id == case_id)).all()
    recorded = set(json.loads(record.items_json))
    delivered = recorded if delivered is None else delivered
    assert delivered <= consented, delivered - consented
    assert recorded == delivered
    [row] = [r for r in export_incident(store, now_config, sent_at - timedelta(hours=1),
                                        sent_at + timedelta(hours=1))
             if r.what.startswith("transfer") and r.case == f"fake/p{n}"]
    assert set(row.items) == delivered

    # Independently of any list: no value outside the consent reached the agency.
    jst = timedelta(hours=9)
    values = {**markers, "decision_date": (rejected_at + jst).date().isoformat(),
              "consent_date": (T0 + jst).date().isoformat()}
    for item, value in values.items():
        if value and item not in consented:
            assert value not in received, (item, value)
    for item in BANNED:
        assert f'"{item}"' not in received


def _consented(store, config, n, markers, rejected_at, prefs) -> int:
    from relay_core.models import Person

    base = event(f"p{n}", rejected_at=rejected_at, email=markers["email"])
    ev = base.model_copy(update={"job_title": markers["job_title"] or "",
                                 "person": Person(full_name=markers["name"],
                                                  emails=[markers["email"]], language="ja")})
    with store.begin() as conn:
        case_id = store.insert_case(conn, ev, email=markers["email"], language="ja", now=T0,
                                    actor="test")
        store.transition(conn, case_id, CaseState.SCHEDULED, actor="test", send_at=T0, now=T0)
        store.transition(conn, case_id, CaseState.SENDING, actor="test", now=T0)
        store.transition(conn, case_id, CaseState.SENT, actor="test", sent_at=T0, now=T0)
        key = tokens.signing_key(config, conn)
        token = tokens.mint(conn, key, case_id, "consent", timedelta(days=30), T0)
        invitation = tokens.verify(conn, key, token, "consent", T0)
        case = store_case(conn, case_id)
        text = PageRenderer(config).consent_text("ja")
        records.record_consent(store, conn, config, invitation=invitation, case=case,
                               agency_ids=["agency-a"], text=text, preferences=prefs, now=T0)
    return case_id
