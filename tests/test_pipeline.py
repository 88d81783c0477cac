"""The core against an in-memory connector: detection, decisions, sending, idempotency."""

import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from relay_core.contract.base import ApplicationStatus
from relay_core.cycle.ingest import cancel_pending, ingest
from relay_core.cycle.run import run_cycle
from relay_core.errors import RetriableError
from relay_core.mail.transports import FileTransport
from relay_core.models import CaseState, Category
from relay_core.store import open_store
from tests.fakes import FakeConnector, event

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)   # Monday 11:00 JST


# The relay needs an agency that can receive (issue 11, point 3): one whose own form the
# candidate is sent to, so nothing here is pushed anywhere.
AGENCY = {"id": "agency-r", "legal_name": "株式会社エージェントR", "address": "東京都港区1-1",
          "representative": "代表取締役 佐藤一郎", "country": "JP",
          "licence_number": "13-ユ-000000", "deletion_contact": "privacy@agency-r.example",
          "channel": "redirect", "register_url": "https://agency-r.example/register"}


@pytest.fixture
def config(make_config):
    return make_config({"agencies": [AGENCY]})


def outbox_messages(config):
    folder = config.path(config.mail.outbox_dir)
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]


def cycle(config, store, connector, now=NOW):
    return run_cycle(config, store, {connector.name: connector},
                     transport=FileTransport(config.path(config.mail.outbox_dir)), now=now)


def test_rejection_becomes_one_sent_email_with_an_audit_trail(config, store):
    connector = FakeConnector(events=[event("1"), event("2", email="hanako@example.com",
                                                        language="en")])
    report = cycle(config, store, connector)
    assert report.sent == 2 and report.ok
    messages = outbox_messages(config)
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == [
        "hanako@example.com", "taro@example.com"]
    case = store.case_by_key("fake", "1")
    assert case.state == "sent" and case.message_id
    audit = store.audit_trail(case.id)
    trail = [(r["from_state"], r["to_state"]) for r in audit if r["action"] != "annotated"]
    assert trail == [(None, "detected"), ("detected", "scheduled"), ("scheduled", "sending"),
                     ("sending", "sent")]
    # Written back to the ATS once, and recorded.
    assert [r["action"] for r in audit].count("annotated") == 1
    assert [a for a, _ in connector.annotations] == ["1", "2"]
    body = next(m for m in messages if m["To"].addresses[0].addr_spec == "taro@example.com")
    text = body.get_body(("plain",)).get_content()
    assert "山田" in text and "https://relay.example.co.jp/r/" in text


def test_second_run_sends_nothing_and_changes_nothing(config, store):
    connector = FakeConnector(events=[event("1")])
    cycle(config, store, connector)
    before = store.counts_by_state()
    connector.events.append(event("1"))          # the ATS reports the same rejection again
    report = cycle(config, store, connector)
    assert report.sent == 0
    assert store.counts_by_state() == before
    assert len(outbox_messages(config)) == 1


def test_same_event_from_poll_and_webhook_is_one_case(config, store):
    ingest(store, config, [event("1")], now=NOW, actor="webhook:fake")
    ingest(store, config, [event("1")], now=NOW, actor="poll:fake")
    assert store.counts_by_state() == {"scheduled": 1}


def test_withdrawal_and_other_skips_are_recorded_with_reasons(config, store):
    connector = FakeConnector(events=[
        event("1", category=Category.CANDIDATE_WITHDREW),
        event("2", rejected_at=NOW - timedelta(days=40)),
        event("3", agency_sourced=True)])
    report = cycle(config, store, connector)
    assert report.sent == 0 and outbox_messages(config) == []
    reasons = {store.case_by_key("fake", a).reason for a in "123"}
    assert any("withdrew" in r for r in reasons)
    assert any("40" in r or "14 days" in r for r in reasons)
    assert any("agency" in r for r in reasons)


def test_unrejected_before_sending_is_cancelled(config, store):
    connector = FakeConnector(events=[event("1"), event("2", email="b@example.com")],
                              statuses={"2": ApplicationStatus.NOT_REJECTED})
    report = cycle(config, store, connector)
    assert report.sent == 1 and report.cancelled == 1
    assert store.case_by_key("fake", "2").state == "cancelled"
    assert connector.recheck_calls == [["1", "2"]]        # one batched call


