"""The cases aggregate: relay cases, their append-only audit trail and the suppression list.

Every function takes the connection of the caller's transaction (or a read connection) and
hands out RelayCase, never a row. Every state change is a conditional UPDATE
(`WHERE state IN (...)`) plus an audit row in the same transaction: two processes racing for the
same case cannot both win, so a case is sent at most once even if the run lock were bypassed.
Work on many cases goes in batches (one INSERT per page, one UPDATE per 500 ids).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Update, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from relay_core.models import TRANSITIONS, CaseState, Category, Person, RejectionEvent, RelayCase
from relay_core.store import tables as t
from relay_core.store.tables import utcnow

CHUNK = 500     # ids per IN (...): well below every backend's parameter limit
c = t.relay_cases.c


def person_key(email: str) -> str:
    """A stable, non-reversible key for 'the same person' (cooldown, suppression)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


_STATES = {state.value: state for state in CaseState}       # faster than CaseState(value)
_CATEGORIES = {cat.value: cat for cat in Category}
# What a RelayCase is read from, in the order _case unpacks it (every column of relay_cases).
CASE_COLUMNS = (c.id, c.source, c.application_id, c.ats, c.candidate_id, c.state, c.reason,
                c.category, c.language, c.invite, c.email, c.person_key, c.person_json,
                c.event_json, c.job_title, c.rejected_at, c.detected_at, c.send_at,
                c.deadline_at, c.sent_at, c.late, c.message_id, c.updated_at, c.invite_note)


def _case(row: Row) -> RelayCase:
    """The one place a stored case becomes a RelayCase: the person is parsed here, once."""
    (case_id, source, application_id, ats, candidate_id, state, reason, category, language,
     invite, email, key, person_json, event_json, job_title, rejected_at, detected_at, send_at,
     deadline_at, sent_at, late, message_id, updated_at, invite_note) = row
    event = json.loads(event_json) if event_json else {}
    return RelayCase(
        id=case_id, source=source, application_id=application_id, ats=ats,
        candidate_id=candidate_id, state=_STATES[state], reason=reason,
        category=_CATEGORIES[category], language=language, invite=invite, email=email,
        person_key=key,
        person=Person.model_validate_json(person_json) if person_json else None,
        stage=event.get("stage", ""), job_title=job_title, rejected_at=rejected_at,
        detected_at=detected_at, send_at=send_at, deadline_at=deadline_at, sent_at=sent_at,
        late=late, message_id=message_id, updated_at=updated_at, invite_note=invite_note,
        feedback=event.get("feedback") or "")


# --- audit -----------------------------------------------------------------------------------
def audit(conn: Connection, case_id: int | None, actor: str, action: str, reason: str = "",
          from_state: str | None = None, to_state: str | None = None,
          at: datetime | None = None) -> None:
    conn.execute(insert(t.audit_log).values(
        case_id=case_id, at=at or utcnow(), actor=actor, action=action,
        from_state=from_state, to_state=to_state, reason=reason))


_AUDIT = insert(t.audit_log)   # built once: the delivery loop inserts a few many times a second


def audit_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_AUDIT, rows)


def audit_trail(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(t.audit_log).where(t.audit_log.c.case_id == case_id)
                        .order_by(t.audit_log.c.id))
    return [dict(r._mapping) for r in rows]


def annotated(conn: Connection, case_ids: list[int]) -> set[int]:
    """Of these cases, those whose ATS already carries the "relay invitation sent" note."""
    found: set[int] = set()
    for ids in _chunks(case_ids):
        found.update(conn.scalars(select(t.audit_log.c.case_id).where(
            t.audit_log.c.case_id.in_(ids), t.audit_log.c.action == "annotated")))
    return found


