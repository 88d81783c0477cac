"""How `run` and `serve` log: plain lines for people, or `--log-format json`, one JSON object
per line for a log collector (journald, Fluent Bit, CloudWatch…).

Log messages name cases by id and sources by name, never a candidate's name or address
(tests/test_privacy.py checks a whole run); the JSON formatter adds only the fields a record
carries on purpose (`extra={"case": 12}`), never the arguments of a message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")
# Fields a log call may attach with `extra=`; anything else stays out of the JSON object.
FIELDS = ("case", "cases", "source", "sources", "event", "sent", "failed", "cancelled",
          "retry_later", "late", "detected", "scheduled", "skipped", "ok", "errors", "listen",
          "console", "seconds", "version", "port")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                     timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        entry.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: an exception's text or traceback may quote the data it handled.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", *, verbose: bool = False,
                      level: int = logging.WARNING) -> None:
    """Replace the root handlers: stderr, plain or JSON. `verbose` lowers the level to INFO
    for every logger; otherwise the service's own loggers log at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
    handler.set_name("career-relay")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "career-relay"]:
        root.removeHandler(old)   # ours from an earlier call; other handlers stay
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("career_relay").setLevel(logging.INFO if verbose else level)
