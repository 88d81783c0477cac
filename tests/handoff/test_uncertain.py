"""Issue 11, point 7: a delivery that may have arrived (a timeout, the connection lost after
sending) is recorded as possibly delivered: a provision record at once, a deletion notice after
a withdrawal, `possibly_delivered` (never `dead`) when no answer ever comes, and `status`
shows it."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from rich.console import Console
from sqlalchemy import select

from relay_core.commands.tables import handoff_table
from relay_core.mail import FileTransport
from relay_core.records.handoff.channels import may_have_arrived
from relay_core.records.handoff.deliver import deliver_handoffs, handoff_status
from relay_core.store import tables as t
from tests.handoff.support import SECRET, T0, agency, consented_case, withdraw


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)


class Flaky:
    """Raises the given errors in turn, then answers with `status`."""

    def __init__(self, *errors: Exception, status: int = 200):
        self.errors = list(errors)
        self.status = status
        self.calls = 0

    def post(self, url, data, headers, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return SimpleNamespace(status_code=self.status, headers={})


def refused() -> requests.ConnectionError:
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))


def rows(store):
    with store.engine.connect() as conn:
        return (conn.execute(select(t.handoffs)).all(),
                conn.execute(select(t.provision_records)).all(),
                conn.execute(select(t.deletion_notices)).all())


def world(store, make_config, attempts=3):
    config = make_config({"agencies": [agency("agency-a", url="https://a.example/in",
                                              max_attempts=attempts)]})
    return config, consented_case(store, config, "1", ["agency-a"])


def test_point_7_a_timeout_is_recorded_as_provided_and_asked_to_delete_on_withdrawal(
        store, make_config, tmp_path):
    config, case_id = world(store, make_config)
    session = Flaky(requests.ReadTimeout("read timed out"))
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=session)
    assert out.retrying == 1 and out.delivered == 0
    [handoff], [record], notices = rows(store)
    assert handoff.state == "retrying" and "may have arrived" in handoff.last_error
    assert "possibly delivered" in record.note and record.agency_id == "agency-a"
    assert "transfer_uncertain" in [r["action"] for r in store.audit_trail(case_id)]
    result = withdraw(store, case_id, T0 + timedelta(minutes=5))
    assert (result.stopped_handoffs, result.deletion_notices) == (1, 1)
    [handoff], _, [notice] = rows(store)
    assert handoff.state == "stopped" and notice.agency_id == "agency-a"


def test_point_7_no_answer_ever_ends_possibly_delivered_and_status_shows_it(store, make_config,
                                                                          tmp_path):
    config, case_id = world(store, make_config, attempts=2)
    session = Flaky(requests.ReadTimeout("t1"), refused())
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=session)
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"),
                           now=T0 + timedelta(hours=1), session=session)
    assert out.possibly_delivered == 1 and out.dead == 0
    assert any("may have arrived" in e for e in out.errors)
    [handoff], [record], _ = rows(store)
    assert handoff.state == "maybe_delivered"
    with store.engine.connect() as conn:
        status = handoff_status(conn)
    assert [p["handoff"] for p in status["possibly_delivered"]] == [handoff.id]
    console = Console(width=200, record=True)
    console.print(handoff_table(status))
    assert "possibly delivered" in console.export_text()
    # A withdrawal asks the agency to delete what it may hold.
    assert withdraw(store, case_id, T0 + timedelta(hours=2)).deletion_notices == 1
    # An agency event for that reference is accepted: it may well have the candidate.
    from relay_core.records.ledger import AgencyEvent, record_event

    with store.engine.connect() as conn:
        reference = conn.execute(select(t.handoff_references.c.reference)).scalar_one()
    with store.begin() as conn:
        assert record_event(store, conn, config, "agency-a",
                            AgencyEvent("e1", "registered", reference), via="csv"
                            ).status == "stored"


def test_point_7_a_later_answer_makes_it_delivered_with_one_provision_record(store, make_config,
                                                                           tmp_path):
    config, case_id = world(store, make_config)
    session = Flaky(requests.ConnectionError("Connection aborted."), status=409)
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0, session=session)
    deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0 + timedelta(hours=1),
                     session=session)
    [handoff], records, _ = rows(store)
    assert handoff.state == "delivered" and len(records) == 1
    assert "written at an earlier, unconfirmed attempt" in [
        r["reason"] for r in store.audit_trail(case_id) if r["action"] == "transfer"][0]


def test_point_7_a_connection_never_made_delivered_nothing(store, make_config, tmp_path):
    config, case_id = world(store, make_config, attempts=1)
    out = deliver_handoffs(store, config, FileTransport(tmp_path / "o"), now=T0,
                           session=Flaky(refused()))
    assert out.dead == 1 and out.possibly_delivered == 0
    [handoff], records, _ = rows(store)
    assert handoff.state == "dead" and records == []
    assert withdraw(store, case_id, T0 + timedelta(hours=1)).deletion_notices == 0


def test_point_7_what_may_have_arrived_on_a_real_socket():
    """Real requests errors: refused (nothing sent), dropped after the request (may have
    arrived), no answer in time (may have arrived)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(requests.RequestException) as info:
        requests.post(f"http://127.0.0.1:{closed}/", data=b"x", timeout=2)
    assert may_have_arrived(info.value) is False

    def serve(behaviour):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()

        def run():
            conn, _ = server.accept()
            conn.recv(65536)
            behaviour(conn)

        threading.Thread(target=run, daemon=True).start()
        return server

    for behaviour, timeout in ((lambda c: c.close(), 2), (lambda c: None, 0.3)):
        server = serve(behaviour)
        port = server.getsockname()[1]
        with pytest.raises(requests.RequestException) as info:
            requests.post(f"http://127.0.0.1:{port}/", data=b"x", timeout=timeout)
        assert may_have_arrived(info.value) is True, type(info.value)
        server.close()


def test_point_7_an_email_handoff_interrupted_mid_send_is_possibly_delivered(store, make_config):
    from relay_core.mail.transports import Transport

    class Smtpish(Transport):      # not idempotent: a resend could duplicate the mail
        def send(self, mail):
            raise AssertionError("nothing is resent")

    config = make_config({"agencies": [agency("agency-m", "email")]})
    consented_case(store, config, "1", ["agency-m"])
    with store.begin() as conn:     # a run died between handing over and recording it
        conn.execute(t.handoffs.update().values(state="sending", attempts=1))
    out = deliver_handoffs(store, config, Smtpish(), now=T0)
    assert out.possibly_delivered == 1
    [handoff], [record], _ = rows(store)
    assert handoff.state == "maybe_delivered" and "possibly delivered" in record.note
    assert record.destination == "intake@agency-m.example"
