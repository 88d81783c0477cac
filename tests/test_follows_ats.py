"""State follows the ATS (issue 13, items 5 and 6): a case the ATS cancelled is reopened by a
later rejection and mailed once; the same rejection repeated reopens nothing; a sent case is
never mailed again; a rejection turned into a withdrawal before sending is cancelled."""

from datetime import UTC, datetime, timedelta

import pytest

from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.approval import cancel as cancel_cases
from relay_core.cycle.ingest import REOPENED, cancel_pending, ingest
from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from relay_core.models import Category
from relay_core.store import cases
from tests.fakes import FakeConnector, event
from tests.test_pipeline import AGENCY, outbox_messages

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)          # Monday 11:00 JST
FIRST = datetime(2025, 6, 20, 1, 0, tzinfo=UTC)        # the first rejection
AGAIN = datetime(2025, 6, 24, 1, 0, tzinfo=UTC)        # the second, after an un-reject
UNREJECTED = "un-rejected in the ATS (webhook)"


@pytest.fixture
def config(make_config):
    # A delay, so "a new schedule" is visible: send_at follows the rejection it belongs to.
    return make_config({"agencies": [AGENCY], "schedule": {"delay_hours": 24}})


def cycle(config, store, connector, now):
    return run_cycle(config, store, {connector.name: connector},
                     transport=FileTransport(config.path(config.mail.outbox_dir)), now=now)


def unreject_by_webhook(store, app_id="1"):
    assert cancel_pending(store, "fake", [app_id], UNREJECTED, "webhook:fake") == 1


def test_unreject_run_rereject_is_mailed_once_with_the_new_schedule(config, store):
    connector = FakeConnector(events=[event("1", rejected_at=FIRST)])
    cycle(config, store, connector, now=FIRST + timedelta(hours=1))      # detected, waiting
    first = store.case_by_key("fake", "1")
    assert first.state == "scheduled"
    unreject_by_webhook(store)
    report = cycle(config, store, connector, now=NOW)
    assert report.sent == 0 and store.case_by_key("fake", "1").state == "cancelled"

    connector.events.append(event("1", rejected_at=AGAIN))            # rejected again
    report = cycle(config, store, connector, now=AGAIN + timedelta(hours=1))
    assert report.sources["fake"].reopened == 1 and report.sent == 0  # its delay runs anew
    case = store.case_by_key("fake", "1")
    assert case.id == first.id and case.state == "scheduled"
    assert case.rejected_at == AGAIN and case.send_at >= AGAIN + timedelta(hours=24)
    assert case.send_at > first.send_at and case.deadline_at > first.deadline_at

    report = cycle(config, store, connector, now=AGAIN + timedelta(days=2))
    assert report.sent == 1
    report = cycle(config, store, connector, now=AGAIN + timedelta(days=3))
    assert report.sent == 0
    assert len(outbox_messages(config)) == 1
    trail = [(r["action"], r["from_state"], r["to_state"], r["reason"])
             for r in store.audit_trail(case.id) if r["action"] != "annotated"]
    assert [t[1:3] for t in trail] == [
        (None, "detected"), ("detected", "scheduled"), ("scheduled", "cancelled"),
        ("cancelled", "detected"), ("detected", "scheduled"), ("scheduled", "sending"),
        ("sending", "sent")]
    assert trail[3][0] == "reopened" and trail[3][3] == REOPENED
    assert "rejected again" in REOPENED


def test_the_same_rejection_repeated_reopens_nothing(config, store):
    ingest(store, config, [event("1", rejected_at=FIRST)], now=NOW, actor="webhook:fake")
    unreject_by_webhook(store)
    before = store.audit_trail(store.case_by_key("fake", "1").id)
    for actor in ("webhook:fake", "poll:fake"):     # a redelivery, a poll's overlap
        report = ingest(store, config, [event("1", rejected_at=FIRST)], now=NOW, actor=actor)
        assert report.reopened == 0 and report.detected == 0 and report.already_known == 1
    # An older rejection (a stale poll page) does not reopen either.
    ingest(store, config, [event("1", rejected_at=FIRST - timedelta(days=1))], now=NOW,
           actor="poll:fake")
    case = store.case_by_key("fake", "1")
    assert case.state == "cancelled" and case.rejected_at == FIRST
    assert store.audit_trail(case.id) == before
    assert cycle(config, store, FakeConnector(), now=NOW + timedelta(days=3)).sent == 0
    assert outbox_messages(config) == []


def test_a_sent_case_unrejected_and_rejected_again_is_not_mailed_again(config, store):
    connector = FakeConnector(events=[event("1", rejected_at=FIRST)])
    assert cycle(config, store, connector, now=NOW).sent == 1
    assert cancel_pending(store, "fake", ["1"], UNREJECTED, "webhook:fake") == 0   # sent
    connector.events.append(event("1", rejected_at=AGAIN))
    report = cycle(config, store, connector, now=AGAIN + timedelta(days=2))
    assert report.sent == 0 and report.sources["fake"].reopened == 0
    case = store.case_by_key("fake", "1")
    assert case.state == "sent" and case.rejected_at == FIRST
    assert len(outbox_messages(config)) == 1


