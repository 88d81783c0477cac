"""The store: relay cases, the append-only audit log, cursors and the outbox."""

from relay_core.store.db import Store, open_store
from relay_core.store.tables import utcnow

__all__ = ["Store", "open_store", "utcnow"]
