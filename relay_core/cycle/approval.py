"""HR's hand on the queue: with `schedule.hold_for_approval`, detected cases wait as `held`
until someone approves them; any case not yet sent can be cancelled."""

from __future__ import annotations

from relay_core.models import CaseState
from relay_core.store import Store, cases, utcnow


def approve(store: Store, case_ids: list[int] | None, actor: str) -> list[int]:
    """held → scheduled for these cases (None: every held case). Returns the ids approved."""
    with store.begin() as conn:
        if case_ids is None:
            case_ids = cases.ids_in_state(conn, CaseState.HELD)
        moved = cases.transition_many(conn, [{"id": i, "reason": "approved"} for i in case_ids],
                                      CaseState.SCHEDULED, from_state=CaseState.HELD,
                                      actor=actor, now=utcnow())
    return sorted(moved)


def cancel(store: Store, case_ids: list[int], actor: str, reason: str) -> list[int]:
    """Cancel the mail of cases that are held or scheduled, or give up on a failed one (which
    stops `run` exiting 1 for a case that gave up after temporary failures). Returns the ids
    cancelled."""
    cancelled = []
    with store.begin() as conn:
        for case_id in case_ids:
            if cases.transition(conn, case_id, CaseState.CANCELLED, actor=actor, reason=reason,
                                allowed_from=[CaseState.HELD, CaseState.SCHEDULED,
                                              CaseState.FAILED]):
                cancelled.append(case_id)
    return cancelled


def hold(store: Store, case_ids: list[int], actor: str, reason: str = "held for review"
         ) -> list[int]:
    """scheduled → held for these cases: they wait until someone approves them."""
    with store.begin() as conn:
        moved = cases.transition_many(conn, [{"id": i, "reason": reason} for i in case_ids],
                                      CaseState.HELD, from_state=CaseState.SCHEDULED,
                                      actor=actor, now=utcnow())
    return sorted(moved)
