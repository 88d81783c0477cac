"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL with
CR_TEST_DATABASE=postgresql (CR_TEST_PG_URL names the server; each test gets its own schema
in a database made for this session and dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay_core.config import Config, parse_config
from relay_core.store import Store, open_store

BACKEND = os.environ.get("CR_TEST_DATABASE", "sqlite")
PG_URL = os.environ.get("CR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


def pytest_report_header(config) -> str:
    return f"career-relay store backend: {BACKEND}"


@pytest.fixture(autouse=True)
def patched_interpreter(request, monkeypatch):
    """`check` fails on a Python without the CVE-2024-6923 fix (issue 11, point 9). The suite
    may run on one (a pyenv 3.11.7); tests of other checks act as if it had the fix. Mark a
    test `unpatched_interpreter` to see the real answer."""
    if "unpatched_interpreter" not in request.keywords:
        monkeypatch.setattr("relay_core.mail.message.header_fix_present", lambda: True)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    if BACKEND != "postgresql":
        yield None
        return
    import sqlalchemy as sa

    name = f"cr_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield f"{PG_URL}/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def store_url(tmp_path: Path, pg_database: str | None) -> str:
    if pg_database is None:
        return f"sqlite:///{tmp_path / 'relay.db'}"
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return f"{pg_database}?options=-csearch_path%3D{schema}"


# The sources tests name. The test store plays an installation that has polled them since
# 2000, so a test's first cycle mails what it detects; a rejection before an installation's
# first poll is skipped otherwise (issue 10). Tests of a new installation are marked
# `@pytest.mark.fresh_install` and start without these moments.
LONG_INSTALLED = ("fake", "other", "hrmos", "gh", "greenhouse", "lever", "herp", "talentio",
                  "src", "ex", "x", "a", "p")


@pytest.fixture
def installed_sources(request, store_url: str) -> None:
    if request.node.get_closest_marker("fresh_install"):
        return
    from datetime import UTC, datetime

    from relay_core.store import installs

    s = open_store(store_url)
    with s.begin() as conn:
        for source in LONG_INSTALLED:
            installs.record_installed(conn, source, datetime(2000, 1, 1, tzinfo=UTC))
    s.engine.dispose()


@pytest.fixture
def store(store_url: str, installed_sources: None) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.engine.dispose()


@pytest.fixture
def make_config(tmp_path: Path, store_url: str, installed_sources: None):
    """Build a Config from a dict of overrides on top of test defaults."""

    def build(data: dict[str, Any] | None = None, *, write_to: Path | None = None) -> Config:
        """`write_to`: also write it there as a TOML file, for the CLI."""
        base: dict[str, Any] = {
            "company": {"name": "株式会社サンプル", "legal_name": "株式会社サンプル",
                        "address": "東京都千代田区丸の内1-1-1",
                        "representative": "代表取締役 山田太郎",
                        "sender": "採用担当 <recruit@example.co.jp>",
                        "reply_to": "recruit@example.co.jp",
                        "privacy_policy_url": "https://example.co.jp/privacy"},
            "store": {"url": store_url},
            "schedule": {"delay_hours": 0, "business_hours": "always"},
            "mail": {"transport": "file", "outbox_dir": str(tmp_path / "outbox")},
            "relay": {"public_base_url": "https://relay.example.co.jp"},
        }
        for key, value in (data or {}).items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        if write_to is not None:
            from tests.tomlfile import write_config

            write_config(write_to, base)
        return parse_config(base, tmp_path)

    return build
