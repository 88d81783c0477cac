"""The consent, handoff and ledger code reaches the database only through the store's aggregate
modules (store/consents.py, store/handoffs.py, store/ledger.py, store/retention.py): no module
under relay_core/records/, nor the consent, agency and console routes, imports SQLAlchemy or
the tables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "relay_core"
CHECKED = sorted([*(ROOT / "records").rglob("*.py"), *(ROOT / "web" / "admin").rglob("*.py"),
                  ROOT / "web" / "consent.py",
                  ROOT / "web" / "agency.py"])
FORBIDDEN = ("sqlalchemy", "relay_core.store.tables")


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def table_access(source: str) -> list[str]:
    """Every import of SQLAlchemy or of the store's tables in `source`, wherever it sits (a
    function-level import counts too), and every `store.tables` attribute reached."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if _forbidden(node.module):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names
                      if _forbidden(f"{node.module}.{a.name}")]
        elif (isinstance(node, ast.Attribute) and node.attr == "tables"
              and ast.unparse(node.value).split(".")[-1] == "store"):
            found.append(ast.unparse(node))
    return found


def test_the_checked_modules_exist():
    names = {p.relative_to(ROOT).as_posix() for p in CHECKED}
    assert {"records/ledger.py", "records/retention.py", "records/consent/records.py",
            "records/handoff/deliver.py", "web/consent.py", "web/agency.py"} <= names


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_sqlalchemy_and_no_tables_outside_the_store(path: Path):
    assert table_access(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("source", [
    "import sqlalchemy",
    "import sqlalchemy as sa",
    "from sqlalchemy import select",
    "from sqlalchemy.exc import IntegrityError",
    "import relay_core.store.tables",
    "from relay_core.store import tables as t",
    "from relay_core.store.tables import handoffs",
    "def f():\n    from sqlalchemy import update\n",
    "import relay_core.store\nx = relay_core.store.tables.handoffs",
])
def test_the_check_sees_each_way_in(source: str):
    assert table_access(source) != []


def test_the_check_lets_the_store_functions_through():
    assert table_access("from relay_core.store import Connection, Store, consents, handoffs\n"
                        "from relay_core.store.ledger import CreditEntry, balances\n") == []