def test_recheck_failure_postpones_instead_of_sending_blind(config, store):
    class Down(FakeConnector):
        def recheck(self, application_ids):
            raise RetriableError("HTTP 503")

    report = cycle(config, store, Down(events=[event("1")]))
    assert report.sent == 0 and "postponed" in report.errors[0]
    assert store.case_by_key("fake", "1").state == "scheduled"


def test_webhook_unreject_cancels_a_pending_send(make_config, store):
    config = make_config({"schedule": {"delay_hours": 24}})
    ingest(store, config, [event("1")], now=NOW, actor="webhook:fake")
    assert cancel_pending(store, "fake", ["1"], "un-rejected", "webhook:fake") == 1
    report = cycle(config, store, FakeConnector(), now=NOW + timedelta(days=2))
    assert report.sent == 0 and store.case_by_key("fake", "1").state == "cancelled"


def test_not_sent_before_its_time(make_config, store):
    config = make_config({"schedule": {"delay_hours": 24, "business_hours": "10:00-18:00"}})
    connector = FakeConnector(events=[event("1", rejected_at=NOW)])
    assert cycle(config, store, connector).sent == 0
    assert cycle(config, store, connector, now=NOW + timedelta(hours=23)).sent == 0
    assert cycle(config, store, connector, now=NOW + timedelta(hours=24)).sent == 1


def test_same_person_is_mailed_once_within_the_cooldown(config, store):
    connector = FakeConnector(events=[event("1"), event("2")])     # same address twice
    report = cycle(config, store, connector)
    assert report.sent == 1
    assert "same person" in store.case_by_key("fake", "2").reason


def test_no_invitation_means_no_link(config, store):
    cycle(config, store, FakeConnector(events=[event("1", no_invitation=True)]))
    [message] = outbox_messages(config)
    assert "/r/" not in message.get_body(("plain",)).get_content()


def test_two_runs_at_once_never_send_twice(config, store_url):
    events = [event(str(i), email=f"p{i}@example.com") for i in range(60)]
    reports, errors = [], []

    def run_one():
        store = open_store(store_url)
        try:
            reports.append(cycle(config, store, FakeConnector(events=events)))
        except Exception as exc:  # the loser of the lock
            errors.append(exc)

    threads = [threading.Thread(target=run_one) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r.sent for r in reports) == 60
    assert len(outbox_messages(config)) == 60
    assert all(type(e).__name__ == "LockedError" for e in errors)


def test_same_message_id_for_the_same_case(config, store, tmp_path):
    cycle(config, store, FakeConnector(events=[event("1")]))
    first = store.case_by_key("fake", "1").message_id
    from relay_core.mail.message import make_message_id

    assert first == make_message_id("fake:1", "rejection", "example.co.jp")


def test_held_cases_wait_for_approval_and_can_be_cancelled(make_config, store):
    from relay_core.cycle.approval import approve, cancel

    config = make_config({"schedule": {"hold_for_approval": True}})
    connector = FakeConnector(events=[event("1"), event("2", email="b@example.com"),
                                      event("3", email="c@example.com")])
    assert cycle(config, store, connector).sent == 0
    assert store.counts_by_state() == {"held": 3}
    held = [store.case_by_key("fake", a).id for a in "123"]
    assert cancel(store, [held[2]], "cli:cancel", "cancelled by HR") == [held[2]]
    assert approve(store, [held[0]], "cli:approve") == [held[0]]
    assert cycle(config, store, connector).sent == 1
    assert approve(store, None, "cli:approve") == [held[1]]
    assert cycle(config, store, connector).sent == 1
    assert store.counts_by_state() == {"sent": 2, "cancelled": 1}
    # Neither can touch a case that already went out.
    assert approve(store, [held[0]], "t") == [] and cancel(store, [held[0]], "t", "x") == []
    assert [r["actor"] for r in store.audit_trail(held[0]) if r["to_state"] == "scheduled"] == [
        "cli:approve"]


def test_still_in_process_elsewhere_at_the_recheck_goes_on_time_without_the_invitation(
        config, store):
    """Issue 10 point 2: the rejection is owed on time; only the relay invitation waits,
    and the case records why (before, Lever cancelled the whole email)."""
    connector = FakeConnector(events=[event("1")],
                              statuses={"1": ApplicationStatus.ACTIVE_ELSEWHERE})
    report = cycle(config, store, connector)
    assert report.sent == 1 and report.cancelled == 0 and report.no_invitation == 1
    case = store.case_by_key("fake", "1")
    assert case.state == "sent" and not case.invite and "another position" in case.invite_note
    (message,) = outbox_messages(config)
    text = message.get_body(("plain",)).get_content()
    assert "/r/" not in text and "選考結果" in message["Subject"]
    trail = store.audit_trail(case.id)
    assert any(r["action"] == "invitation" and "another position" in r["reason"] for r in trail)


