"""Who gets an email, and which one. Each rule is a default of DESIGN.md; each skip, hold and
missing invitation records its reason.

Rules that need the store (the same person mailed recently, a suppressed address, the moment
the installation first polled a source) are asked by the pipeline and handed in, so this module
stays a pure function of its inputs. The same goes for the re-check right before sending:
`recheck_action` says what the ATS's answer means; sending.py carries it out.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from relay_core.config import Config
from relay_core.contract.base import ApplicationStatus, Standing
from relay_core.mail.message import validate_address
from relay_core.models import Category, RejectionEvent


@dataclass(frozen=True)
class Decision:
    eligible: bool
    reason: str = ""          # why not, in words an HR person understands
    email: str | None = None  # the address to use
    invite: bool = True       # carry the relay invitation
    invite_note: str = ""     # why the mail goes without the invitation (recorded on the case)
    hold: str = ""            # why a person approves this mail first ("" = no hold)


SKIP_BY_CATEGORY = {
    Category.CANDIDATE_WITHDREW: "the candidate withdrew; withdrawals are never mailed",
    Category.HIRED: "the candidate was hired",
    Category.OTHER: "the ATS does not say we rejected this application",
}
# Recorded verbatim: `career-relay backfill` finds the cases it may opt in by this reason.
BEFORE_INSTALL = ("rejected before Career Relay's first poll of this source; "
                  "`career-relay backfill --since DATE` can include it")
IN_PROCESS = "still in process for another position in the same ATS"
IN_PROCESS_NOTE = f"{IN_PROCESS}: the relay invitation waits"
IN_PROCESS_HOLD = f"{IN_PROCESS}: held for review (eligibility.in_process_elsewhere = \"hold\")"
IN_PROCESS_SKIP = f"{IN_PROCESS} (eligibility.in_process_elsewhere = \"skip\")"
FEEDBACK_HOLD = ("carries feedback written for the candidate: a second person approves it "
                 "first (mail.feedback_requires_approval)")
CONFIDENTIAL_SKIP = "the job is confidential (eligibility.confidential_jobs = \"skip\")"
CATEGORY_NOTE = "the rejection reason excludes the relay invitation"
RELAY_OFF_NOTE = "the relay is switched off (relay.enabled = false)"


def first_valid_email(event: RejectionEvent) -> str | None:
    for address in event.person.emails:
        valid = validate_address(address)
        if valid:
            return valid
    return None


def assess(event: RejectionEvent, config: Config, now: datetime,
           installed_at: datetime | None = None) -> Decision:
    """The decision for one newly detected rejection. `installed_at` is when this installation
    first polled the event's source (None: no such moment applies, e.g. a backfill)."""
    rules = config.eligibility
    flags = event.flags
    if flags.duplicate:
        return Decision(False, "duplicate application")
    if event.category in SKIP_BY_CATEGORY:
        return Decision(False, SKIP_BY_CATEGORY[event.category])
    if flags.prospect:
        return Decision(False, "a prospect, not an applicant")
    if flags.private:
        return Decision(False, "the candidate is private in the ATS")
    if flags.anonymized:
        return Decision(False, "the candidate's data is anonymized in the ATS")
    if not flags.can_email:
        return Decision(False, "the ATS says this candidate may not be emailed")
    if flags.confidential_job and rules.confidential_jobs == "skip":
        return Decision(False, CONFIDENTIAL_SKIP)
    if flags.agency_sourced and rules.skip_agency_sourced:
        return Decision(False, "introduced by an agency; the agency informs the candidate")
    if installed_at is not None and event.rejected_at < installed_at:
        return Decision(False, BEFORE_INSTALL)
    if now - event.rejected_at > timedelta(days=rules.max_age_days):
        return Decision(False, f"rejected more than {rules.max_age_days} days ago")
    if event.rejected_at - now > timedelta(days=1):
        return Decision(False, "the rejection date lies in the future; check the ATS record")
    email = first_valid_email(event)
    if email is None:
        return Decision(False, "no valid email address")
    if flags.in_process_elsewhere and rules.in_process_elsewhere == "skip":
        return Decision(False, IN_PROCESS_SKIP)
    invite, note = True, ""
    if not config.relay.enabled:
        invite, note = False, RELAY_OFF_NOTE
    elif flags.no_invitation or ({event.category.value, event.reason_id}
                                 & set(rules.no_invitation_reasons)):
        invite, note = False, CATEGORY_NOTE
    elif flags.in_process_elsewhere and rules.in_process_elsewhere == "no_invitation":
        invite, note = False, IN_PROCESS_NOTE
    if config.mail.mode == "invite_only" and not invite:
        return Decision(False, "invite-only mode, and this case gets no relay invitation")
    holds = []
    if flags.in_process_elsewhere and rules.in_process_elsewhere == "hold":
        holds.append(IN_PROCESS_HOLD)
    if feedback_text(event.feedback, config) and config.mail.feedback_requires_approval:
        holds.append(FEEDBACK_HOLD)
    return Decision(True, email=email, invite=invite, invite_note=note, hold="; ".join(holds))


