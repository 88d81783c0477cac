"""The store: relay cases, the append-only audit log, cursors and the outbox."""

from .db import Store, open_store
from .tables import utcnow

__all__ = ["Store", "open_store", "utcnow"]
