"""Who gets an email. Each rule is a default of DESIGN.md; each skip records its reason.

Rules that need the store (the same person mailed recently, a suppressed address) are asked
by the pipeline through `StoreFacts`, so this module stays a pure function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from relay_core.config import Config
from relay_core.mail.message import validate_address
from relay_core.models import Category, RejectionEvent


@dataclass(frozen=True)
class Decision:
    eligible: bool
    reason: str = ""          # why not, in words an HR person understands
    email: str | None = None  # the address to use
    invite: bool = True       # carry the relay invitation


SKIP_BY_CATEGORY = {
    Category.CANDIDATE_WITHDREW: "the candidate withdrew; withdrawals are never mailed",
    Category.HIRED: "the candidate was hired",
    Category.OTHER: "the ATS does not say we rejected this application",
}


def first_valid_email(event: RejectionEvent) -> str | None:
    for address in event.person.emails:
        valid = validate_address(address)
        if valid:
            return valid
    return None


def assess(event: RejectionEvent, config: Config, now: datetime) -> Decision:
    rules = config.eligibility
    flags = event.flags
    if flags.duplicate:
        return Decision(False, "duplicate application")
    if event.category in SKIP_BY_CATEGORY:
        return Decision(False, SKIP_BY_CATEGORY[event.category])
    if flags.prospect:
        return Decision(False, "a prospect, not an applicant")
    if flags.private:
        return Decision(False, "the candidate is private or confidential in the ATS")
    if flags.anonymized:
        return Decision(False, "the candidate's data is anonymized in the ATS")
    if not flags.can_email:
        return Decision(False, "the ATS says this candidate may not be emailed")
    if flags.agency_sourced and rules.skip_agency_sourced:
        return Decision(False, "introduced by an agency; the agency informs the candidate")
    if now - event.rejected_at > timedelta(days=rules.max_age_days):
        return Decision(False, f"rejected more than {rules.max_age_days} days ago")
    if event.rejected_at - now > timedelta(days=1):
        return Decision(False, "the rejection date lies in the future; check the ATS record")
    email = first_valid_email(event)
    if email is None:
        return Decision(False, "no valid email address")
    invite = config.relay.enabled and not flags.no_invitation and not (
        {event.category.value, event.reason_id} & set(rules.no_invitation_reasons))
    if config.mail.mode == "invite_only" and not invite:
        return Decision(False, "invite-only mode, and this case gets no relay invitation")
    return Decision(True, email=email, invite=invite)


def language_for(event: RejectionEvent, config: Config) -> str:
    lang = (event.person.language or "").lower()[:2]
    return lang if lang in ("ja", "en") else config.company.locale