# --- detecting -------------------------------------------------------------------------------
def case_values(event: RejectionEvent, *, email: str | None, language: str,
                now: datetime) -> dict[str, Any]:
    """The row of a newly detected case (for insert_cases)."""
    person = event.person
    return dict(
        source=event.source, application_id=event.application_id, ats=event.ats,
        candidate_id=event.candidate_id, state=CaseState.DETECTED.value, reason="",
        category=event.category.value, language=language, invite=True,
        email=email, person_key=person_key(email) if email else None,
        person_json=json.dumps({"first_name": person.first_name,
                                "last_name": person.last_name,
                                "full_name": person.full_name}, ensure_ascii=False),
        event_json=event.model_dump_json(), job_title=event.job_title,
        rejected_at=event.rejected_at, detected_at=now, late=False, updated_at=now)


def insert_cases(conn: Connection, rows: list[dict[str, Any]], *, actor: str,
                 now: datetime) -> dict[str, int]:
    """Insert detected cases of one source in one statement; returns {application id: case id}
    for the new ones (an application already known is left alone)."""
    if not rows:
        return {}
    dialect_insert = {"sqlite": sqlite_insert, "postgresql": pg_insert}[conn.dialect.name]
    created = dict(conn.execute(
        dialect_insert(t.relay_cases).values(rows)
        .on_conflict_do_nothing(index_elements=["source", "application_id"])
        .returning(c.application_id, c.id)).all())
    audit_many(conn, [dict(case_id=case_id, actor=actor, action="detected", reason="",
                           from_state=None, to_state=CaseState.DETECTED.value, at=now)
                      for case_id in created.values()])
    return created


def insert_case(conn: Connection, event: RejectionEvent, *, email: str | None,
                language: str, now: datetime, actor: str) -> int | None:
    """Insert one detected case; None if (source, application id) is already known."""
    created = insert_cases(
        conn, [case_values(event, email=email, language=language, now=now)],
        actor=actor, now=now)
    return created.get(event.application_id)


def _reopen_conditions(cancelled_by: tuple[str, ...]) -> list[Any]:
    """Cancelled, last by an actor starting with one of `cancelled_by`, never queued."""
    log = t.audit_log.c
    last_cancel = (select(log.actor).where(log.case_id == c.id,
                                           log.to_state == CaseState.CANCELLED.value)
                   .order_by(log.id.desc()).limit(1).scalar_subquery())
    return [c.state == CaseState.CANCELLED.value,
            ~select(t.outbox.c.id).where(t.outbox.c.case_id == c.id).exists(),
            or_(*(last_cancel.startswith(p, autoescape=True) for p in cancelled_by))]


def reopenable(conn: Connection, source: str, rejected: Mapping[str, datetime], *,
               cancelled_by: tuple[str, ...]) -> dict[str, int]:
    """Of these applications ({application id: its rejected_at as the ATS reports it now}),
    those whose case `reopen` would reopen: {application id: case id}. Read-only (the dry run)."""
    found: dict[str, int] = {}
    if not cancelled_by:
        return found
    for ids in _chunks(list(rejected)):
        for app_id, case_id, rejected_at in conn.execute(
                select(c.application_id, c.id, c.rejected_at).where(
                    c.source == source, c.application_id.in_(ids),
                    *_reopen_conditions(cancelled_by))):
            if rejected[app_id] > rejected_at:    # not the same rejection again, nor older
                found[app_id] = case_id
    return found


