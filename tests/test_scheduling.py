from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relay_core.config import Schedule
from relay_core.cycle.scheduling import BusinessCalendar

JST = ZoneInfo("Asia/Tokyo")


def cal(**kw) -> BusinessCalendar:
    return BusinessCalendar(Schedule(**kw), JST)


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=JST)


def test_delay_then_next_business_window():
    # Rejected Friday 2025-06-20 17:00 JST + 24h = Saturday → Monday 10:00.
    plan = cal(delay_hours=24).plan(jst(2025, 6, 20, 17), now=jst(2025, 6, 20, 17))
    assert plan.send_at == jst(2025, 6, 23, 10)
    assert plan.deadline_at == jst(2025, 6, 25, 18)   # 3 business days: Mon, Tue, Wed
    assert not plan.late


def test_inside_window_sends_at_once_with_no_delay():
    plan = cal(delay_hours=0).plan(jst(2025, 6, 23, 11), now=jst(2025, 6, 23, 11))
    assert plan.send_at == jst(2025, 6, 23, 11)


def test_evening_moves_to_next_morning():
    plan = cal(delay_hours=0).plan(jst(2025, 6, 23, 19, 30), now=jst(2025, 6, 23, 19, 30))
    assert plan.send_at == jst(2025, 6, 24, 10)


def test_japanese_national_holidays_are_skipped():
    # Golden Week 2025: 5/3 Sat, 5/4 Sun, 5/5 (こどもの日) Mon and 5/6 (振替休日) Tue.
    plan = cal(delay_hours=24).plan(jst(2025, 5, 2, 12), now=jst(2025, 5, 2, 12))
    assert plan.send_at == jst(2025, 5, 7, 10)
    assert plan.deadline_at == jst(2025, 5, 9, 18)


def test_other_country_calendar():
    # 2025-07-04 is a US holiday but a normal Friday in Japan.
    us = BusinessCalendar(Schedule(delay_hours=0, holidays="US"), ZoneInfo("America/New_York"))
    ny = ZoneInfo("America/New_York")
    plan = us.plan(datetime(2025, 7, 3, 19, tzinfo=ny), now=datetime(2025, 7, 3, 19, tzinfo=ny))
    assert plan.send_at == datetime(2025, 7, 7, 10, tzinfo=ny)
    jp = cal(delay_hours=0).plan(jst(2025, 7, 3, 19), now=jst(2025, 7, 3, 19))
    assert jp.send_at == jst(2025, 7, 4, 10)


def test_long_delay_never_passes_the_deadline():
    plan = cal(delay_hours=72, deadline_business_days=1).plan(
        jst(2025, 6, 23, 11), now=jst(2025, 6, 23, 11))
    assert plan.send_at <= plan.deadline_at == jst(2025, 6, 24, 18)
    assert not plan.late


def test_detected_after_deadline_is_late_and_sent_at_next_window():
    now = jst(2025, 6, 30, 20)
    plan = cal(delay_hours=24).plan(jst(2025, 6, 20, 12), now=now)
    assert plan.late
    assert plan.send_at == jst(2025, 7, 1, 10)


def test_always_means_any_time_any_weekday_but_still_skips_holidays():
    plan = cal(delay_hours=0, business_hours="always").plan(
        jst(2025, 6, 23, 3), now=jst(2025, 6, 23, 3))
    assert plan.send_at == jst(2025, 6, 23, 3)
    weekend = cal(delay_hours=0, business_hours="always").plan(
        jst(2025, 6, 21, 3), now=jst(2025, 6, 21, 3))
    assert weekend.send_at == jst(2025, 6, 23, 0)


def test_results_are_utc():
    plan = cal().plan(jst(2025, 6, 20, 17), now=jst(2025, 6, 20, 17))
    assert plan.send_at.tzinfo == UTC


@pytest.mark.parametrize("hours", range(0, 73, 7))
def test_send_at_is_always_inside_business_hours(hours):
    c = cal(delay_hours=hours)
    for offset in range(0, 24 * 7, 5):
        rejected = jst(2025, 6, 16) + timedelta(hours=offset)
        plan = c.plan(rejected, now=rejected)
        local = plan.send_at.astimezone(JST)
        assert c.is_business_day(local.date())
        assert (10, 0) <= (local.hour, local.minute) <= (18, 0)
        assert plan.send_at >= rejected
