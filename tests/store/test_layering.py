"""No SQL outside the store: apart from relay_core/store/ and the frozen migrations, no module of
the core or of the connectors imports SQLAlchemy or the store's tables. Everything else reaches
the database through the store's aggregate modules (cases.py, outbox.py, consents.py, ...).

Imports are read with `ast`, so an import inside a function or under TYPE_CHECKING counts too,
and so does reaching `relay_core.store.tables` as an attribute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "relay_core"
EXEMPT = (PACKAGE / "store", PACKAGE / "migrations", PACKAGE / "connectors")
CHECKED = sorted([*(p for p in PACKAGE.rglob("*.py")
                    if not any(p.is_relative_to(folder) for folder in EXEMPT)),
                  *(ROOT / "connectors").glob("*.py")])
FORBIDDEN = ("sqlalchemy", "relay_core.store.tables")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "connectors":
        parts = ("relay_core", *parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def table_access(source: str, module: str = "relay_core.cycle.example") -> list[str]:
    """Every import of SQLAlchemy or of the store's tables in `source`, wherever it sits
    (`from a import b` counts as a and a.b; relative imports are resolved against `module`),
    and every `store.tables` attribute reached."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:-node.level]
                base = ".".join([*package, base] if base else package)
            found += [name for name in (base, *(f"{base}.{a.name}" for a in node.names))
                      if _forbidden(name)]
        elif (isinstance(node, ast.Attribute) and node.attr == "tables"
              and ast.unparse(node.value).split(".")[-1] == "store"):
            found.append(ast.unparse(node))
    return sorted(found)


def test_the_checked_modules_cover_the_core():
    names = {module_name(p) for p in CHECKED}
    assert {"relay_core.cycle.ingest", "relay_core.cycle.sending", "relay_core.cycle.outbox",
            "relay_core.cycle.approval", "relay_core.commands.status",
            "relay_core.records.report", "relay_core.web.webhooks", "relay_core.web.consent",
            "relay_core.web.agency", "relay_core.records.ledger",
            "relay_core.records.retention", "relay_core.records.consent.records",
            "relay_core.records.handoff.deliver", "relay_core.runtime",
            "relay_core.connectors.greenhouse"} <= names
    assert not any(n.startswith(("relay_core.store", "relay_core.migrations")) for n in names)


@pytest.mark.parametrize("path", CHECKED, ids=module_name)
def test_no_sqlalchemy_and_no_tables_outside_the_store(path: Path):
    assert table_access(path.read_text(encoding="utf-8"), module_name(path)) == []


@pytest.mark.parametrize("source", [
    "import sqlalchemy",
    "import sqlalchemy as sa",
    "import sqlalchemy.exc as e",
    "from sqlalchemy import select",
    "from sqlalchemy.exc import IntegrityError",
    "from sqlalchemy.dialects.sqlite import insert",
    "import relay_core.store.tables",
    "from relay_core.store import tables as t",
    "from relay_core.store.tables import handoffs",
    "from ..store import tables",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy import Connection",
    "def f():\n    from sqlalchemy import update\n",
    "import relay_core.store\nx = relay_core.store.tables.handoffs",
])
def test_the_check_sees_each_way_in(source: str):
    assert table_access(source) != []


def test_the_check_lets_the_store_functions_through():
    assert table_access("from relay_core.store import Connection, Store, cases, consents\n"
                        "from relay_core.store.outbox import OutboxMessage, claim\n"
                        "from relay_core.store.ledger import CreditEntry, balances\n"
                        "from relay_core.models import RelayCase\n") == []