def reopen(conn: Connection, rows: list[dict[str, Any]], *, cancelled_by: tuple[str, ...],
           reason: str, actor: str, now: datetime) -> dict[str, int]:
    """cancelled → detected for the cases of these rows (`case_values` of rejections already
    known by their key) that the ATS cancelled and rejected again since: the row's rejected_at
    is newer than the case's, the case's latest cancellation was made by an actor starting with
    one of `cancelled_by` (a person's cancel stands), and no email was ever queued for it (so it
    was never sent, and its Message-ID is free). The case takes the new rejection's values and
    a fresh start (no schedule, the invitation back), with an audit row; the caller decides it
    as a new case. Returns {application id: case id} of those reopened, of one source."""
    if not rows:
        return {}
    newest = {r["application_id"]: r for r in rows}
    candidates = reopenable(conn, rows[0]["source"],
                            {a: r["rejected_at"] for a, r in newest.items()},
                            cancelled_by=cancelled_by)
    reopened: dict[str, int] = {}
    for app_id, case_id in candidates.items():
        row = newest[app_id]
        values = {k: v for k, v in row.items() if k not in ("source", "application_id")}
        values.update(state=CaseState.DETECTED.value, reason="", invite=True, invite_note="",
                      send_at=None, deadline_at=None, sent_at=None, late=False,
                      message_id=None, detected_at=now, updated_at=now)
        # The same conditions again, in the UPDATE: a racing process cannot reopen it twice.
        if conn.execute(update(t.relay_cases).where(
                c.id == case_id, c.rejected_at < row["rejected_at"],
                *_reopen_conditions(cancelled_by)).values(**values)).rowcount == 1:
            reopened[app_id] = case_id
    audit_many(conn, [dict(case_id=case_id, actor=actor, action="reopened", reason=reason,
                           from_state=CaseState.CANCELLED.value,
                           to_state=CaseState.DETECTED.value, at=now)
                      for case_id in reopened.values()])
    return reopened


# --- moving ----------------------------------------------------------------------------------
# Built once (the sending loop moves a few cases per commit, many times a second).
@lru_cache(maxsize=128)
def _move(columns: tuple[str, ...], n: int) -> Update:
    return (update(t.relay_cases)
            .where(t.id_in(c.id, n),
                   c.state == bindparam("from_state", type_=c.state.type))
            .values(state=bindparam("to_state", type_=c.state.type),
                    updated_at=bindparam("now", type_=c.updated_at.type),
                    **{k: bindparam(k, type_=c[k].type) for k in columns})
            .returning(c.id))


@lru_cache(maxsize=32)
def _per_case_update(columns: tuple[str, ...]) -> Update:
    return (update(t.relay_cases).where(c.id == bindparam("b_id"))
            .values({k: bindparam(k, type_=c[k].type) for k in columns}))


def transition_many(conn: Connection, changes: list[dict[str, Any]], to: CaseState,
                    *, from_state: CaseState, actor: str, now: datetime) -> set[int]:
    """Move many cases from one state to another, each with its own reason and values
    (`changes` = [{"id":…, "reason":…, other columns…}], the same keys in every item).
    Returns the ids that moved; a case another process moved first is left out."""
    assert to in TRANSITIONS[from_state]
    if not changes:
        return set()
    moved: set[int] = set()
    columns = tuple(k for k in changes[0] if k != "id")
    # The same values for every case (sent_at = now, say) go in the moving UPDATE itself.
    same = {k: changes[0][k] for k in columns
            if k != "reason" and all(ch[k] == changes[0][k] for ch in changes)}
    for ids in _chunks([ch["id"] for ch in changes]):
        moved.update(conn.scalars(_move(tuple(same), t.id_arity(ids)), dict(
            t.id_params(ids), from_state=from_state.value, to_state=to.value, now=now,
            **same)))
    columns = tuple(k for k in columns if k not in same)
    per_case = [{**{k: ch[k] for k in columns}, "b_id": ch["id"]}
                for ch in changes if ch["id"] in moved]
    if columns and per_case:
        conn.execute(_per_case_update(columns), per_case)
    audit_many(conn, [dict(case_id=ch["id"], actor=actor, action="state",
                           reason=ch.get("reason", ""), from_state=from_state.value,
                           to_state=to.value, at=now)
                      for ch in changes if ch["id"] in moved])
    return moved


