"""Issue 13, items 1, 2 and 8: exactly once through crashes, against a real SMTP server.

A crash is simulated by a BaseException (nothing after it runs, as after SIGKILL) thrown at
each step of a message: before DATA, between DATA and the reply, and after the reply but
before the outcome is recorded. The next run must resend exactly the messages that never
reached DATA; the others are `ambiguous`, shown, counted as mailed, and resent only on request.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from tenacity import wait_none

from relay_core.commands.status import status_data
from relay_core.config import Smtp
from relay_core.cycle import recovery
from relay_core.cycle.ingest import ingest
from relay_core.cycle.outbox import deliver_outbox, recover_interrupted
from relay_core.cycle.report import CycleReport
from relay_core.mail.transports import FileTransport, SmtpTransport
from relay_core.store import tables as t
from relay_core.store import utcnow
from tests.fakes import event
from tests.smtp import serving
from tests.test_outbox import queue

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)     # a Monday, 11:00 in Tokyo


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing records anything after it."""


class Server:
    """An aiosmtpd handler that stores what it accepts, and can answer 451, drop the
    connection after storing a message, or hold a message in DATA until released."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.reply = "250 OK"
        self.drop_after_storing: set[str] = set()
        self.hold: threading.Event | None = None
        self.in_data = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        if self.hold is not None:
            self.in_data.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
        if not self.reply.startswith("250"):
            return self.reply
        self.stored.append(rcpt)
        if rcpt in self.drop_after_storing:
            server.transport.close()     # the reply never reaches the client
        return "250 OK"


@pytest.fixture
def smtp():
    handler = Server()
    with serving(handler):
        yield handler


def smtp_transport(server, connections=1, cls=SmtpTransport):
    return cls(Smtp(host="127.0.0.1", port=server.port, security="none",
                    connections=connections, retries=0), wait=wait_none())


def crashing(at: str, victim: str):
    """A transport that 'dies' at one step of the message to `victim`."""

    class Crashing(SmtpTransport):
        def clone(self):
            return self

        def hand_over(self, mail, before_data=None):
            if mail.recipient != victim:
                return super().hand_over(mail, before_data)
            if at == "before DATA":
                raise Crash()
            if at == "during DATA":
                def then_die():
                    before_data()
                    raise Crash()
                return super().hand_over(mail, then_die)
            super().hand_over(mail, before_data)
            raise Crash()     # after the server's 250, before the outcome is recorded
    return Crashing


def outbox_states(store) -> dict[str, str]:
    with store.connect() as conn:
        return dict(conn.execute(select(t.outbox.c.recipient, t.outbox.c.state)).all())


def state(store, i: int) -> str:
    return store.case_by_key("fake", str(i)).state.value


@pytest.mark.parametrize("at, stored_before, ambiguous", [
    ("before DATA", 1, False),
    ("during DATA", 1, True),
    ("after the reply", 2, True),
])
def test_a_crash_at_each_step_resends_only_what_never_reached_data(
        make_config, store, smtp, at, stored_before, ambiguous):
    config = make_config()
    queue(store, config, 4)
    with pytest.raises(Crash):
        deliver_outbox(store, smtp_transport(smtp, cls=crashing(at, "p1@example.com")),
                       now=NOW, report=CycleReport(), config=config)
    assert smtp.stored == ["p0@example.com", "p1@example.com"][:stored_before]
    # The claim was small: only the message in hand was claimed, the rest still queued.
    states = outbox_states(store)
    assert states["p0@example.com"] == "sent"
    assert states["p1@example.com"] == ("claimed" if at == "before DATA" else "handing_over")
    assert states["p2@example.com"] == states["p3@example.com"] == "pending"

    report = CycleReport()
    recovered = recover_interrupted(store, smtp_transport(smtp), NOW, report=report)
    assert (recovered.requeued, recovered.ambiguous) == ((0, 1) if ambiguous else (1, 0))
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=report, config=config)

    expected = ["p0@example.com", "p1@example.com", "p2@example.com", "p3@example.com"]
    if at == "during DATA":
        expected.remove("p1@example.com")        # it never arrived, but nobody can know
    assert sorted(smtp.stored) == expected       # each at most once
    assert state(store, 1) == ("ambiguous" if ambiguous else "sent")
    assert [state(store, i) for i in (0, 2, 3)] == ["sent"] * 3
    shown = status_data(store, NOW)
    if ambiguous:
        assert [a["case"] for a in shown["ambiguous"]] == [store.case_by_key("fake", "1").id]
        assert shown["by_state"]["ambiguous"] == 1 and report.ambiguous == 1
        reason = store.case_by_key("fake", "1").reason
        assert "server's log" in reason and "resend --case" in reason
        _shown_in_report_and_console(store, config)
    else:
        assert shown["ambiguous"] == [] and "ambiguous" not in shown["by_state"]


def _shown_in_report_and_console(store, config):
    import csv
    import io

    from relay_core.records.report import build_report, to_csv, to_html, to_json
    from relay_core.store.console import dashboard_counts

    report = build_report(store, config, NOW)
    assert report.ambiguous["total"] == 1 and report.ambiguous["by_source"] == {"fake": 1}
    assert report.total["sent"] == 3           # not counted as sent
    assert next(csv.DictReader(io.StringIO(to_csv(report))))["ambiguous"] == "1"
    assert '"ambiguous": {' in to_json(report)
    assert "ambiguous (handed to the mail server, answer unknown): 1" in to_html(report)
    with store.connect() as conn:
        assert dashboard_counts(conn, now=NOW, end_of_today=NOW)["ambiguous"] == 1


def test_an_ambiguous_email_counts_as_mailed_for_the_person_cooldown(make_config, store,
                                                                       smtp):
    """Item 2: delivered, interrupted before recorded → ambiguous, not failed; the same
    person's next rejection is not mailed again."""
    config = make_config()
    queue(store, config, 1)
    with pytest.raises(Crash):
        deliver_outbox(store, smtp_transport(smtp, cls=crashing("after", "p0@example.com")),
                       now=NOW, report=CycleReport())
    recover_interrupted(store, smtp_transport(smtp), NOW)
    assert state(store, 0) == "ambiguous"
    later = NOW + timedelta(days=7)
    again = ingest(store, config, [event("99", email="p0@example.com", rejected_at=later)],
                   now=later, actor="test")
    assert any("same person was mailed" in r for r in again.skip_reasons), again.skip_reasons
    assert smtp.stored == ["p0@example.com"]