# --- the re-check right before sending --------------------------------------------------------
@dataclass(frozen=True)
class RecheckAction:
    """What the ATS's answer right before sending means for a scheduled case."""

    cancel: str = ""          # cancel the mail with this reason
    hold: str = ""            # hold it for review with this reason
    invite: bool | None = None  # set the invitation (None: leave it)
    invite_note: str = ""


# A reason changed after detection: what the re-check cancels, whatever the standing says.
RECHECK_CATEGORY = {
    Category.CANDIDATE_WITHDREW: ("the ATS now records a withdrawal, not a rejection, for this "
                                  "application; withdrawals are never mailed"),
    Category.HIRED: "the ATS now records this candidate as hired",
}


def category_cancel(category: Category | None, reason: str = "") -> str:
    """Why a pending email is cancelled when the ATS now gives this category ("" = it is
    not): at the re-check, and when a poll or webhook reports the changed reason first."""
    if category not in RECHECK_CATEGORY:
        return ""
    return RECHECK_CATEGORY[category] + (f" (reason in the ATS: {reason})" if reason else "")


def recheck_action(status: ApplicationStatus, config: Config, *, invite: bool,
                   invite_note: str, tells_other_applications: bool) -> RecheckAction:
    """`status` for a case that carries (`invite`) or lacks the invitation for `invite_note`.
    The category the ATS gives now is compared first: a rejection changed into a withdrawal
    (or a hire) since detection is cancelled, with the reason's name. A connector that can see
    other applications (`tells_other_applications`) and answers REJECTED says the person is no
    longer in process elsewhere: an invitation held back for that reason alone comes back."""
    if changed := category_cancel(status.category, status.reason):
        return RecheckAction(cancel=changed)
    standing = status.standing
    if standing is Standing.NOT_REJECTED:
        return RecheckAction(cancel="the ATS no longer shows this application as rejected")
    if standing is Standing.ACTIVE_ELSEWHERE:
        policy = config.eligibility.in_process_elsewhere
        if policy == "skip":
            return RecheckAction(cancel=IN_PROCESS_SKIP)
        if policy == "hold":
            return RecheckAction(hold=IN_PROCESS_HOLD)
        if invite and config.mail.mode == "invite_only":   # the invitation is the whole email
            return RecheckAction(cancel=f"{IN_PROCESS}: an invite-only email would carry "
                                        "nothing else")
        if invite:
            return RecheckAction(invite=False, invite_note=IN_PROCESS_NOTE)
        return RecheckAction()
    if (standing is Standing.REJECTED and tells_other_applications and not invite
            and invite_note == IN_PROCESS_NOTE and config.relay.enabled):
        return RecheckAction(invite=True, invite_note="")
    return RecheckAction()


# --- language and feedback --------------------------------------------------------------------
def normal_language(value: str | None) -> str | None:
    """"ja", "en" or "bilingual" from an ATS's or a setting's language value; None if none.
    Any other language the ATS names (a French job post, say) is written to in English."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in ("bilingual", "ja+en", "ja,en"):
        return "bilingual"
    primary = re.split(r"[-_]", text)[0]
    if primary in ("ja", "jp", "jpn", "japanese", "日本語"):
        return "ja"
    return "en"


def language_for(event: RejectionEvent, config: Config) -> str:
    """The person's own language, else the application's (a job post's), else the source's
    `language`, else `company.default_language` (or `locale`)."""
    source = next((s for s in config.sources if s.name == event.source), None)
    return (normal_language(event.person.language) or normal_language(event.language)
            or (source.language if source else None) or config.company.mail_language)


_FEEDBACK_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def feedback_text(raw: str, config: Config) -> str:
    """The designated feedback field's text as a candidate may read it: control characters
    out, line breaks kept (at most one blank line in a row), at most `mail.feedback_max_chars`
    characters, cut at a line or sentence end where one is near. Escaping is the templates'
    (autoescaped HTML); this only bounds and tidies the text."""
    text = unicodedata.normalize("NFC", raw or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _FEEDBACK_CONTROL.sub("", text).replace("\u2028", "\n").replace("\u2029", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    limit = config.mail.feedback_max_chars
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(mark) for mark in ("\n", "。", ". ", "！", "？"))
    if end >= limit * 0.6:
        cut = cut[:end + 1]
    return cut.rstrip() + "…"
