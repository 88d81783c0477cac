"""When to send: after the cooling-off delay, inside business hours in the company's timezone,
on business days (weekends and the configured country's national holidays skipped), and never
later than `deadline_business_days` business days after the rejection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from relay_core.config import Schedule


@lru_cache(maxsize=16)
def _holidays(country: str, year: int) -> frozenset[date]:
    if not country:
        return frozenset()
    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class Plan:
    send_at: datetime        # UTC
    deadline_at: datetime    # UTC
    late: bool               # the mail cannot reach the candidate by the deadline


class BusinessCalendar:
    def __init__(self, schedule: Schedule, tz: ZoneInfo):
        self.schedule = schedule
        self.tz = tz
        self.window = schedule.window or (time(0, 0), time(23, 59, 59))

    def is_business_day(self, day: date) -> bool:
        return (day.weekday() in self.schedule.business_days
                and day not in _holidays(self.schedule.holidays, day.year))

    def next_business_day(self, day: date) -> date:
        day += timedelta(days=1)
        for _ in range(366):
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError("no business day within a year; check schedule.business_days")

    def next_business_moment(self, moment: datetime) -> datetime:
        """The earliest time at or after `moment` that lies inside business hours."""
        local = moment.astimezone(self.tz)
        start, end = self.window
        day = local.date()
        if self.is_business_day(day):
            if local.time() < start:
                return self._at(day, start)
            if local.time() <= end:
                return local.astimezone(UTC)
        return self._at(self.next_business_day(day), start)

    def add_business_days(self, day: date, n: int) -> date:
        for _ in range(n):
            day = self.next_business_day(day)
        return day

    def _at(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, self.tz).astimezone(UTC)

    def plan(self, rejected_at: datetime, now: datetime) -> Plan:
        start, end = self.window
        rejected_local = rejected_at.astimezone(self.tz)
        deadline = self._at(self.add_business_days(rejected_local.date(),
                                                   self.schedule.deadline_business_days), end)
        send_at = self.next_business_moment(
            rejected_at + timedelta(hours=self.schedule.delay_hours))
        # The cooling-off delay gives way to the promise of an answer within the deadline.
        send_at = min(send_at, max(deadline, self.next_business_moment(rejected_at)))
        if send_at < now:
            send_at = self.next_business_moment(now)
        return Plan(send_at=send_at, deadline_at=deadline, late=send_at > deadline)
