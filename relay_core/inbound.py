"""Reading what strangers send: token comparison and JSON parsing that cannot crash.

Everything here takes input from unauthenticated requests (relay links, signature headers,
CSRF fields, webhook bodies), so each function answers every input with a result or a
`BadInput` naming what is wrong, never with TypeError or RecursionError (which a web route
would turn into a 500).
"""

from __future__ import annotations

import hmac
import json
import re
from itertools import accumulate
from typing import Any

from pydantic import ValidationError

MAX_JSON_DEPTH = 64


class BadInput(ValueError):
    """The input is unusable as it is; the message says why (never quotes the input)."""


def same_token(expected: str | bytes, received: object) -> bool:
    """Whether `received` equals `expected`, in constant time. Both sides are compared as
    ASCII bytes: anything that is not a str or bytes, or holds a non-ASCII character, is
    simply not equal (`hmac.compare_digest` raises TypeError on a non-ASCII str)."""
    left, right = _ascii(expected), _ascii(received)
    if left is None or right is None:
        return False
    return hmac.compare_digest(left, right)


def _ascii(value: object) -> bytes | None:
    if isinstance(value, str):
        return value.encode("ascii") if value.isascii() else None
    if isinstance(value, bytes | bytearray):
        return bytes(value) if value.isascii() else None
    return None


# Escape pairs first (so `\\"` cannot end a string), then whole strings (so brackets inside
# them do not count): both patterns are linear, with nothing to backtrack into.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """BadInput when the JSON text nests arrays/objects deeper than `limit`. Iterative, so a
    body nested 50,000 deep is refused before the (recursive) parser ever sees it. Text that
    is not JSON may be judged deeper than it is; the parser refuses it anyway."""
    if text.count("[") + text.count("{") <= limit:
        return      # the common case: too few brackets to be too deep, wherever they are
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    if max(accumulate(_STEP[c] for c in skeleton), default=0) > limit:
        raise BadInput(f"the JSON is nested more than {limit} levels deep; "
                       "flatten the document")


def load_json(raw: bytes | str, *, limit: int = MAX_JSON_DEPTH) -> Any:
    """The parsed JSON document of a request body, or BadInput: not UTF-8, not JSON, or
    nested deeper than `limit`."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("the body is not UTF-8 text") from None
    else:
        text = raw
    check_depth(text, limit)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadInput("the body is not valid JSON") from None


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic ValidationError as `where: what` for the sender, without the values it
    refused (they may be personal data, or an attacker's probe)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "the body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
