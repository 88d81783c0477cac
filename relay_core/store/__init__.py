"""The store: the engine, transactions, the run lock and cursors (db.py), and one module per
aggregate: cases.py, outbox.py, consents.py, handoffs.py, ledger.py, retention.py; reports.py
and console.py hold the read-only queries of `status`, `report` and the HR console.

Code outside the store holds a `Connection` only to hand it back to store functions: that keeps
a caller's several writes in one transaction without it knowing any table."""

from sqlalchemy import Connection

from relay_core.store.cases import person_key
from relay_core.store.db import Store, open_store
from relay_core.store.tables import utcnow

__all__ = ["Connection", "Store", "open_store", "person_key", "utcnow"]
