"""The proof of issue 13, small: bench/chaos.py for 20 rounds with a fixed seed, on the test
database (SQLite, or PostgreSQL with CR_TEST_DATABASE=postgresql). The product runs as
subprocesses against a loopback Greenhouse stand-in and a real aiosmtpd server and is killed
with SIGKILL and SIGTERM at random moments, also while mail is being handed over. About a
minute; `-m "not chaos"` leaves it out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND, PG_URL

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "chaos.py"


def load_harness():
    spec = importlib.util.spec_from_file_location("bench_chaos", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module        # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.chaos
def test_exactly_once_through_kills(capsys):
    chaos = load_harness()
    args = chaos.parse(["--db", BACKEND, "--pg-url", PG_URL, "--rounds", "20", "--seed", "13",
                        "--quiet"])
    result = chaos.execute(args)
    chaos.report(result.summary, result.tally, args, result.seconds)
    figures = capsys.readouterr().out
    s, tally = result.summary, result.tally
    assert s.emails > 0 and s.owed > 0, figures       # the rounds did exercise the product
    found = {"lost": len(s.lost), "duplicates": len(s.duplicates),
             "blocked": len(tally.blocked), "ambiguous not shown in status": not s.ambiguous_shown,
             "ambiguous over the bound": max(0, s.ambiguous - s.ambiguous_bound),
             "resent over the bound": max(0, len(s.explained) - s.ambiguous_bound),
             "emails of no application": s.unattributed}
    assert found == dict.fromkeys(found, 0), figures
    assert result.met, figures


# --- the accounting itself, on made-up histories (fast; these run everywhere) ------------------
@pytest.fixture(scope="module")
def chaos():
    return load_harness()


def received(chaos, app, at: float, *, invited: bool = True, confirmed: bool = True,
             message_id: str | None = None):
    return chaos.Received(at, "p@example.com", message_id or f"<m{app.id}>", app.id, invited,
                          session=1, confirmed=confirmed)


def test_a_person_rejected_twice_is_owed_one_email(chaos):
    ats = chaos.Ats(page_size=7)
    a, b = ats.add_person(2)
    ats.reject(a, 1)
    ats.reject(b, 1)
    cases = {a.id: ("sent", ""), b.id: ("skipped", "the same person was mailed")}
    s = chaos.account(ats, [received(chaos, a, 1)], cases)
    assert (s.owed, s.lost, s.duplicates) == (2, [], [])
    s = chaos.account(ats, [received(chaos, a, 1), received(chaos, b, 2)], cases)
    assert len(s.duplicates) == 1 and not s.explained


def test_an_email_without_the_invitation_owes_the_next_rejection_its_own(chaos):
    ats = chaos.Ats(page_size=7)
    a, b = ats.add_person(2)
    ats.reject(a, 1)
    ats.reject(b, 2)
    first = received(chaos, a, 1, invited=False)     # b was still in process then
    s = chaos.account(ats, [first, received(chaos, b, 2)], {})
    assert not s.duplicates and len(s.second) == 1 and not s.lost
    s = chaos.account(ats, [first], {b.id: ("skipped", "the same person was mailed")})
    assert [line.split(":")[0] for line in s.lost] == [f"person 1 application {b.id}"]


def test_only_a_resend_after_an_unconfirmed_handover_is_explained(chaos):
    ats = chaos.Ats(page_size=7)
    (a,) = ats.add_person(1)
    ats.reject(a, 1)
    cut = received(chaos, a, 1, confirmed=False)     # killed before it read the reply
    s = chaos.account(ats, [cut, received(chaos, a, 2)], {})
    assert len(s.explained) == 1 and not s.duplicates
    s = chaos.account(ats, [received(chaos, a, 1), received(chaos, a, 2)], {})
    assert len(s.duplicates) == 1 and not s.explained


def test_an_unreject_cancels_what_is_owed_and_a_rereject_owes_it_again(chaos):
    ats = chaos.Ats(page_size=7)
    (a,) = ats.add_person(1)
    ats.reject(a, 1)
    ats.unreject(a, 1)
    s = chaos.account(ats, [], {a.id: ("cancelled", "")})
    assert (s.owed, s.lost) == (0, [])
    ats.reject(a, 2)
    s = chaos.account(ats, [], {a.id: ("cancelled", "")})
    assert len(s.lost) == 1 and s.lost_by_state == {"cancelled": 1}
    s = chaos.account(ats, [], {a.id: ("ambiguous", "")})     # held for a person: not lost
    assert (s.lost, s.held_ambiguous) == ([], 1)
