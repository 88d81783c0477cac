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
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from relay_core.errors import ConfigError, FatalError, RecordError
from relay_core.models import RejectionEvent

if TYPE_CHECKING:
    from relay_core.config import Config, SourceConfig


@dataclass
class Page:
    events: list[RejectionEvent]
    cursor: str | None                 # where the next poll starts once these are stored
    problems: list[RecordError] = field(default_factory=list)


class ApplicationStatus(str, enum.Enum):
    REJECTED = "rejected"
    NOT_REJECTED = "not_rejected"      # un-rejected, hired, moved on: cancel the mail
    ACTIVE_ELSEWHERE = "active_elsewhere"  # still in process for another job: cancel too
    UNKNOWN = "unknown"                # could not be asked: send as scheduled


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
    """Base for a connector's own keys in its `[[sources]]` block."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Connector(ABC):
    type: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings

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
    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookResult:
        """Verify the signature first, then translate. Raises SignatureError on a bad one."""
        raise FatalError(f"source {self.name!r} ({self.type}) does not receive webhooks")

    def recheck(self, application_ids: list[str]) -> dict[str, ApplicationStatus]:
        """Ask the ATS again right before sending. The default cannot ask: UNKNOWN for all."""
        return {app_id: ApplicationStatus.UNKNOWN for app_id in application_ids}

    def annotate(self, application_id: str, text: str) -> bool:
        """Write a note back to the ATS; False when the connector does not support it."""
        return False

    def check(self) -> list[CheckResult]:
        """Credentials and connectivity for `career-relay check`."""
        return []

    @property
    def receives_webhooks(self) -> bool:
        return type(self).parse_webhook is not Connector.parse_webhook

    @property
    def polls(self) -> bool:
        return True


def require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise RecordError(where, f"the field {key!r} is missing")
    return mapping[key]


__all__ = ["ApplicationStatus", "CheckResult", "ConfigError", "Connector", "ConnectorSettings",
           "Page", "WebhookResult", "require"]
