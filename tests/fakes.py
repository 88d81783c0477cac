"""An in-memory connector: the core is tested against this, never against HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from relay_core.contract.base import ApplicationStatus, Connector, Page
from relay_core.models import Category, Flags, Person, RejectionEvent


class FakeConnector(Connector):
    type = "fake"

    def __init__(self, name: str = "fake", events: list[RejectionEvent] | None = None,
                 statuses: dict[str, ApplicationStatus] | None = None):
        self.name = name
        self.events = list(events or [])
        self.statuses = dict(statuses or {})
        self.recheck_calls: list[list[str]] = []
        self.annotations: list[tuple[str, str]] = []

    def poll(self, cursor: str | None) -> Iterator[Page]:
        start = int(cursor or 0)
        batch = self.events[start:]
        yield Page(events=batch, cursor=str(start + len(batch)))

    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        self.recheck_calls.append(list(application_ids))
        return {a: self.statuses.get(a, ApplicationStatus.REJECTED) for a in application_ids}

    def annotate(self, application_id: str, text: str) -> bool:
        self.annotations.append((application_id, text))
        return True


def event(app_id: str = "1001", *, source: str = "fake", email: str = "taro@example.com",
          category: Category = Category.WE_REJECTED,
          rejected_at: datetime | None = None, language: str | None = "ja",
          **flags) -> RejectionEvent:
    return RejectionEvent(
        ats="fake", source=source, application_id=app_id, candidate_id=f"c{app_id}",
        person=Person(last_name="山田", first_name="太郎", full_name="山田 太郎",
                      emails=[email] if email else [], language=language),
        job_title="法人営業", stage="1次面接", category=category,
        rejected_at=rejected_at or datetime(2025, 6, 20, 1, 0, tzinfo=UTC),
        flags=Flags(**flags))