def test_a_connection_dropped_after_data_is_ambiguous_not_resent(make_config, store, smtp):
    """Item 8: the server stored the message, the reply never came: not sent again, but
    counted and shown; the other messages go out on a new connection."""
    config = make_config()
    queue(store, config, 3)
    smtp.drop_after_storing = {"p1@example.com"}
    report = CycleReport()
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=report, config=config)
    assert sorted(smtp.stored) == ["p0@example.com", "p1@example.com", "p2@example.com"]
    assert (report.sent, report.ambiguous, report.retry_later) == (2, 1, 0)
    assert state(store, 1) == "ambiguous"
    deliver_outbox(store, smtp_transport(smtp), now=NOW + timedelta(hours=3),
                   report=CycleReport(), config=config)
    assert len(smtp.stored) == 3                  # never silently resent
    assert status_data(store, NOW)["ambiguous"][0]["case"] == store.case_by_key("fake", "1").id


def test_parallel_connections_leave_only_the_dropped_one_ambiguous(make_config, store, smtp):
    config = make_config()
    queue(store, config, 12)
    smtp.drop_after_storing = {"p3@example.com", "p8@example.com"}
    report = CycleReport()
    deliver_outbox(store, smtp_transport(smtp, connections=4), now=NOW, report=report,
                   config=config)
    assert len(smtp.stored) == 12 and len(set(smtp.stored)) == 12
    assert (report.sent, report.ambiguous) == (10, 2)
    assert {i for i in range(12) if state(store, i) == "ambiguous"} == {3, 8}


