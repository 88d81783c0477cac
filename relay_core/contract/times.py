"""Reading dates and times from outside: ATS records and cursors, HTTP headers, spreadsheet
exports, what an operator types. The one place that knows these formats.

- `parse_time`    ISO 8601 from an API, a header or a cursor; None when unreadable, never raises
- `read_time`     the same for what a person wrote: raises ValueError, for the caller to explain
- `read_sheet_time`  ISO 8601, or the forms a Japanese spreadsheet export writes:
                  2025年6月1日, 2025年6月1日 14:30, 2025/6/1, 2025/06/01 10:00:00
- `parse_retry_after`  a `Retry-After` header as seconds to wait (seconds or an HTTP-date)

A date without a time is midnight; a time without an offset is in the zone the caller names
(UTC for APIs, the company's zone for what its people and exports write).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

_JA_DATE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
                      r"(?:\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_SLASH_DATE = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def read_time(text: str, default_tz: tzinfo | None = UTC) -> datetime:
    """An ISO 8601 date or date-time (a trailing Z allowed, surrounding blanks ignored). A
    value without an offset is in `default_tz`; None leaves it naive, for a caller that
    insists on an explicit offset. Raises ValueError."""
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is None and default_tz is not None:
        when = when.replace(tzinfo=default_tz)
    return when


def parse_time(value: Any, default_tz: tzinfo = UTC) -> datetime | None:
    """`read_time` for data: anything that is not a readable ISO 8601 string is None, never an
    exception (the caller decides whether a missing time makes the record unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return read_time(value, default_tz)
    except ValueError:
        return None


def read_sheet_time(text: str, default_tz: tzinfo) -> datetime | None:
    """A cell of a spreadsheet export: `2025年6月1日` (full-width digits too), `2025/6/1`,
    either with a time, or ISO 8601; naive means `default_tz`. An empty cell is None; anything
    else unreadable (2025/2/30, 6月1日) raises ValueError, so the row can say which cell."""
    if not text:
        return None
    match = _JA_DATE.match(text) or _SLASH_DATE.match(text)
    if match is None:
        return read_time(text, default_tz)
    y, mo, d, hh, mm, ss = (int(g) if g else 0 for g in match.groups())
    return datetime(y, mo, d, hh, mm, ss, tzinfo=default_tz)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (RFC 9110 section 10.2.3): delay-seconds
    (a decimal fraction is tolerated) or an HTTP-date, which is measured from `now` (default:
    the clock) and is 0 once past. None when absent or unreadable; never negative."""
    value = (value or "").strip()
    if not value:
        return None
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:          # "-0000": UTC, origin unknown (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


__all__ = ["parse_retry_after", "parse_time", "read_sheet_time", "read_time"]
