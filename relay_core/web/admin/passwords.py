"""Console passwords: argon2id (RFC 9106) through argon2-cffi, a memory-hard scheme from a
well-kept library. Only the encoded hash (algorithm, parameters, salt, digest) is stored."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
_HASHER = PasswordHasher()      # the library's RFC 9106 "low memory" profile: 64 MiB, t=3


def password_problem(password: str) -> str | None:
    """Why this password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters (a passphrase of several words is good)"
    if password.strip() != password:
        return "the password starts or ends with a space; leave those out"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("career-relay: no such account")


def verify_password(encoded: str | None, password: str) -> bool:
    """True when `password` matches. Without a hash (unknown account, or one that signs in
    only through the identity provider) a dummy hash is verified, so that a wrong name takes
    as long as a wrong password and reveals nothing."""
    try:
        return _HASHER.verify(encoded or _dummy_hash(), password) and bool(encoded)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    return _HASHER.check_needs_rehash(encoded)