def transition(conn: Connection, case_id: int, to: CaseState, *, actor: str,
               reason: str = "", allowed_from: Iterable[CaseState] | None = None,
               now: datetime | None = None, **values: Any) -> bool:
    """Move a case to `to` if it is in one of the states allowed to go there. Returns
    False (and changes nothing) if another process moved it first."""
    sources = [s for s in (allowed_from or TRANSITIONS) if to in TRANSITIONS[s]]
    now = now or utcnow()
    if len(sources) == 1:   # the audit's from-state is known without asking
        current = sources[0].value
    else:
        current = conn.execute(select(c.state).where(c.id == case_id)).scalar_one_or_none()
    result = conn.execute(
        update(t.relay_cases)
        .where(c.id == case_id, c.state.in_([s.value for s in sources]))
        .values(state=to.value, reason=reason, updated_at=now, **values))
    if result.rowcount != 1:
        return False
    audit(conn, case_id, actor, "state", reason=reason, from_state=current,
          to_state=to.value, at=now)
    return True


def set_message_ids(conn: Connection, message_ids: Mapping[int, str]) -> None:
    """Remember the Message-ID each case's mail was queued with ({case id: Message-ID})."""
    if message_ids:
        conn.execute(update(t.relay_cases).where(c.id == bindparam("b_id"))
                     .values(message_id=bindparam("message_id")),
                     [{"b_id": case_id, "message_id": mid}
                      for case_id, mid in message_ids.items()])


# --- finding ---------------------------------------------------------------------------------
case_from_row = _case    # for the store's joins that carry CASE_COLUMNS (consents.py)


def get(conn: Connection, case_id: int) -> RelayCase | None:
    row = conn.execute(select(*CASE_COLUMNS).where(c.id == case_id)).first()
    return _case(row) if row else None


def by_key(conn: Connection, source: str, application_id: str) -> RelayCase | None:
    row = conn.execute(select(*CASE_COLUMNS).where(
        c.source == source, c.application_id == application_id)).first()
    return _case(row) if row else None


def ids_by_key(conn: Connection, source: str, application_ids: Iterable[str]) -> dict[str, int]:
    """{application id: case id} for those of these applications that have a case."""
    found: dict[str, int] = {}
    for ids in _chunks(list(set(application_ids))):
        found.update(conn.execute(select(c.application_id, c.id).where(
            c.source == source, c.application_id.in_(ids))).all())
    return found


def known_unchanged(conn: Connection, source: str, stamps: Mapping[str, datetime]) -> set[str]:
    """Those of these applications whose case holds this very rejection time: a poll need not
    read them again (a new rejection time, a re-rejection, is not among them)."""
    held: dict[str, datetime] = {}
    for ids in _chunks(list(stamps)):
        held.update(conn.execute(select(c.application_id, c.rejected_at).where(
            c.source == source, c.application_id.in_(ids))).all())
    return {app_id for app_id, at in held.items()
            if at is not None and stamps[app_id] is not None
            and abs((at - stamps[app_id]).total_seconds()) < 0.001}


def due(conn: Connection, now: datetime, limit: int = 1000, after_id: int = 0
        ) -> list[RelayCase]:
    """Scheduled cases whose time has come, in id order (keyset pages via `after_id`)."""
    rows = conn.execute(
        select(*CASE_COLUMNS)
        .where(c.state == CaseState.SCHEDULED.value, c.send_at <= now, c.id > after_id)
        .order_by(c.id).limit(limit))
    return [_case(r) for r in rows]


def ids_in_state(conn: Connection, state: CaseState, among: list[int] | None = None
                 ) -> list[int]:
    """Ids of the cases in this state (of those in `among`, if given), in id order."""
    query = select(c.id).where(c.state == state.value).order_by(c.id)
    if among is None:
        return list(conn.scalars(query))
    return sorted(i for ids in _chunks(sorted(set(among)))
                  for i in conn.scalars(query.where(c.id.in_(ids))))


def sent_not_annotated(conn: Connection, case_ids: list[int]) -> set[int]:
    """Of these cases, the sent ones whose ATS has not been told yet."""
    return set(ids_in_state(conn, CaseState.SENT, case_ids)) - annotated(conn, case_ids)


def counts_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(c.state, func.count()).group_by(c.state))
    return {state: n for state, n in rows}


