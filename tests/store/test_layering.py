"""The cycle, the ATS webhook receiver and the commands reach the database only through the
Store: no SQL, no SQLAlchemy, no table objects of their own (the SQL lives in relay_core/store).

Imports are read with `ast`, so an import inside a function or under TYPE_CHECKING counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "relay_core"
# relay_core/records, web/consent.py and web/agency.py join this list once they use the store's
# aggregates as well.
CHECKED = sorted([*(PACKAGE / "cycle").rglob("*.py"), *(PACKAGE / "commands").rglob("*.py"),
                  PACKAGE / "web" / "webhooks.py"])
FORBIDDEN = ("sqlalchemy", "relay_core.store.tables")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module an import statement in `source` names, `from a import b` as both a and
    a.b (b may be a submodule); relative imports resolved against `module`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:-node.level]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def forbidden_in(source: str, module: str) -> list[str]:
    return sorted(name for name in imported_modules(source, module)
                  if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))


def test_the_list_of_checked_modules_is_not_empty():
    names = {module_name(p) for p in CHECKED}
    assert {"relay_core.cycle.ingest", "relay_core.cycle.sending", "relay_core.cycle.outbox",
            "relay_core.cycle.approval", "relay_core.commands.status",
            "relay_core.commands.report", "relay_core.web.webhooks"} <= names


@pytest.mark.parametrize("path", CHECKED, ids=module_name)
def test_module_reaches_the_database_only_through_the_store(path: Path):
    assert forbidden_in(path.read_text(encoding="utf-8"), module_name(path)) == []


@pytest.mark.parametrize("source", [
    "import sqlalchemy",
    "import sqlalchemy.exc as e",
    "from sqlalchemy import select",
    "from sqlalchemy.dialects.sqlite import insert",
    "from relay_core.store import tables as t",
    "from relay_core.store.tables import relay_cases",
    "import relay_core.store.tables",
    "from ..store import tables",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy import Connection",
    "def f():\n    from sqlalchemy import func\n    return func",
])
def test_the_check_sees_every_form_of_import(source: str):
    assert forbidden_in(source, "relay_core.cycle.example")


def test_the_check_lets_the_store_api_through():
    source = ("from relay_core.store import Connection, Store, person_key, utcnow\n"
              "from relay_core.models import RelayCase\n")
    assert forbidden_in(source, "relay_core.cycle.example") == []
