"""`career-relay admin …`: the HR console's accounts (the console itself is web/admin/).

    admin add NAME [--email ADDRESS] [--no-password]   prompts for a password (twice, hidden)
    admin list                                          names, sign-in method, last sign-in
    admin password NAME                                 a new password; signs its sessions out
    admin unlock NAME                                   ends a lockout after failed sign-ins
    admin remove NAME                                   deletes the account and its sessions

Every change is audited (actor `cli:admin`). User mistakes raise ConfigError (exit 2) or
LookupError (no such account, exit 1); cli.py turns them into messages.
"""

from __future__ import annotations

import re

import typer

from relay_core.errors import ConfigError
from relay_core.runtime import Runtime
from relay_core.store import admin as accounts
from relay_core.store import utcnow
from relay_core.web.admin.passwords import hash_password, password_problem

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,39}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ACTOR = "cli:admin"


def ask_password() -> str:
    while True:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        problem = password_problem(value)
        if problem is None:
            return value
        typer.echo(f"That password cannot be used: {problem}.", err=True)


def check_new_account(name: str, email: str | None, no_password: bool) -> None:
    if not NAME.match(name):
        raise ConfigError("NAME", f"{name!r} cannot be used",
                          "Use up to 40 letters, digits, '.', '_', '-' or '@'")
    if email is not None and not EMAIL.match(email):
        raise ConfigError("--email", f"{email!r} is not an email address")
    if no_password and not email:
        raise ConfigError("--no-password", "an account without a password signs in through "
                          "the identity provider", "Give its --email")


def add_account(rt: Runtime, name: str, email: str | None, password: str | None) -> None:
    try:
        accounts.create_account(rt.store, name, email=email,
                                password_hash=hash_password(password) if password else None,
                                actor=ACTOR, now=utcnow())
    except accounts.AccountExists:
        raise ConfigError("NAME", f"an account named {name!r} (or with this email) exists",
                          f"Change its password with `career-relay admin password {name}`"
                          ) from None


def require_account(rt: Runtime, name: str) -> None:
    with rt.store.engine.connect() as conn:
        if accounts.account_by_name(conn, name) is None:
            raise LookupError(f"no account named {name!r} (see `career-relay admin list`)")


def set_password(rt: Runtime, name: str, password: str) -> None:
    if not accounts.set_password(rt.store, name, hash_password(password), actor=ACTOR,
                                 now=utcnow()):
        raise LookupError(f"no account named {name!r}")


def unlock(rt: Runtime, name: str) -> None:
    if not accounts.unlock_account(rt.store, name, actor=ACTOR, now=utcnow()):
        raise LookupError(f"no account named {name!r} (see `career-relay admin list`)")


def remove(rt: Runtime, name: str) -> None:
    if not accounts.remove_account(rt.store, name, actor=ACTOR, now=utcnow()):
        raise LookupError(f"no account named {name!r} (see `career-relay admin list`)")