def count_late(conn: Connection, now: datetime) -> int:
    """Cases not yet sent that were planned late or are past their deadline by now."""
    rows = conn.execute(select(c.late, c.deadline_at).where(
        c.state.in_([CaseState.SCHEDULED.value, CaseState.SENDING.value,
                     CaseState.HELD.value]))).all()
    return sum(1 for late, deadline in rows if late or (deadline and deadline < now))


def count_sent_late(conn: Connection, case_ids: Iterable[int] | None = None) -> int:
    """Sent cases whose email went out after their deadline (of `case_ids`, if given)."""
    query = select(func.count()).where(c.state == CaseState.SENT.value,
                                       c.deadline_at.is_not(None), c.sent_at > c.deadline_at)
    if case_ids is None:
        return conn.execute(query).scalar_one()
    return sum(conn.execute(query.where(c.id.in_(ids))).scalar_one()
               for ids in _chunks(sorted(set(case_ids))))


def set_invitation(conn: Connection, changes: list[tuple[int, bool, str]], *, actor: str,
                   now: datetime) -> set[int]:
    """Carry (True) or drop (False) the relay invitation of scheduled cases, with the note why
    it is dropped: [(case id, invite, note)]. Each change is an audit row; returns the ids
    changed (a case no longer scheduled is left alone)."""
    changed: set[int] = set()
    for case_id, invite, note in changes:
        if conn.execute(update(t.relay_cases).where(
                c.id == case_id, c.state == CaseState.SCHEDULED.value)
                .values(invite=invite, invite_note=note, updated_at=now)).rowcount == 1:
            changed.add(case_id)
    audit_many(conn, [dict(case_id=case_id, actor=actor, action="invitation",
                           reason=note or "the relay invitation is carried again",
                           from_state=None, to_state=None, at=now)
                      for case_id, _, note in changes if case_id in changed])
    return changed


# --- suppressions and cooldown ---------------------------------------------------------------
def suppressed_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(set(keys))):
        found.update(conn.scalars(select(t.suppressions.c.address_hash).where(
            t.suppressions.c.address_hash.in_(chunk))))
    return found


def mailed_keys(conn: Connection, keys: Iterable[str], since: datetime,
                exclude: Iterable[int], owed_note: str | None = None) -> set[str]:
    """Of these people, those already mailed since `since`, or in hand now. An ambiguous email
    (handed to the server, answer unknown) counts as mailed: it may have arrived, and a second
    rejection is worse than none. A sent email whose `invite_note` is `owed_note` does not
    count: it was held back from the invitation (the person was still in process
    elsewhere), and their next rejection is owed its own email."""
    excluded = set(exclude)
    # A case merely planned (scheduled, held) does not count: it may yet be cancelled, and
    # the person's other rejection would then be lost. The sender applies the cooldown.
    # The people's cases are read by person_key alone and judged here: with the state in the
    # query, SQLite walked the state index through every sent case (an OR of two states), a
    # page at a time, so a large backlog slowed each page down as it went out.
    found: set[str] = set()
    for chunk in _chunks(list(set(keys))):
        for key, state, sent_at, note, case_id in conn.execute(
                select(c.person_key, c.state, c.sent_at, c.invite_note, c.id)
                .where(c.person_key.in_(chunk))):
            if case_id in excluded or key in found:
                continue
            if owed_note and (note or "") == owed_note:
                continue   # in hand or sent: either way it leaves the next rejection owed
            if state == CaseState.SENDING.value or (
                    state in (CaseState.SENT.value, CaseState.AMBIGUOUS.value)
                    and sent_at is not None and sent_at >= since):
                found.add(key)
    return found


def is_suppressed(conn: Connection, key: str) -> bool:
    return conn.execute(select(t.suppressions.c.address_hash).where(
        t.suppressions.c.address_hash == key)).first() is not None


def suppress(conn: Connection, key: str, reason: str) -> None:
    if not is_suppressed(conn, key):
        conn.execute(insert(t.suppressions).values(address_hash=key, reason=reason,
                                                   at=utcnow()))
