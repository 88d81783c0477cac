"""The connector contract: the few methods every ATS module implements (see DESIGN.md).

A connector translates its ATS into `RejectionEvent`s and nothing more: it never decides
eligibility, renders templates, or touches consent and agencies.

`poll` yields pages rather than one list: the core stores each page and then that page's
cursor in the same transaction, so a crash mid-poll loses nothing and memory stays flat on a
100,000-row export. (DESIGN.md writes it `poll(cursor) -> (events, new_cursor)`; a page is
exactly that pair, plus the records that could not be read.)
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from relay_core.errors import ConfigError, FatalError, RecordError, SignatureError
from relay_core.inbound import BadInput, describe_errors, load_json, same_token
from relay_core.models import Category, RejectionEvent
from relay_core.secrets import SecretRef, secret_field

if TYPE_CHECKING:
    from datetime import datetime

    from relay_core.config import Config, SourceConfig

R = TypeVar("R")
Mode = Literal["poll", "webhook", "both"]     # a source's `mode` key
# {application id: rejection time, as a listing shows it} → the ids the core already holds with
# that very rejection time (see `Connector.known`).
KnownFilter = Callable[[Mapping[str, "datetime"]], set[str]]


@dataclass
class Page:
    events: list[RejectionEvent]
    cursor: str | None                 # where the next poll starts once these are stored
    problems: list[RecordError] = field(default_factory=list)
    # Applications the listing shows back in process (un-rejected): their pending email is
    # cancelled. For a source that lists in-process records anyway (an export file); an API
    # source reports un-rejects by webhook and at the re-check before sending.
    unrejected: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, records: Iterable[R], translate: Callable[[R], RejectionEvent | None],
           cursor: str | None = None) -> Page:
        """A page of `records`, each through `translate` (see `read`)."""
        page = cls(events=[], cursor=cursor)
        for record in records:
            page.read(record, translate)
        return page

    def read(self, record: R, translate: Callable[[R], RejectionEvent | None]) -> None:
        """Add one record's event. A record that cannot be read (RecordError) becomes one of
        the page's problems instead of failing the poll; None (no rejection at all, e.g. a
        hire) adds nothing."""
        try:
            event = translate(record)
        except RecordError as exc:
            self.problems.append(exc)
            return
        if event is not None:
            self.events.append(event)

    @property
    def size(self) -> int:
        return len(self.events) + len(self.problems)


class Standing(enum.StrEnum):
    """Where an application stands in the ATS right before its email is sent."""

    REJECTED = "rejected"              # still rejected (and, from a connector that
                                       # `tells_other_applications`, in process nowhere else)
    NOT_REJECTED = "not_rejected"      # un-rejected, hired, moved on: cancel the mail
    ACTIVE_ELSEWHERE = "active_elsewhere"  # rejected here, still in process for another job
                                           # (eligibility.in_process_elsewhere decides)
    UNKNOWN = "unknown"                # could not be asked: send as scheduled


@dataclass(frozen=True)
class ApplicationStatus:
    """A re-check's answer: the standing, and the category and reason the ATS gives *now*
    (None / "" when the connector does not say), so the core sees a rejection whose reason was
    changed into a withdrawal after detection (the standing alone may still read "rejected",
    as in Greenhouse). `ApplicationStatus.REJECTED` etc. are the answers without a category."""

    standing: Standing
    category: Category | None = None
    reason: str = ""                   # the ATS's reason name (company wording, no personal data)

    REJECTED: ClassVar[ApplicationStatus]
    NOT_REJECTED: ClassVar[ApplicationStatus]
    ACTIVE_ELSEWHERE: ClassVar[ApplicationStatus]
    UNKNOWN: ClassVar[ApplicationStatus]

    @classmethod
    def of(cls, category: Category, reason: str = "") -> ApplicationStatus:
        """Still rejected by us, or anything else (un-rejected, hired, withdrew): cancel. The
        category and reason travel along."""
        standing = Standing.REJECTED if category is Category.WE_REJECTED else Standing.NOT_REJECTED
        return cls(standing, category, reason)

    def elsewhere(self) -> ApplicationStatus:
        """The same answer for a person still in process for another job."""
        return ApplicationStatus(Standing.ACTIVE_ELSEWHERE, self.category, self.reason)


for _standing in Standing:
    setattr(ApplicationStatus, _standing.name, ApplicationStatus(_standing))


@dataclass
class WebhookResult:
    kind: str                          # the ATS's action name, e.g. "reject_candidate", "ping"
    event_id: str | None = None        # for de-duplicating redeliveries
    events: list[RejectionEvent] = field(default_factory=list)
    unrejected: list[str] = field(default_factory=list)   # application ids
    reply: dict[str, Any] | None = None


@dataclass
class CheckResult:
    what: str
    ok: bool
    detail: str = ""


class ConnectorSettings(BaseModel):
    """Base for a connector's own keys in its `[[sources]]` block. A key typed `SecretRef`
    (or `SecretRef | None`) holds a secret: the file may only say where it is (`keyring:` or
    `env:`); a plain value is refused, without echoing it. A key typed `SecretRef | str` is no
    secret, but may be kept in the environment or keyring all the same."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @field_validator("*", mode="before")
    @classmethod
    def _secret_references(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _reference_keys(cls).get(info.field_name)
        if kind == "secret" or (kind == "either" and str(value).startswith(("env:", "keyring:"))):
            return secret_field(value, info)
        return value


@cache
def _reference_keys(settings: type[ConnectorSettings]) -> dict[str, str]:
    """Key → "secret" (a reference only) or "either" (a reference or the value itself)."""
    kinds = {name: get_args(f.annotation) or (f.annotation,)
             for name, f in settings.model_fields.items()}
    return {name: "either" if str in types else "secret"
            for name, types in kinds.items() if SecretRef in types}


class WebhookSettings(ConnectorSettings):
    """The keys of a source that can receive webhooks: `mode`, and the secret that signs the
    deliveries, kept in the key named by `webhook_secret_key` (a SecretRef or None). A vendor
    may give `mode` a default; None means "both" when the secret is set, else "poll"."""

    mode: Mode | None = None
    webhook_secret_key: ClassVar[str] = "webhook_secret"
    webhook_secret_help: ClassVar[str] = "the secret the ATS signs deliveries with"

    @property
    def signing_secret(self) -> SecretRef | None:
        return getattr(self, self.webhook_secret_key)

    @property
    def chosen_mode(self) -> Mode:
        return self.mode or ("both" if self.signing_secret is not None else "poll")

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> WebhookSettings:
        if self.mode in ("webhook", "both") and self.signing_secret is None:
            raise ValueError(f"{self.webhook_secret_key} is required when mode is \"webhook\" "
                             f"or \"both\" ({self.webhook_secret_help})")
        return self


class Connector(ABC):
    type: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    # Whether this connector sees the same person's other applications (batched, at poll and
    # at `recheck`): its REJECTED then also means "in process nowhere else".
    tells_other_applications: ClassVar[bool] = False
    # Set by the core before `poll` (cycle/ingest.py `poll_source`). A poll re-reads an overlap
    # and, right after a burst, hundreds of rejections it already delivered: a connector that
    # looks each record up (candidates, other applications) asks this which of them the core
    # holds unchanged and skips their look-ups. None (the default, and `run --dry-run`): read
    # everything. An application with a new rejection time (a re-rejection) is never "known".
    known: KnownFilter | None = None

    def __init__(self, source: SourceConfig, config: Config, index: int = 0):
        self.source = source
        self.config = config
        self.name = source.name
        try:
            self.settings = self.Settings.model_validate(source.options)
        except ValidationError as exc:
            from relay_core.config import validation_to_config_error

            raise validation_to_config_error(exc, ("sources", index)) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.name!r})"

    @abstractmethod
    def poll(self, cursor: str | None) -> Iterator[Page]:
        """Rejections since `cursor`, page by page."""

    # Hooks with working defaults ---------------------------------------------------------
    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        """Ask the ATS again right before sending. The default cannot ask: UNKNOWN for all."""
        return {app_id: ApplicationStatus.UNKNOWN for app_id in application_ids}

    def recheck_cases(self, cases: Mapping[str, str]) -> dict[str, ApplicationStatus]:
        """`recheck` for cases given as {application id: candidate id}, which is what the core
        calls. A connector whose API finds a person's other applications by the candidate id
        (Lever's contact) overrides this; by default the application ids go to `recheck`."""
        return self.recheck(list(cases))

    def annotate(self, application_id: str, text: str) -> bool:
        """Write a note back to the ATS; False when the connector does not support it."""
        return False

    def check(self) -> list[CheckResult]:
        """Credentials and connectivity for `career-relay check`."""
        return []

    @property
    def mode(self) -> Mode:
        """What the source does: "poll", "webhook" or "both", as its `mode` key chose
        (WebhookSettings); a connector that cannot receive webhooks only polls."""
        settings = getattr(self, "settings", None)   # in-memory test doubles have none
        return settings.chosen_mode if isinstance(settings, WebhookSettings) else "poll"

    @property
    def polls(self) -> bool:
        return self.mode in ("poll", "both")

    @property
    def receives_webhooks(self) -> bool:
        return self.mode in ("webhook", "both")

    # Webhooks: a fixed pipeline, verification first -------------------------------------
    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookResult:
        """Verify the delivery (SignatureError on a bad one) before any of it is parsed,
        then read its JSON body and translate it. Vendors fill in the two hooks below."""
        if not self.receives_webhooks:
            raise FatalError(f"source {self.name!r} ({self.type}) does not receive webhooks")
        self.verify_webhook(headers, raw_body)
        return self.translate_webhook(headers, self.checked_body(raw_body))

    # The shape of a delivery's body (extra keys allowed): checked after the signature and
    # before translate_webhook, so a signed body with a string where an object belongs is a
    # 400 naming the field, not a crash. None: the connector checks every value itself.
    webhook_model: ClassVar[type[BaseModel] | None] = None

    def checked_body(self, raw_body: bytes) -> dict[str, Any]:
        body = self.webhook_body(raw_body)
        if self.webhook_model is None:
            return body
        try:
            checked = self.webhook_model.model_validate(body)
        except ValidationError as exc:
            raise FatalError(f"{self.name}: the webhook body does not have the shape "
                             f"{self.type} sends: {describe_errors(exc)}") from None
        # Only what the sender sent, so translate_webhook sees the same keys as before.
        return checked.model_dump(by_alias=True, exclude_unset=True)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Raise SignatureError unless the delivery carries a valid signature. The default
        refuses everything: a connector that receives webhooks must say how they are signed."""
        raise SignatureError(f"{self.name}: {self.type} deliveries cannot be verified")

    def translate_webhook(self, headers: Mapping[str, str],
                          body: dict[str, Any]) -> WebhookResult:
        """A verified delivery's JSON object, translated."""
        raise FatalError(f"source {self.name!r} ({self.type}) does not receive webhooks")

    def webhook_body(self, raw_body: bytes) -> dict[str, Any]:
        try:
            body = load_json(raw_body)
        except BadInput as exc:
            raise FatalError(f"{self.name}: {exc}") from None
        if not isinstance(body, dict):
            raise FatalError(f"{self.name}: the webhook body is not a JSON object")
        return body

    @cached_property
    def webhook_key(self) -> bytes:
        """The signing secret, resolved (keyring or environment) on the first delivery."""
        settings = self.settings
        secret = settings.signing_secret if isinstance(settings, WebhookSettings) else None
        if secret is None:
            key = getattr(settings, "webhook_secret_key", "webhook secret")
            raise SignatureError(f"{self.name}: no {key} is configured")
        return secret.resolve().get_secret_value().encode()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (a plain dict is case-sensitive; HTTP is not)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def signature_matches(key: bytes, message: bytes, received: str) -> bool:
    """Whether `received` is the hex HMAC-SHA256 of `message` (compared in constant time)."""
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    return isinstance(received, str) and same_token(expected, received.strip().lower())


def require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise RecordError(where, f"the field {key!r} is missing")
    return mapping[key]


__all__ = ["ApplicationStatus", "CheckResult", "ConfigError", "Connector", "ConnectorSettings",
           "KnownFilter", "Mode", "Page", "Standing", "WebhookResult", "WebhookSettings", "header",
           "require",
           "signature_matches"]
