"""One error tree, grouped by what the caller should do.

    RelayError
    ├── ConfigError          fix the configuration file or a secret; never caught by a catch-all
    │   └── SecretError      a keyring/env secret is missing or no keyring backend is usable
    ├── TemplateError        fix the template named in the message (file and line)
    ├── AuthError            fix the ATS/SMTP credentials or their scopes
    ├── RetriableError       try again later (429, 5xx, timeouts, SMTP 4xx)
    ├── FatalError           a request or record that will not work as it is; skip it and report
    │   ├── SignatureError   a webhook whose signature does not verify (refused, 401)
    │   └── RecordError      one malformed input row/record; the rest of the batch continues
    └── LockedError          another `career-relay run` holds the lock; this one stops quietly

Messages say what happened and what to do next. They never contain personal data or secrets:
name the case id, source and line number, not the person.
"""


class RelayError(Exception):
    """Base of every error Career Relay raises on purpose."""


class ConfigError(RelayError):
    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key, self.problem, self.fix = key, problem, fix
        text = f"{key}: {problem}" if key else problem
        super().__init__(f"{text}. {fix}".rstrip(". ") + ("." if fix else ""))


class SecretError(ConfigError):
    pass


class TemplateError(RelayError):
    def __init__(self, template: str, line: int | None, problem: str):
        self.template, self.line, self.problem = template, line, problem
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {problem}")


class AuthError(RelayError):
    pass


class RetriableError(RelayError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(RelayError):
    pass


class SignatureError(FatalError):
    pass


class RecordError(FatalError):
    """A single bad input record; `where` locates it (e.g. 'examples/x.tsv line 7')."""

    def __init__(self, where: str, problem: str):
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}")


class LockedError(RelayError):
    pass
