"""Small value helpers every connector shares: ATS text and zone names read defensively, times
written one way. (Times are read in `times`.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def clean_text(value: Any) -> str:
    """Control characters (CR/LF included) become one space: ATS text is data, never layout."""
    return _CONTROL.sub(" ", str(value)).strip() if value is not None else ""


def zone_name(value: Any) -> str | None:
    """An IANA time zone name this system knows (a candidate's "Asia/Tokyo"), else None."""
    try:
        return str(ZoneInfo(value)) if isinstance(value, str) and value else None
    except (ValueError, KeyError, OSError):
        return None


def iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
