"""Secret references: a config value is `keyring:SERVICE/NAME` or `env:VAR`, never the secret."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from relay_core.errors import SecretError

_REF = re.compile(r"^(?:keyring:(?P<service>[^/\s]+)/(?P<name>\S+)"
                  r"|env:(?P<var>[A-Za-z_][A-Za-z0-9_]*))$")
DEFAULT_SERVICE = "career-relay"


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. Resolving it is explicit so a config can be checked without secrets."""

    key: str           # the config key path, for messages
    reference: str

    def __repr__(self) -> str:
        return f"SecretRef({self.reference!r})"

    @classmethod
    def parse(cls, key: str, value: str) -> SecretRef:
        if not isinstance(value, str) or not _REF.match(value.strip()):
            name = key.rsplit(".", 1)[-1]
            raise SecretError(
                key,
                "a secret must not be written in the configuration file",
                f"Store it with `career-relay secrets set {name}` and write "
                f"\"keyring:{DEFAULT_SERVICE}/{name}\" here, or put it in an environment "
                f"variable and write \"env:VARIABLE_NAME\"",
            )
        return cls(key, value.strip())

    def resolve(self) -> SecretStr:
        match = _REF.match(self.reference)
        assert match
        if match["var"]:
            value = os.environ.get(match["var"])
            if not value:
                raise SecretError(self.key, f"environment variable {match['var']} is not set",
                                  "Export it before running career-relay")
            return SecretStr(value)
        value = keyring_get(self.key, match["service"], match["name"])
        return SecretStr(value)


def _keyring():
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or "fail" in type(backend).__module__:
        return None
    return keyring


def keyring_get(key: str, service: str, name: str) -> str:
    kr = _keyring()
    if kr is None:
        raise SecretError(key, "this machine has no usable keyring backend",
                          "Use \"env:VARIABLE_NAME\" for this secret instead, or install a keyring "
                          "backend (e.g. the keyrings.alt package)")
    value = kr.get_password(service, name)
    if not value:
        raise SecretError(key, f"no secret named {name!r} in keyring service {service!r}",
                          f"Store it with `career-relay secrets set {name}`")
    return value


def keyring_set(service: str, name: str, value: str) -> None:
    kr = _keyring()
    if kr is None:
        raise SecretError("", "this machine has no usable keyring backend",
                          "Use \"env:VARIABLE_NAME\" references in the config instead, or install "
                          "a keyring backend (e.g. the keyrings.alt package)")
    kr.set_password(service, name, value)


def secret_field(value: Any, info) -> SecretRef | None:
    """A pydantic `mode="before"` validator: the value becomes a SecretRef, never a secret."""
    if value is None or isinstance(value, SecretRef):
        return value
    try:
        return SecretRef.parse(info.field_name, value)
    except SecretError as exc:
        # pydantic adds the full key path (mail.smtp.password) to a ValueError.
        raise ValueError(f"{exc.problem}. {exc.fix}") from None