def test_a_case_once_queued_is_never_reopened(config, store):
    """Cancelled, but an email was queued for it once (a crash path of the outbox): the
    Message-ID is taken and the person may have it; a newer rejection changes nothing."""
    connector = FakeConnector(events=[event("1", rejected_at=FIRST)])
    assert cycle(config, store, connector, now=NOW).sent == 1
    case = store.case_by_key("fake", "1")
    with store.begin() as conn:       # force the state an ill-timed crash could leave
        conn.exec_driver_sql(f"UPDATE relay_cases SET state = 'cancelled' WHERE id = {case.id}")
        cases.audit(conn, case.id, "webhook:fake", "state", UNREJECTED, "sent", "cancelled")
    report = ingest(store, config, [event("1", rejected_at=AGAIN)], now=AGAIN,
                    actor="poll:fake")
    assert report.reopened == 0 and store.case_by_key("fake", "1").state == "cancelled"


def test_a_persons_cancel_stands(config, store):
    ingest(store, config, [event("1", rejected_at=FIRST)], now=NOW, actor="poll:fake")
    case = store.case_by_key("fake", "1")
    assert cancel_cases(store, [case.id], actor="cli:cancel", reason="HR: do not mail") == [
        case.id]
    report = ingest(store, config, [event("1", rejected_at=AGAIN)], now=AGAIN, actor="poll:fake")
    assert report.reopened == 0
    assert store.case_by_key("fake", "1").reason == "HR: do not mail"


def test_cancelled_by_the_recheck_is_reopened_and_decided_afresh(config, store):
    """Un-rejected, seen only by the re-check before sending (a poll-only source); the
    re-rejection is decided like a new case: here the person is now an agency's."""
    connector = FakeConnector(events=[event("1", rejected_at=FIRST), event("2")],
                              statuses={"1": ApplicationStatus.NOT_REJECTED})
    assert cycle(config, store, connector, now=NOW).cancelled == 1
    connector.statuses.clear()
    connector.events.append(event("1", rejected_at=AGAIN, agency_sourced=True))
    report = cycle(config, store, connector, now=AGAIN + timedelta(days=2))
    assert report.sources["fake"].reopened == 1 and report.sent == 0
    case = store.case_by_key("fake", "1")
    assert case.state == "skipped" and "agency" in case.reason


def test_withdrawal_between_detection_and_send_is_cancelled_with_the_reason(config, store):
    withdrew = ApplicationStatus.of(Category.CANDIDATE_WITHDREW, reason="Accepted another offer")
    connector = FakeConnector(events=[event("1"), event("2", email="b@example.com")],
                              statuses={"1": withdrew})
    report = cycle(config, store, connector, now=NOW + timedelta(days=1))
    assert report.sent == 1 and report.cancelled == 1
    case = store.case_by_key("fake", "1")
    assert case.state == "cancelled"
    assert "withdrawal" in case.reason and "never mailed" in case.reason
    assert "Accepted another offer" in case.reason
    assert [m["To"].addresses[0].addr_spec for m in outbox_messages(config)] == [
        "b@example.com"]


def test_withdrawal_while_still_rejected_in_status_is_cancelled(config, store):
    """Greenhouse's shape: the status stays `rejected`, only the reason's type changed."""
    withdrew = ApplicationStatus(ApplicationStatus.REJECTED.standing,
                                 category=Category.CANDIDATE_WITHDREW)
    connector = FakeConnector(events=[event("1")], statuses={"1": withdrew})
    report = cycle(config, store, connector, now=NOW + timedelta(days=1))
    assert report.sent == 0 and report.cancelled == 1
    assert "withdrawal" in store.case_by_key("fake", "1").reason


# --- HRMOS採用: the export file is all the ATS says --------------------------------------------
@pytest.fixture
def hrmos(make_config, tmp_path):
    from relay_core.connectors.hrmos_export import HrmosExport

    from tests.connectors.test_hrmos_export import row, write

    config = make_config({"agencies": [AGENCY], "schedule": {"delay_hours": 24},
                          "sources": [{"name": "hrmos", "type": "hrmos_export",
                                       "path": str(tmp_path / "export.tsv")}]})
    connector = HrmosExport(config.sources[0], config, 0)

    def export(*rows):
        write(tmp_path / "export.tsv", [row(*r[:2], **r[2]) for r in rows])

    return config, connector, export


def jst(day: int, hour: int = 11) -> datetime:      # 2025-06-<day> <hour>:00 JST, in UTC
    return datetime(2025, 6, day, hour - 9, tzinfo=UTC)


