"""relay_core.contract.times: every date and time the product reads from outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from relay_core.contract.times import parse_retry_after, parse_time, read_sheet_time, read_time
from relay_core.records.handoff import channels

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)


# --- ISO 8601: APIs, cursors, what people type ----------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("2026-09-01T03:00:00Z", NOW),
    ("2026-09-01T12:00:00+09:00", NOW),
    ("2026-09-01T03:00:00", NOW),                              # naive: the default zone
    ("2026-09-01", datetime(2026, 9, 1, tzinfo=UTC)),          # a date: midnight
    (" 2026-09-01T03:00:00Z\n", NOW),
])
def test_parse_time_reads_iso_8601(text, expected):
    assert parse_time(text) == expected


def test_parse_time_puts_a_naive_time_in_the_zone_given():
    assert parse_time("2026-09-01T12:00:00", TOKYO) == NOW
    assert parse_time("2026-09-01T12:00:00Z", TOKYO) == datetime(2026, 9, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "   ", 1788224400, "yesterday", "2026-13-01",
                                   "2026/09/01", "2025年6月1日", b"2026-09-01", ["2026-09-01"]])
def test_parse_time_never_raises(value):
    assert parse_time(value) is None


def test_read_time_raises_and_can_leave_the_zone_to_the_caller():
    with pytest.raises(ValueError):
        read_time("next tuesday")
    assert read_time("2026-09-01T03:00:00", None).tzinfo is None
    assert read_time("2026-09-01", TOKYO) == datetime(2026, 9, 1, tzinfo=TOKYO)


# --- spreadsheet exports (HRMOS採用) ----------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("2025年6月1日", datetime(2025, 6, 1, tzinfo=TOKYO)),
    ("２０２５年６月１日", datetime(2025, 6, 1, tzinfo=TOKYO)),
    ("2025年6月1日 14:30", datetime(2025, 6, 1, 14, 30, tzinfo=TOKYO)),
    ("2025/6/1", datetime(2025, 6, 1, tzinfo=TOKYO)),
    ("2025/06/01 09:05:07", datetime(2025, 6, 1, 9, 5, 7, tzinfo=TOKYO)),
    ("2025-06-01", datetime(2025, 6, 1, tzinfo=TOKYO)),
    ("2025-06-01T10:00:00", datetime(2025, 6, 1, 10, tzinfo=TOKYO)),
    ("2025-06-01T10:00:00+00:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),
    ("2025-06-01T10:00:00Z", datetime(2025, 6, 1, 10, tzinfo=UTC)),
    ("2025-06-01 10:00+09:00", datetime(2025, 6, 1, 10, tzinfo=timezone(timedelta(hours=9)))),
    ("", None),
])
def test_dates(text, expected):
    assert read_sheet_time(text, TOKYO) == expected


@pytest.mark.parametrize("text", ["2025年13月40日", "2025/2/30", "6月1日", "昨日", "2025.6.1"])
def test_bad_dates_raise(text):
    with pytest.raises(ValueError):
        read_sheet_time(text, TOKYO)


# --- Retry-After (RFC 9110 section 10.2.3) ---------------------------------------------------
def test_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("12") == 12
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("value, seconds", [
    ("0", 0), (" 120 ", 120), ("1.5", 1.5),
    ("Tue, 01 Sep 2026 03:01:30 GMT", 90),
    ("Tue, 01 Sep 2026 03:01:30 -0000", 90),                 # no zone given: UTC
    ("Tue, 01 Sep 2026 12:01:30 +0900", 90),
    ("Tue, 01 Sep 2026 02:00:00 GMT", 0),                    # already past
    ("", None), ("soon", None), ("-5", None), ("inf", None), ("nan", None), ("1e3", None),
])
def test_retry_after_seconds_or_http_date(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value", ["7", "Wed, 21 Oct 2015 07:28:00 GMT", "garbage", None])
def test_agency_handoffs_read_retry_after_with_the_same_parser(value):
    seconds = parse_retry_after(value)
    waited = channels.classify(503, {"Retry-After": value} if value else {}).retry_after
    assert waited == (None if seconds is None else timedelta(seconds=seconds))