def test_invite_only_mode_sends_the_short_mail_and_skips_cases_without_invitation(make_config,
                                                                                  store):
    config = make_config({"mail": {"mode": "invite_only"}, "agencies": [AGENCY]})
    connector = FakeConnector(events=[event("1"), event("2", email="b@example.com",
                                                        no_invitation=True)])
    assert cycle(config, store, connector).sent == 1
    [message] = outbox_messages(config)
    assert "/r/" in message.get_body(("plain",)).get_content()
    assert store.case_by_key("fake", "1").message_id == make_message_id_for("1", "invite_only")
    assert "invite-only" in store.case_by_key("fake", "2").reason


def make_message_id_for(app_id, kind):
    from relay_core.mail.message import make_message_id

    return make_message_id(f"fake:{app_id}", kind, "example.co.jp")


# --- issue 10: in process elsewhere, holds, first install, backfill, sent late ---------------
class Telling(FakeConnector):
    """A connector that sees the same person's other applications (Greenhouse, Lever)."""

    tells_other_applications = True


@pytest.mark.parametrize("policy, state, invite", [("hold", "held", True),
                                                   ("skip", "cancelled", True)])
def test_in_process_elsewhere_policy_at_the_recheck(make_config, store, policy, state, invite):
    config = make_config({"eligibility": {"in_process_elsewhere": policy}})
    connector = FakeConnector(events=[event("1")],
                              statuses={"1": ApplicationStatus.ACTIVE_ELSEWHERE})
    report = cycle(config, store, connector)
    case = store.case_by_key("fake", "1")
    assert report.sent == 0 and case.state == state and case.invite is invite
    assert "another position" in case.reason


def test_detected_in_process_elsewhere_gets_the_invitation_back_when_that_ended(config, store):
    connector = Telling(events=[event("1", in_process_elsewhere=True)],
                        statuses={"1": ApplicationStatus.REJECTED})
    ingest(store, config, connector.events, now=NOW - timedelta(hours=1), actor="t")
    case = store.case_by_key("fake", "1")
    assert case.state == "scheduled" and not case.invite and case.invite_note
    report = cycle(config, store, connector)
    case = store.case_by_key("fake", "1")
    assert report.sent == 1 and case.invite and case.invite_note == ""
    assert "/r/" in outbox_messages(config)[0].get_body(("plain",)).get_content()


def test_an_invitation_held_back_does_not_use_up_the_cooldown(config, store):
    """Rejected for job A while in process for job B: A's email goes without the invitation;
    B's later rejection is owed its own email, with the invitation."""
    first = FakeConnector(events=[event("1", in_process_elsewhere=True)])
    assert cycle(config, store, first).sent == 1
    second = FakeConnector(events=[*first.events,
                                   event("2", rejected_at=NOW - timedelta(hours=2))])
    report = cycle(config, store, second, now=NOW + timedelta(hours=1))
    assert report.sent == 1
    assert store.case_by_key("fake", "2").invite


def test_an_invitation_held_back_while_in_hand_does_not_use_up_the_cooldown(config, store):
    """The same, when job B's rejection arrives while A's email is being handed over (found
    by bench/chaos.py: B was skipped as "mailed" behind a case still `sending`)."""
    from relay_core.store import cases as case_store

    ingest(store, config, [event("1", in_process_elsewhere=True)], now=NOW, actor="poll:fake")
    first = store.case_by_key("fake", "1")
    assert first.invite_note
    with store.begin() as conn:
        case_store.transition(conn, first.id, CaseState.SENDING, actor="send", now=NOW,
                              allowed_from=[CaseState.SCHEDULED])
    report = ingest(store, config, [event("2", rejected_at=NOW - timedelta(hours=2))],
                    now=NOW, actor="poll:fake")
    assert report.skipped == 0 and store.case_by_key("fake", "2").state == "scheduled"


