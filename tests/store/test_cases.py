"""Cases come out of the store typed: a RelayCase with its person parsed once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from relay_core.models import CaseState, Category, Person, RelayCase
from relay_core.store import cases, utcnow
from relay_core.store import tables as t
from relay_core.store.cases import CASE_COLUMNS
from tests.fakes import event

NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)


def insert(store, app_id: str = "1", **kw) -> int:
    with store.begin() as conn:
        return store.insert_case(conn, event(app_id, **kw), email="taro@example.com",
                                 language="ja", now=NOW, actor="test")


def test_a_stored_case_is_typed_and_carries_its_person(store):
    case_id = insert(store)
    case = store.case(case_id)
    assert isinstance(case, RelayCase) and case == store.case_by_key("fake", "1")
    assert (case.id, case.source, case.application_id, case.ats, case.candidate_id) == (
        case_id, "fake", "1", "fake", "c1")
    assert case.state is CaseState.DETECTED and case.category is Category.WE_REJECTED
    assert case.person == Person(last_name="山田", first_name="太郎", full_name="山田 太郎")
    assert (case.email, case.language, case.job_title, case.stage) == (
        "taro@example.com", "ja", "法人営業", "1次面接")
    assert case.rejected_at == datetime(2025, 6, 20, 1, 0, tzinfo=UTC)
    assert case.detected_at == NOW and case.send_at is None and case.message_id is None
    assert case.case_key == "fake:1" and case.invite and not case.late


def test_a_case_is_read_from_every_column():
    assert [col.name for col in CASE_COLUMNS] == list(t.relay_cases.c.keys())


def test_a_case_is_immutable(store):
    case = store.case(insert(store))
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.state = CaseState.SENT
    assert not hasattr(case, "__dict__")       # slots: no stray attributes either


def test_a_purged_case_has_no_person(store):
    case_id = insert(store)
    with store.begin() as conn:
        conn.execute(update(t.relay_cases).values(email=None, person_json=None, event_json=None,
                                                  person_key=None))
    case = store.case(case_id)
    assert case.person is None and case.email is None and case.stage == ""


def test_due_cases_come_in_keyset_pages(store):
    ids = [insert(store, str(i)) for i in range(5)]
    with store.begin() as conn:
        moved = cases.transition_many(conn, [{"id": i, "send_at": NOW} for i in ids],
                                      CaseState.SCHEDULED, from_state=CaseState.DETECTED,
                                      actor="test", now=utcnow())
    assert moved == set(ids)
    first = store.due_cases(NOW, limit=3)
    rest = store.due_cases(NOW, limit=3, after_id=first[-1].id)
    assert [c.id for c in first + rest] == ids
    assert all(c.state is CaseState.SCHEDULED and c.send_at == NOW for c in first + rest)
    assert store.due_cases(NOW.replace(hour=1)) == []


def test_case_ids_by_application(store):
    ids = {app: insert(store, app) for app in "12"}
    with store.begin() as conn:
        assert cases.ids_by_key(conn, "fake", ["1", "2", "3", "1"]) == ids
        assert cases.ids_by_key(conn, "other", ["1"]) == {}
        assert cases.ids_by_key(conn, "fake", []) == {}
