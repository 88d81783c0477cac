"""The normalised event every connector produces, the states of a relay case, and the case
itself as the store hands it out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Category(enum.StrEnum):
    """What the rejection means for the candidate; picks the template variant and eligibility."""

    WE_REJECTED = "we_rejected"
    CANDIDATE_WITHDREW = "candidate_withdrew"
    HIRED = "hired"
    OTHER = "other"


# Case ids are a 32-bit integer column on both databases: a larger id from a URL or the command
# line is refused before any query (the drivers fail with an error, not "no such case").
CASE_ID_MAX = 2**31 - 1


class CaseState(enum.StrEnum):
    DETECTED = "detected"
    SKIPPED = "skipped"
    SCHEDULED = "scheduled"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # Handed to the mail server (DATA sent) but its answer never recorded: a crash or a
    # dropped connection. Possibly delivered, so it counts as mailed and is never resent
    # silently (`mail.on_ambiguous`, `career-relay resend`).
    AMBIGUOUS = "ambiguous"


# Which transitions the store accepts; anything else is a bug and raises.
TRANSITIONS: dict[CaseState, set[CaseState]] = {
    CaseState.DETECTED: {CaseState.SKIPPED, CaseState.SCHEDULED, CaseState.HELD},
    CaseState.SCHEDULED: {CaseState.SENDING, CaseState.CANCELLED, CaseState.HELD,
                          CaseState.SKIPPED},
    CaseState.HELD: {CaseState.SCHEDULED, CaseState.CANCELLED},
    CaseState.SENDING: {CaseState.SENT, CaseState.FAILED, CaseState.SCHEDULED,
                        CaseState.AMBIGUOUS},
    # `career-relay resend` puts a failed or ambiguous message back in the queue (→ sending);
    # a failed one HR gives up on can be cancelled.
    CaseState.FAILED: {CaseState.SCHEDULED, CaseState.SENDING, CaseState.CANCELLED},
    # A run that finds out the server did accept it after all records it as sent.
    CaseState.AMBIGUOUS: {CaseState.SENDING, CaseState.SENT},
    # Terminal. (`career-relay backfill` reopens only cases skipped as "before the first
    # poll", by its own conditional update in store/installs.py; a newer rejection reopens a
    # case the ATS cancelled before sending, cancelled → detected, in store/cases.py `reopen`.)
    CaseState.SKIPPED: set(),
    CaseState.SENT: set(),
    CaseState.CANCELLED: set(),
}


class Person(BaseModel):
    model_config = ConfigDict(frozen=True)

    first_name: str = ""
    last_name: str = ""
    full_name: str = ""
    emails: list[str] = Field(default_factory=list)
    language: str | None = None
    timezone: str | None = None

    def __repr__(self) -> str:  # personal data never reaches logs or tracebacks
        return "Person(<redacted>)"

    __str__ = __repr__

    @property
    def display_name(self) -> str:
        if self.full_name:
            return self.full_name
        return " ".join(p for p in (self.last_name, self.first_name) if p)


class Flags(BaseModel):
    model_config = ConfigDict(frozen=True)

    prospect: bool = False
    private: bool = False         # the *candidate* is private in the ATS (never the job)
    anonymized: bool = False
    can_email: bool = True
    agency_sourced: bool = False
    duplicate: bool = False
    no_invitation: bool = False  # e.g. Greenhouse SECURITY_CONCERN: courteous mail, no relay
    # The job or posting is confidential inside the ATS (hidden from other employees). The
    # candidate knows the role they applied for: no reason to skip unless configured so.
    confidential_job: bool = False
    # The same person has another active application in the same ATS instance. None: the
    # connector could not tell here (a webhook, or an API without a batched look-up).
    in_process_elsewhere: bool | None = None


class RejectionEvent(BaseModel):
    """One rejection as the ATS reports it, translated into the core's vocabulary."""

    model_config = ConfigDict(frozen=True)

    ats: str                      # connector type, e.g. "hrmos_export"
    source: str                   # the configured source name (the ATS instance)
    application_id: str
    candidate_id: str = ""
    person: Person
    job_title: str = ""
    stage: str = ""
    reason_id: str = ""
    reason_text: str = ""
    category: Category
    rejected_at: datetime
    flags: Flags = Field(default_factory=Flags)
    # The language the ATS suggests for this application when the person has none of their
    # own (e.g. the language of the Greenhouse job post they applied through): "ja", "en", …
    language: str | None = None
    # The text of the one field HR designated as candidate-facing feedback (a custom field,
    # an export column), as the ATS holds it; "" when there is none or none is configured.
    feedback: str = ""
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("rejected_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("rejected_at must carry a timezone")
        return value

    @property
    def case_key(self) -> str:
        return f"{self.source}:{self.application_id}"

    def __repr__(self) -> str:
        return (f"RejectionEvent(source={self.source!r}, application_id={self.application_id!r}, "
                f"category={self.category.value})")

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class RelayCase:
    """One relay case (one per ATS application) as the store hands it out: typed, with the
    person parsed once (the name fields; the address is `email`). `person` and `email` are
    None once retention has purged the case; `stage` is the selection stage the ATS reported
    and `feedback` the designated feedback field's text (both kept in the stored event, so
    purged with it); `invite_note` says why the email goes without the relay invitation."""

    id: int
    source: str
    application_id: str
    ats: str
    candidate_id: str
    state: CaseState
    reason: str
    category: Category
    language: str
    invite: bool
    email: str | None
    person_key: str | None
    person: Person | None
    stage: str
    job_title: str
    rejected_at: datetime
    detected_at: datetime
    send_at: datetime | None
    deadline_at: datetime | None
    sent_at: datetime | None
    late: bool
    message_id: str | None
    updated_at: datetime
    invite_note: str = ""
    feedback: str = ""

    @property
    def sent_late(self) -> bool:
        """Sent after its deadline (the three-business-day promise was missed)."""
        return bool(self.sent_at and self.deadline_at and self.sent_at > self.deadline_at)

    @property
    def case_key(self) -> str:
        return f"{self.source}:{self.application_id}"

    def __repr__(self) -> str:  # identifiers only: no name, address or job title
        return (f"RelayCase(id={self.id}, source={self.source!r}, "
                f"application_id={self.application_id!r}, state={self.state.value})")

    __str__ = __repr__