def test_feedback_is_held_for_approval_then_sent_under_its_heading(make_config, store):
    from relay_core.cycle.approval import approve

    config = make_config({"sources": [{"name": "fake", "type": "hrmos_export", "path": "x",
                                       "feedback_field": "候補者へのフィードバック"}]})
    e = event("1").model_copy(update={"feedback": "ご経験を具体的にお話しいただきました。"})
    report = cycle(config, store, FakeConnector(events=[e]))
    case = store.case_by_key("fake", "1")
    assert report.sent == 0 and case.state == "held" and "feedback" in case.reason
    approve(store, [case.id], actor="hr:hanako")
    assert cycle(config, store, FakeConnector(), now=NOW + timedelta(minutes=5)).sent == 1
    text = outbox_messages(config)[0].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "【選考に関するコメント】\nご経験を具体的にお話しいただきました。" in text


@pytest.mark.fresh_install
def test_first_install_mails_only_what_follows_it(make_config, store):
    """Issue 10 point 5: the first poll records the installation; the backlog is skipped."""
    config = make_config()
    old = event("1", rejected_at=NOW - timedelta(days=2))
    report = cycle(config, store, FakeConnector(events=[old]))
    assert report.sent == 0 and report.sources["fake"].skipped == 1
    assert "backfill --since" in store.case_by_key("fake", "1").reason
    later = FakeConnector(events=[old, event("2", email="b@example.com",
                                             rejected_at=NOW + timedelta(hours=1))])
    report = cycle(config, store, later, now=NOW + timedelta(hours=2))
    assert report.sent == 1 and store.case_by_key("fake", "2").state == "sent"


@pytest.mark.fresh_install
@pytest.mark.parametrize("chunk", [1000, 1], ids=["one chunk", "a case a chunk"])
def test_backfill_shows_then_opts_the_backlog_in_and_it_is_counted_late(make_config, store,
                                                                        chunk, monkeypatch):
    from relay_core.cycle import plan
    from relay_core.cycle.plan import backfill

    monkeypatch.setattr(plan, "BACKFILL_CHUNK", chunk)    # chunked: the same decisions
    config = make_config()
    backlog = [event("1", rejected_at=NOW - timedelta(days=6)),
               event("2", email="b@example.com", rejected_at=NOW - timedelta(days=20)),
               event("3", email="c@example.com", category=Category.CANDIDATE_WITHDREW,
                     rejected_at=NOW - timedelta(days=1))]
    cycle(config, store, FakeConnector(events=backlog))
    since = NOW - timedelta(days=30)
    shown = backfill(store, config, since, NOW, apply=False, actor="cli:backfill")
    assert [(c.application_id, c.outcome) for c in shown.cases] == [("2", "skip"),
                                                                    ("1", "schedule")]
    assert "14 days" in shown.cases[0].reason and shown.cases[1].late
    assert store.case_by_key("fake", "1").state == "skipped"          # a dry run writes nothing
    done = backfill(store, config, since, NOW, apply=True, actor="cli:backfill")
    assert done.opted_in == 1 and store.case_by_key("fake", "1").state == "scheduled"
    report = cycle(config, store, FakeConnector(), now=NOW + timedelta(minutes=1))
    assert report.sent == 1 and report.sent_late == 1, store.case_by_key("fake", "1").reason
    from relay_core.commands.status import status_data

    assert status_data(store, NOW + timedelta(minutes=2))["sent_late"] == 1
    again = backfill(store, config, since, NOW, apply=True, actor="cli:backfill")
    assert again.opted_in == 0                                        # nothing left to opt in


@pytest.mark.fresh_install
def test_dry_run_polls_and_plans_but_writes_nothing(make_config, store):
    from relay_core.cycle.plan import plan_cycle

    config = make_config()
    connector = FakeConnector(events=[event("1", rejected_at=NOW - timedelta(days=1))])
    first = plan_cycle(config, store, {"fake": connector}, now=NOW)
    assert first.sources["fake"].skipped == 1      # the first poll would mark the backlog
    with store.connect() as conn:
        from relay_core.store import installs

        assert installs.installations(conn) == {}
    assert store.get_cursor("fake") is None and store.case_by_key("fake", "1") is None
    cycle(config, store, FakeConnector(events=[]))                   # installed now
    fresh = FakeConnector(events=[event("2", rejected_at=NOW + timedelta(hours=1))])
    plan = plan_cycle(config, store, {"fake": fresh}, now=NOW + timedelta(hours=2))
    assert plan.sources["fake"].scheduled == 1 and [c.outcome for c in plan.cases] == [
        "schedule"]
    assert store.case_by_key("fake", "2") is None and not outbox_messages(config)
