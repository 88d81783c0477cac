"""Console accounts, their sessions and the lockout after repeated failed sign-ins.

Password hashing is not done here (web/admin/passwords.py does it); this module only keeps the
hash. Every change to an account is audited in the append-only audit log with `case_id` NULL
and the actor `admin:<name>` or `cli:admin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from relay_core.store import tables as t
from relay_core.store.db import Store

a = t.admin_accounts.c
s = t.admin_sessions.c


@dataclass(frozen=True)
class AdminAccount:
    id: int
    name: str
    email: str | None
    password_hash: str | None
    failed_sign_ins: int
    locked_until: datetime | None
    created_at: datetime
    last_sign_in_at: datetime | None

    def __repr__(self) -> str:   # the hash stays out of logs and tracebacks
        return f"AdminAccount({self.id}, {self.name!r})"

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class AdminSession:
    account: AdminAccount
    csrf_token: str
    method: str
    expires_at: datetime


def _account(row) -> AdminAccount:
    return AdminAccount(row.id, row.name, row.email, row.password_hash, row.failed_sign_ins,
                        row.locked_until, row.created_at, row.last_sign_in_at)


class AccountExists(Exception):
    pass


# --- accounts --------------------------------------------------------------------------------
def count_accounts(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.admin_accounts)).scalar_one()


def list_accounts(store: Store) -> list[AdminAccount]:
    with store.engine.connect() as conn:
        return [_account(r) for r in conn.execute(select(t.admin_accounts).order_by(a.name))]


def account_by_name(conn: Connection, name: str) -> AdminAccount | None:
    row = conn.execute(select(t.admin_accounts).where(a.name == name)).first()
    return _account(row) if row else None


def account_by_email(conn: Connection, email: str) -> AdminAccount | None:
    row = conn.execute(select(t.admin_accounts).where(
        func.lower(a.email) == email.strip().lower())).first()
    return _account(row) if row else None


def create_account(store: Store, name: str, *, email: str | None, password_hash: str | None,
                   actor: str, now: datetime) -> int:
    try:
        with store.begin() as conn:
            account_id = conn.execute(insert(t.admin_accounts).values(
                name=name, email=email or None, password_hash=password_hash,
                failed_sign_ins=0, created_at=now).returning(a.id)).scalar_one()
            store.audit(conn, None, actor, "admin_account_added", at=now,
                        reason=f"account {name}" + (" (identity provider only)"
                                                    if password_hash is None else ""))
    except IntegrityError:
        raise AccountExists(name) from None
    return account_id


def set_password(store: Store, name: str, password_hash: str, *, actor: str,
                 now: datetime) -> bool:
    with store.begin() as conn:
        changed = conn.execute(update(t.admin_accounts).where(a.name == name).values(
            password_hash=password_hash, failed_sign_ins=0, locked_until=None)).rowcount == 1
        if changed:
            account = account_by_name(conn, name)
            conn.execute(delete(t.admin_sessions).where(s.account_id == account.id))
            store.audit(conn, None, actor, "admin_password_set", reason=f"account {name}; "
                        "its sessions were signed out", at=now)
    return changed


def remove_account(store: Store, name: str, *, actor: str, now: datetime) -> bool:
    with store.begin() as conn:
        account = account_by_name(conn, name)
        if account is None:
            return False
        conn.execute(delete(t.admin_sessions).where(s.account_id == account.id))
        conn.execute(delete(t.admin_accounts).where(a.id == account.id))
        store.audit(conn, None, actor, "admin_account_removed", reason=f"account {name}", at=now)
    return True


def unlock_account(store: Store, name: str, *, actor: str, now: datetime) -> bool:
    with store.begin() as conn:
        changed = conn.execute(update(t.admin_accounts).where(a.name == name).values(
            failed_sign_ins=0, locked_until=None)).rowcount == 1
        if changed:
            store.audit(conn, None, actor, "admin_unlocked", reason=f"account {name}", at=now)
    return changed


# --- sign-in outcomes ------------------------------------------------------------------------
def record_failed_sign_in(conn: Connection, account_id: int, *, now: datetime,
                          max_failures: int, lockout: timedelta) -> bool:
    """Count a failure; at `max_failures` in a row the account locks. True when it locked now.
    One conditional UPDATE, so parallel guesses cannot slip past the count."""
    failures = conn.execute(update(t.admin_accounts).where(a.id == account_id).values(
        failed_sign_ins=a.failed_sign_ins + 1).returning(a.failed_sign_ins)).scalar_one()
    if failures >= max_failures:
        conn.execute(update(t.admin_accounts).where(a.id == account_id).values(
            failed_sign_ins=0, locked_until=now + lockout))
        return True
    return False


def record_sign_in(conn: Connection, account_id: int, now: datetime) -> None:
    conn.execute(update(t.admin_accounts).where(a.id == account_id).values(
        failed_sign_ins=0, locked_until=None, last_sign_in_at=now))


def update_password_hash(conn: Connection, account_id: int, password_hash: str) -> None:
    """A stronger hash for the same password (the hashing parameters went up)."""
    conn.execute(update(t.admin_accounts).where(a.id == account_id).values(
        password_hash=password_hash))


# --- sessions --------------------------------------------------------------------------------
def create_session(conn: Connection, *, token_hash: str, account_id: int, csrf_token: str,
                   method: str, now: datetime, expires_at: datetime) -> None:
    conn.execute(delete(t.admin_sessions).where(s.expires_at < now))
    conn.execute(insert(t.admin_sessions).values(
        token_hash=token_hash, account_id=account_id, csrf_token=csrf_token, method=method,
        created_at=now, last_seen_at=now, expires_at=expires_at))


def session_by_token(conn: Connection, token_hash: str, *, now: datetime,
                     idle: timedelta) -> AdminSession | None:
    """The live session for this token hash, or None (unknown, expired or idle too long)."""
    row = conn.execute(
        select(t.admin_sessions, t.admin_accounts)
        .join(t.admin_accounts, a.id == s.account_id)
        .where(s.token_hash == token_hash)).first()
    if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
        return None
    account = AdminAccount(row.account_id, row.name, row.email, row.password_hash,
                           row.failed_sign_ins, row.locked_until, row.created_at,
                           row.last_sign_in_at)
    return AdminSession(account, row.csrf_token, row.method, row.expires_at)


def touch_session(conn: Connection, token_hash: str, now: datetime) -> None:
    conn.execute(update(t.admin_sessions).where(s.token_hash == token_hash)
                 .values(last_seen_at=now))


def delete_session(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(t.admin_sessions).where(s.token_hash == token_hash))
