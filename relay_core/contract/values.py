"""Small value helpers every connector shares: ATS text and times, read defensively."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def clean_text(value: Any) -> str:
    """Control characters (CR/LF included) become one space: ATS text is data, never layout."""
    return _CONTROL.sub(" ", str(value)).strip() if value is not None else ""


def parse_time(value: Any, default_tz: tzinfo = UTC) -> datetime | None:
    """An ISO 8601 time (a trailing Z allowed); a time without offset is in `default_tz`.
    Anything else is None, never an exception."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=default_tz)


def iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
