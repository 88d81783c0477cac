"""What one cycle did, per source and overall: counts for `run`, `status` and the logs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class SourceReport:
    source: str
    detected: int = 0
    already_known: int = 0
    reopened: int = 0            # of `detected`: cancelled by the ATS, then rejected again
    cancelled: int = 0           # pending emails the ATS took back (un-rejected, now withdrawn)
    scheduled: int = 0           # planned: sent at their time, or held (counted in `held` too)
    held: int = 0                # waiting for a person's approval
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: list[str] = field(default_factory=list)
    error: str = ""
    polled: bool = False         # a webhook-only source is not polled


@dataclass
class CycleReport:
    sources: dict[str, SourceReport] = field(default_factory=dict)
    sent: int = 0
    cancelled_at_send: int = 0   # by the re-check before sending (see `cancelled`)
    failed: int = 0
    retry_later: int = 0
    late: int = 0                # waiting cases planned late or past their deadline by now
    sent_late: int = 0           # of the cases sent this cycle, those past their deadline
    skipped_at_send: int = 0     # a second email to one person, found when it was due
    no_invitation: int = 0       # invitations dropped at the re-check (in process elsewhere)
    deferred: int = 0            # over mail.smtp.max_per_day: they wait for the next day
    purged: int | None = None    # cases whose data the daily purge deleted; None: no purge ran
    ambiguous: int = 0           # emails handed over whose answer never came (this cycle)
    stuck: int = 0               # failed cases that gave up after temporary failures (all)
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None   # why the cycle ended early (a signal, a lost lock), else None

    # Emails cancelled this cycle, wherever the ATS took the rejection back: at the re-check
    # before sending, or already at the poll (un-rejected rows, a reason now a withdrawal).
    # A property with a setter so `report.cancelled += n` keeps working where sending counts.
    @property
    def cancelled(self) -> int:
        return self.cancelled_at_send + sum(s.cancelled for s in self.sources.values())

    @cancelled.setter
    def cancelled(self, value: int) -> None:
        self.cancelled_at_send = value - sum(s.cancelled for s in self.sources.values())

    def summary(self) -> dict[str, object]:
        """Counts and messages for the cycle history (store/runs.py); no personal data."""
        return {"sent": self.sent, "sent_late": self.sent_late, "cancelled": self.cancelled,
                "failed": self.failed, "retry_later": self.retry_later, "late": self.late,
                "held": sum(s.held for s in self.sources.values()),
                "deferred": self.deferred, "purged": self.purged,
                "ambiguous": self.ambiguous, "stuck": self.stuck,
                "skipped_at_send": self.skipped_at_send,
                "detected": sum(s.detected for s in self.sources.values()),
                "scheduled": sum(s.scheduled for s in self.sources.values()),
                "skipped": sum(s.skipped for s in self.sources.values()),
                "errors": [*(f"{s.source}: {s.error}" for s in self.sources.values()
                             if s.error), *self.errors]}

    @property
    def ok(self) -> bool:
        return not self.errors and not any(s.error for s in self.sources.values())