def test_on_ambiguous_resend_requeues_at_the_next_run_with_an_audit_row(make_config, store,
                                                                         smtp):
    config = make_config({"mail": {"on_ambiguous": "resend"}})
    queue(store, config, 2)
    with pytest.raises(Crash):
        deliver_outbox(store, smtp_transport(smtp, cls=crashing("after", "p0@example.com")),
                       now=NOW, report=CycleReport())
    recovered = recover_interrupted(store, smtp_transport(smtp), NOW,
                                    on_ambiguous=config.mail.on_ambiguous)
    assert (recovered.ambiguous, recovered.resent) == (1, 1)
    case = store.case_by_key("fake", "0")
    assert case.state.value == "sending"
    trail = store.audit_trail(case.id)
    assert [(a["from_state"], a["to_state"]) for a in trail[-2:]] == [
        ("sending", "ambiguous"), ("ambiguous", "sending")]
    assert "mail.on_ambiguous" in trail[-1]["reason"]
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=CycleReport())
    assert sorted(smtp.stored) == ["p0@example.com", "p0@example.com", "p1@example.com"]
    assert state(store, 0) == "sent"


def test_hold_keeps_an_ambiguous_email_until_resend(make_config, store, smtp):
    config = make_config()
    queue(store, config, 1)
    with pytest.raises(Crash):
        deliver_outbox(store, smtp_transport(smtp, cls=crashing("during DATA",
                                                                "p0@example.com")),
                       now=NOW, report=CycleReport())
    for _ in range(2):
        recover_interrupted(store, smtp_transport(smtp), NOW,
                            on_ambiguous=config.mail.on_ambiguous)
        deliver_outbox(store, smtp_transport(smtp), now=NOW, report=CycleReport())
    assert smtp.stored == [] and state(store, 0) == "ambiguous"
    case_id = store.case_by_key("fake", "0").id
    result = recovery.resend_cases(store, [case_id, case_id + 100], actor="test", now=NOW,
                                   note="not in the server log")
    assert result.resent == [case_id] and result.refused == {case_id + 100: "no such case"}
    assert "not in the server log" in store.audit_trail(case_id)[-1]["reason"]
    again = recovery.resend_cases(store, [case_id], actor="test", now=NOW)
    assert "sending" in again.refused[case_id]
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=CycleReport())
    assert smtp.stored == ["p0@example.com"] and state(store, 0) == "sent"


def test_file_transport_interrupted_rows_go_back_to_the_queue(make_config, store, tmp_path):
    config = make_config()
    queue(store, config, 2)

    class Dying(FileTransport):
        def hand_over(self, mail, before_data=None):
            super().hand_over(mail, before_data)
            raise Crash()

    with pytest.raises(Crash):
        deliver_outbox(store, Dying(tmp_path / "out"), now=NOW, report=CycleReport())
    recovered = recover_interrupted(store, FileTransport(tmp_path / "out"), NOW)
    assert (recovered.requeued, recovered.ambiguous) == (1, 0)
    report = CycleReport()
    deliver_outbox(store, FileTransport(tmp_path / "out"), now=NOW, report=report)
    assert report.sent == 2 and len(list((tmp_path / "out").glob("*.eml"))) == 2


# --- a live run's rows are never recovered by another -----------------------------------------
def _claim_as(store, holder: str, until: datetime, state: str = "handing_over") -> None:
    with store.begin() as conn:
        conn.execute(update(t.outbox).values(state=state, claimed_by=holder,
                                             claimed_until=until, handing_over_at=NOW))


