"""The error tree (relay_core/errors.py): grouped by what the caller does, drawn in its
docstring, with configuration outside the run-time catch-all."""

import inspect

import pytest

from relay_core import errors
from relay_core.errors import (
    ConfigError,
    FatalError,
    PermanentMailError,
    RelayError,
    RetriableError,
    SecretError,
    TemplateError,
    TokenExpired,
    UnsafeSubjectError,
)


def _classes():
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
            if issubclass(obj, Exception) and obj.__module__ == errors.__name__]


def test_configuration_is_outside_the_catch_all():
    # A catch-all for run-time trouble must never swallow "fix the file".
    assert not issubclass(ConfigError, RelayError)
    with pytest.raises(ConfigError):
        try:
            raise SecretError("mail.smtp.password", "environment variable X is not set")
        except RelayError:  # pragma: no cover - the point is that this does not catch it
            pytest.fail("a RelayError handler caught a configuration error")


def test_every_error_is_drawn_in_the_docstring():
    for cls in _classes():
        assert cls.__name__ in errors.__doc__, cls.__name__


def test_every_error_belongs_to_one_of_the_two_roots():
    for cls in _classes():
        assert issubclass(cls, ConfigError | RelayError), cls.__name__


def test_retriable_carries_status_and_retry_after_as_fields():
    exc = RetriableError("HTTP 429", status=429, retry_after=12.5)
    assert (exc.status, exc.retry_after) == (429, 12.5)
    assert RetriableError("timeout").status is None


def test_mail_token_and_template_errors_are_placed_in_the_tree():
    assert issubclass(PermanentMailError, FatalError)
    assert issubclass(TokenExpired, FatalError) and TokenExpired.status == 410
    assert issubclass(UnsafeSubjectError, TemplateError)
    assert issubclass(UnsafeSubjectError, FatalError)


def test_messages_name_the_key_and_the_fix():
    exc = ConfigError("sources[1].client_secret", "is missing", "Set it with env:VAR")
    assert str(exc) == "sources[1].client_secret: is missing. Set it with env:VAR."
