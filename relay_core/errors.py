"""One error tree, grouped by what the caller should do.

    ConfigError              fix the configuration file or a secret. Deliberately *outside*
    │                        RelayError: a catch-all for run-time trouble never swallows it,
    │                        so no `except ConfigError: raise` guards are needed anywhere
    └── SecretError          a keyring/env secret is missing or no keyring backend is usable

    RelayError               run-time trouble; a cycle catches it per source, per case
    ├── AuthError            fix the ATS/SMTP/agency credentials or their scopes
    ├── RetriableError       try again later: 429, 5xx, timeouts, SMTP 4xx; carries the HTTP
    │                        `status` (or SMTP code) and `retry_after` seconds when known,
    │                        and the mail server's `reply` (addresses masked)
    ├── AmbiguousMailError   the mail server got the whole message but its answer never came
    │                        (connection dropped after DATA): maybe delivered, never resent
    ├── FatalError           this request or record will not work as it is: skip it, report it
    │   ├── SignatureError       a webhook/agency signature that does not verify (401)
    │   ├── RecordError          one malformed input row/record; the rest continues
    │   ├── PermanentMailError   the mail server refused a message for good (SMTP 5xx)
    │   ├── TokenError           a relay link that is tampered, expired or for another purpose
    │   │   ├── TokenTampered
    │   │   ├── TokenExpired
    │   │   └── TokenWrongPurpose
    │   ├── ConsentRefused       a consent/decline/withdrawal that cannot be recorded
    │   ├── TransferRefused      a handoff the consent gate does not allow
    │   └── EventRefused         an agency event the ledger cannot accept
    ├── TemplateError        fix the template named in the message (file and line)
    │   └── UnsafeSubjectError   a subject that renders to several lines (also a FatalError:
    │                            the break may come from ATS data, so only that case fails)
    └── LockedError          another live process holds the run lock (or this run lost it);
                             this one stops

Messages say what happened and what to do next. They never contain personal data or secrets:
name the case id, source and line number, not the person.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Fix the configuration; `key` is the key path (`sources[1].client_secret`)."""

    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key, self.problem, self.fix = key, problem, fix
        text = f"{key}: {problem}" if key else problem
        super().__init__(f"{text}. {fix}".rstrip(". ") + ("." if fix else ""))


class SecretError(ConfigError):
    pass


class RelayError(Exception):
    """Root of every run-time error Career Relay raises on purpose."""


class AuthError(RelayError):
    pass


class RetriableError(RelayError):
    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, reply: str = ""):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.reply = reply


class AmbiguousMailError(RelayError):
    """Sent to the end of DATA, no answer: the server may hold the message. SMTP cannot tell,
    so it is neither retried nor marked failed (cycle/outbox.py makes it `ambiguous`)."""


class FatalError(RelayError):
    pass


class SignatureError(FatalError):
    pass


class RecordError(FatalError):
    """A single bad input record; `where` locates it (e.g. 'examples/x.tsv line 7')."""

    def __init__(self, where: str, problem: str):
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}")


class PermanentMailError(FatalError):
    """The server refused this message for good; `suppress_address` says the address is dead."""

    def __init__(self, message: str, code: int, suppress_address: bool = False):
        super().__init__(message)
        self.code = code
        self.suppress_address = suppress_address


class TokenError(FatalError):
    status = 400        # what the consent pages answer


class TokenTampered(TokenError):
    status = 400


class TokenExpired(TokenError):
    status = 410


class TokenWrongPurpose(TokenError):
    status = 400


class ConsentRefused(FatalError):
    """The consent, decline or withdrawal cannot be recorded; `kind` picks the page to show."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class TransferRefused(FatalError):
    """The consent gate refuses this handoff (no active consent, field not allowed, …)."""


class EventRefused(FatalError):
    """An agency event the ledger cannot accept; the message says why and what to send."""


class TemplateError(RelayError):
    def __init__(self, template: str, line: int | None, problem: str):
        self.template, self.line, self.problem = template, line, problem
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {problem}")


class UnsafeSubjectError(TemplateError, FatalError):
    """A subject that renders to several lines. A TemplateError for `check`, and a FatalError
    for the pipeline, because the line break may come from ATS data (the job title) and then
    only this case should fail, not the whole run."""


class LockedError(RelayError):
    """`long_held`: the live holder has held the lock for over an hour (hung?): `run` then
    exits 1 instead of 75, so the timer's unit shows a failure."""

    def __init__(self, message: str, *, long_held: bool = False):
        super().__init__(message)
        self.long_held = long_held