def test_recovery_leaves_a_live_process_rows_alone_and_takes_them_once_it_is_gone(
        make_config, store, smtp):
    config = make_config()
    queue(store, config, 2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _claim_as(store, f"{recovery.HOST}:{other.pid}:abc", utcnow() + timedelta(minutes=5))
        assert recover_interrupted(store, smtp_transport(smtp), NOW).ambiguous == 0
        assert set(outbox_states(store).values()) == {"handing_over"}
        assert state(store, 0) == "sending"
    finally:
        other.kill()
        other.wait()
    # Its process is gone: recovered at once, without waiting for the lease.
    assert recover_interrupted(store, smtp_transport(smtp), NOW).ambiguous == 2
    assert state(store, 0) == state(store, 1) == "ambiguous"


def test_another_host_is_trusted_until_its_lease_runs_out(make_config, store, smtp):
    config = make_config()
    queue(store, config, 1)
    _claim_as(store, "elsewhere.example:4242:abc", utcnow() + timedelta(minutes=5),
              state="claimed")
    assert recover_interrupted(store, smtp_transport(smtp), NOW).requeued == 0
    _claim_as(store, "elsewhere.example:4242:abc", utcnow() - timedelta(seconds=1),
              state="claimed")
    assert recover_interrupted(store, smtp_transport(smtp), NOW).requeued == 1
    assert outbox_states(store) == {"p0@example.com": "pending"}


def test_a_concurrent_recovery_does_not_touch_a_message_being_handed_over(make_config, store,
                                                                          smtp):
    """Two runs in one process (or the run lock bypassed): while one is inside DATA, the
    other's recovery must leave its row alone; the message is then recorded as sent."""
    config = make_config()
    queue(store, config, 1)
    smtp.hold = threading.Event()
    report = CycleReport()
    sender = threading.Thread(target=deliver_outbox, args=(store, smtp_transport(smtp)),
                              kwargs={"now": NOW, "report": report})
    sender.start()
    try:
        assert smtp.in_data.wait(10)
        assert outbox_states(store) == {"p0@example.com": "handing_over"}
        recovered = recover_interrupted(store, smtp_transport(smtp), NOW)
        assert (recovered.requeued, recovered.ambiguous) == (0, 0)
    finally:
        smtp.hold.set()
        sender.join(10)
    assert report.sent == 1 and state(store, 0) == "sent"
    assert smtp.stored == ["p0@example.com"]


def test_holder_identity_and_liveness():
    with recovery.Holder() as holder:
        assert holder.id.startswith(f"{recovery.HOST}:{os.getpid()}:")
        assert recovery.holder_alive(holder.id, holder.lease())
    assert not recovery.holder_alive(holder.id, holder.lease())     # its delivery ended
    assert not recovery.holder_alive(None, None)
    assert not recovery.holder_alive("garbage", utcnow() + timedelta(minutes=1))


# --- SMTP give-up, through the commands -------------------------------------------------------
@pytest.fixture
def smtp_example(tmp_path, store_url, installed_sources, smtp):
    """config.example.toml on the suite's store, sending through the test's SMTP server."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "examples").mkdir()
    shutil.copy(root / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (root / "config.example.toml").read_text(encoding="utf-8")
    for old, new in (('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"'),
                     ('transport = "file"', 'transport = "smtp"'),
                     ('host = "smtp.example.co.jp"', 'host = "127.0.0.1"'),
                     ("port = 587", f"port = {smtp.port}"),
                     ('security = "starttls"', 'security = "none"'),
                     ('username = "relay@example.co.jp"', 'username = ""'),
                     ('password = "env:CAREER_RELAY_SMTP_PASSWORD"', "# no password"),
                     ("retries = 3 ", "retries = 0 ")):
        assert old in text, old
        text = text.replace(old, new, 1)
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return str(config)


def test_a_451_that_never_clears_fails_after_the_limit_and_run_exits_1(smtp_example, smtp):
    import json

    from typer.testing import CliRunner

    from relay_core.commands.cli import app

    runner = CliRunner()
    smtp.reply = "451 4.3.0 mailbox of user@example.com busy, try again later"
    first = runner.invoke(app, ["run", "-c", smtp_example, "--now", "2025-06-23T11:00:00+09:00",
                                "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert data["retry_later"] == 4 and data["sent"] == 0 and data["gave_up"] == 0
    status = json.loads(runner.invoke(app, ["status", "-c", smtp_example, "--json"]).output)
    assert status["by_state"]["sending"] == 4 and status["outbox"] == {"pending": 4}

    # Past the case's deadline plus one business day: failed, with the server's last reply.
    later = runner.invoke(app, ["run", "-c", smtp_example, "--now",
                                "2025-06-30T11:00:00+09:00", "--json"])
    assert later.exit_code == 1, later.output
    assert json.loads(later.output)["gave_up"] == 4
    status = json.loads(runner.invoke(app, ["status", "-c", smtp_example, "--json"]).output)
    assert status["by_state"]["failed"] == 4 and status["outbox"] == {"gave_up": 4}
    stuck = status["gave_up"][0]
    assert stuck["temporary_failures"] == 2
    assert stuck["last_reply"].startswith("451 4.3.0 mailbox of <address> busy")
    assert "example.com" not in json.dumps(status["gave_up"])     # the address is masked
    assert all("gave up after 2 temporary failure(s)" in f["reason"] and "451" in f["reason"]
               for f in status["failed"])
    table = runner.invoke(app, ["status", "-c", smtp_example])
    assert "gave up 4 (run exits 1)" in table.output

    # Nothing new failed, yet every run says so until someone acts.
    again = runner.invoke(app, ["run", "-c", smtp_example, "--now",
                                "2025-06-30T12:00:00+09:00"])
    assert again.exit_code == 1 and "gave up 4" in again.output
    ids = [str(s["case"]) for s in status["gave_up"]]

    # `resend` asks first; with --yes the server (now well) gets each message once.
    refused = runner.invoke(app, ["resend", "-c", smtp_example, "--case", ids[0]])
    assert refused.exit_code == 2 and "--yes" in refused.output
    smtp.reply = "250 OK"
    resent = runner.invoke(app, ["resend", "-c", smtp_example, "--case", ids[0], "--yes",
                                 "--note", "server log: never delivered"])
    assert resent.exit_code == 0 and f"re-queued 1 case(s): {ids[0]}" in resent.output
    # The others HR gives up on: cancelled, and `run` is green again.
    cancel = runner.invoke(app, ["cancel", "-c", smtp_example, *sum((["--case", i]
                                                                      for i in ids[1:]), [])])
    assert cancel.exit_code == 0, cancel.output
    last = runner.invoke(app, ["run", "-c", smtp_example, "--now", "2025-06-30T13:00:00+09:00",
                               "--json"])
    assert last.exit_code == 0, last.output
    assert json.loads(last.output)["sent"] == 1 and len(smtp.stored) == 1
    again = runner.invoke(app, ["resend", "-c", smtp_example, "--case", ids[0], "--yes"])
    assert again.exit_code == 1 and "it is sent" in again.output


def test_resend_refuses_what_it_cannot_resend(smtp_example, smtp):
    from typer.testing import CliRunner

    from relay_core.commands.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["resend", "-c", smtp_example]).exit_code == 2
    missing = runner.invoke(app, ["resend", "-c", smtp_example, "--case", "999", "--yes"])
    assert missing.exit_code == 1 and "no such case" in missing.output


def test_migration_0007_turns_a_sending_row_into_handing_over_and_back(store_url):
    """A row a 0006 process left `sending` has no known claimer: it becomes `handing_over`
    (recovered as ambiguous for SMTP); the downgrade restores the 0006 states."""
    from alembic import command
    from sqlalchemy import insert, text

    from relay_core.store.db import alembic_config, make_engine, migrate

    engine = make_engine(store_url)
    migrate(engine, "0006_emails")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (kind, message_id, recipient, message, state, attempts, "
            "last_error, created_at) VALUES ('confirmation', '<m1@x>', 'a@example.com', "
            ":m, 'sending', 1, '', :at)"), {"m": b"bytes", "at": NOW})
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(select(t.outbox)).one()
    assert (row.state, row.claimed_by, row.temp_failures, row.last_reply) == (
        "handing_over", None, 0, "")
    with engine.begin() as conn:
        conn.execute(insert(t.outbox).values(
            kind="confirmation", message_id="<m2@x>", state="gave_up", attempts=1,
            last_error="", created_at=NOW, temp_failures=3, last_reply="451"))
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006_emails")
    with engine.connect() as conn:
        states = list(conn.execute(text("SELECT state FROM outbox ORDER BY id")).scalars())
    assert states == ["sending", "failed"]
    engine.dispose()


def test_interrupted_parallel_delivery_records_what_the_other_connections_finished(
        make_config, store, smtp):
    """Ctrl-C on one connection's message: the messages the other connections finished are
    recorded as sent (not left to look ambiguous), the interrupted one is settled by the
    next run, and nothing waits forever."""
    config = make_config()
    queue(store, config, 8)

    class Interrupted(SmtpTransport):
        def clone(self):
            return Interrupted(self.settings, wait=self.wait)

        def hand_over(self, mail, before_data=None):
            if mail.recipient == "p2@example.com":
                raise KeyboardInterrupt     # while the other two are on their way
            super().hand_over(mail, before_data)

    with pytest.raises(KeyboardInterrupt):
        deliver_outbox(store, smtp_transport(smtp, connections=3, cls=Interrupted), now=NOW,
                       report=CycleReport(), config=config)
    states = outbox_states(store)
    delivered = set(smtp.stored)
    assert states["p2@example.com"] == "claimed" and "p2@example.com" not in delivered
    assert all(states[r] == "sent" for r in delivered)
    assert all(states[r] in ("pending", "claimed") for r in set(states) - delivered)
    recover_interrupted(store, smtp_transport(smtp), NOW)
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=CycleReport(), config=config)
    assert sorted(smtp.stored) == sorted(f"p{i}@example.com" for i in range(8))
    assert [state(store, i) for i in range(8)] == ["sent"] * 8


SENDER = """
import sys
from datetime import datetime
from tenacity import wait_none
from relay_core.config import Smtp
from relay_core.cycle.outbox import deliver_outbox
from relay_core.cycle.report import CycleReport
from relay_core.mail.transports import SmtpTransport
from relay_core.store import open_store

store = open_store(sys.argv[1], upgrade=False)
transport = SmtpTransport(Smtp(host="127.0.0.1", port=int(sys.argv[2]), security="none",
                               connections=1, retries=0), wait=wait_none())
deliver_outbox(store, transport, now=datetime.fromisoformat(sys.argv[3]), report=CycleReport())
"""


def test_sigkill_inside_data_leaves_one_ambiguous_and_loses_nothing(make_config, store,
                                                                    store_url, smtp):
    """The real thing: a sending process killed with SIGKILL while the server holds its
    whole message in DATA (whether the server keeps it is its own business: aiosmtpd drops
    it, Postfix may not). The next run, in another process, finds the dead pid, marks that one
    ambiguous at once, never resends it, and sends the rest, each exactly once."""
    import signal
    from pathlib import Path

    config = make_config()
    queue(store, config, 3)
    smtp.hold = threading.Event()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", SENDER, store_url, str(smtp.port),
                             NOW.isoformat()], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert smtp.in_data.wait(30), "the sender never reached DATA"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        smtp.hold.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    smtp.hold = None
    assert outbox_states(store) == {"p0@example.com": "handing_over",
                                    "p1@example.com": "pending", "p2@example.com": "pending"}
    recovered = recover_interrupted(store, smtp_transport(smtp), NOW)
    assert (recovered.requeued, recovered.ambiguous) == (0, 1)
    report = CycleReport()
    deliver_outbox(store, smtp_transport(smtp), now=NOW, report=report, config=config)
    assert report.sent == 2
    assert sorted(smtp.stored) == ["p1@example.com", "p2@example.com"]    # p0 not resent
    assert [state(store, i) for i in range(3)] == ["ambiguous", "sent", "sent"]
    assert status_data(store, NOW)["ambiguous"][0]["case"] == store.case_by_key("fake", "0").id


def test_status_lists_every_ambiguous_email_not_a_page_of_them(make_config, store, smtp):
    """bench/chaos.py found `status` listing 50 of 116 ambiguous emails (and counting 50):
    each of them waits for a person's decision, so each is listed."""
    config = make_config()
    queue(store, config, 60)
    _claim_as(store, f"{recovery.HOST}:999999999:gone", NOW - timedelta(minutes=1))
    assert recover_interrupted(store, smtp_transport(smtp), NOW).ambiguous == 60
    shown = status_data(store, NOW)
    assert shown["by_state"]["ambiguous"] == 60 and len(shown["ambiguous"]) == 60