def test_hrmos_unreject_and_rereject_through_the_export(hrmos, store):
    config, connector, export = hrmos
    export(("1001", "不合格", {"rejected": "2025年6月20日"}))
    cycle(config, store, connector, now=jst(20))
    assert store.case_by_key("hrmos", "1001").state == "scheduled"
    export(("1001", "選考中", {"rejected": ""}))              # HR un-rejected: back in process
    report = cycle(config, store, connector, now=jst(20, 15))
    case = store.case_by_key("hrmos", "1001")
    assert report.sources["hrmos"].cancelled == 1 and case.state == "cancelled"
    assert report.cancelled == 1 and report.summary()["cancelled"] == 1   # shown by `run`
    assert "in process again" in case.reason
    export(("1001", "不合格", {"rejected": "2025年6月24日"}))  # rejected again, days later
    report = cycle(config, store, connector, now=jst(24))
    case = store.case_by_key("hrmos", "1001")
    assert report.sources["hrmos"].reopened == 1 and case.state == "scheduled"
    assert case.rejected_at == jst(24, 9) - timedelta(hours=9)   # 2025-06-24 00:00 JST
    assert cycle(config, store, connector, now=jst(26)).sent == 1
    export(("1001", "不合格", {"rejected": "2025年6月24日"}), ("1002", "選考中", {}))
    assert cycle(config, store, connector, now=jst(27)).sent == 0    # the same, re-exported
    assert len(outbox_messages(config)) == 1


def test_hrmos_row_changed_to_withdrawn_cancels(hrmos, store):
    config, connector, export = hrmos
    export(("1001", "不合格", {"rejected": "2025年6月20日"}))
    cycle(config, store, connector, now=jst(20))
    export(("1001", "辞退", {"withdrawn": "2025年6月20日", "rejected": ""}))
    report = cycle(config, store, connector, now=jst(20, 15))
    case = store.case_by_key("hrmos", "1001")
    assert report.sources["hrmos"].cancelled == 1 and case.state == "cancelled"
    assert "withdrawal" in case.reason and "辞退" in case.reason
    assert cycle(config, store, connector, now=jst(26)).sent == 0


def test_dry_run_shows_the_reopen_and_writes_nothing(config, store):
    from relay_core.cycle.plan import plan_cycle

    connector = FakeConnector(events=[event("1", rejected_at=FIRST)])
    cycle(config, store, connector, now=FIRST + timedelta(hours=1))
    unreject_by_webhook(store)
    connector.events.append(event("1", rejected_at=AGAIN))
    plan = plan_cycle(config, store, {"fake": connector}, now=AGAIN + timedelta(hours=1))
    assert plan.sources["fake"].reopened == 1
    assert [(c.application_id, c.outcome) for c in plan.cases] == [("1", "schedule")]
    assert store.case_by_key("fake", "1").state == "cancelled"


def test_a_person_rejected_twice_gets_one_email_even_when_the_first_is_taken_back(config, store):
    """Two applications of one person, both rejected: both are planned, and the one due first
    is mailed. If that one is un-rejected before its time, the other is still mailed (the
    chaos harness found the person lost when detection skipped the second for a planned
    first)."""
    connector = FakeConnector(events=[event("1", rejected_at=FIRST)])
    cycle(config, store, connector, now=FIRST + timedelta(hours=1))
    connector.events.append(event("2", rejected_at=FIRST + timedelta(hours=2)))  # a later poll
    cycle(config, store, connector, now=FIRST + timedelta(hours=3))
    assert [store.case_by_key("fake", a).state for a in ("1", "2")] == ["scheduled"] * 2
    unreject_by_webhook(store, "1")
    report = cycle(config, store, connector, now=NOW + timedelta(days=2))
    assert report.sent == 1 and len(outbox_messages(config)) == 1
    assert store.case_by_key("fake", "2").state == "sent"


def test_a_person_rejected_twice_due_together_is_mailed_once(config, store):
    connector = FakeConnector(events=[event("1", rejected_at=FIRST),
                                      event("2", rejected_at=FIRST + timedelta(hours=2))])
    cycle(config, store, connector, now=FIRST + timedelta(hours=3))
    report = cycle(config, store, connector, now=NOW + timedelta(days=2))
    assert report.sent == 1 and report.skipped_at_send == 1
    assert len(outbox_messages(config)) == 1
    states = sorted(store.case_by_key("fake", a).state for a in ("1", "2"))
    assert states == ["sent", "skipped"]
    skipped = next(store.case_by_key("fake", a) for a in ("1", "2")
                   if store.case_by_key("fake", a).state == "skipped")
    assert "mailed within the last 180 days" in store.audit_trail(skipped.id)[-1]["reason"]
    report = cycle(config, store, connector, now=NOW + timedelta(days=3))
    assert report.sent == 0 and len(outbox_messages(config)) == 1
