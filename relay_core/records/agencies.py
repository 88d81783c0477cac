"""Which agencies can take part in the relay right now.

An agency is *offered* on the consent page, and may receive anything, only when all of this
holds (reference/privacy_email.md sec. 6 items 3, 13): its legal disclosures are complete
(`Agency.missing_disclosures`), every data item it lists can be described to the candidate, its
channel is usable (an https URL and a secret for `webhook`, an intake address for `email`, the
agency's own https form for `redirect`), and its secret, if it has one, resolves on this
machine. An agency that fails any of these is not offered and receives nothing; `career-relay
check` names the key to fix. Problems are words for the operator, each starting with the key
under `agencies[i]`; they never hold a secret's value.
"""

from __future__ import annotations

import re
import time

from relay_core.config import Agency, Config
from relay_core.errors import ConfigError
from relay_core.mail.message import validate_address
from relay_core.records.items import DESCRIBABLE, PROVENANCE_ITEMS, banned_category

_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?$")
# A keyring look-up may ask a desktop service over D-Bus: remember a good answer for a minute
# so the consent page does not ask on every request. `env:` references are read every time.
_KEYRING_TTL = 60.0
_resolved: dict[str, float] = {}



def channel_problems(agency: Agency) -> list[str]:
    """What keeps an agency's channel from working (disclosures included)."""
    problems = [f"{key} is empty" for key in agency.missing_disclosures()]
    if agency.channel == "webhook":
        if not (agency.url.startswith("https://") or _LOOPBACK.match(agency.url)):
            problems.append("url must be an https:// address for the webhook channel")
        if agency.secret is None:
            problems.append("secret is missing: the webhook channel signs every request")
    elif agency.channel == "email":
        if validate_address(agency.email) is None:
            problems.append("email must be the agency's intake address for the email channel")
    elif agency.channel == "redirect":
        if not agency.register_url.startswith("https://") and not _LOOPBACK.match(
                agency.register_url):
            problems.append("register_url must be the agency's https:// registration form for "
                            "the redirect channel")
    return problems


def secret_problem(agency: Agency) -> str | None:
    """Why the agency's secret does not resolve here, or None (also when it has none)."""
    if agency.secret is None:
        return None
    reference = agency.secret.reference
    keyring = reference.startswith("keyring:")
    if keyring and time.monotonic() - _resolved.get(reference, -_KEYRING_TTL) < _KEYRING_TTL:
        return None
    try:
        agency.secret.resolve()
    except ConfigError as exc:
        _resolved.pop(reference, None)
        return f"secret does not resolve ({exc.problem}). {exc.fix}".rstrip(". ")
    if keyring:
        _resolved[reference] = time.monotonic()
    return None


def sendable(agency: Agency) -> list[str]:
    """The agency's fields that can ever be sent (banned categories never are)."""
    return [f for f in agency.fields if banned_category(f) is None]


def field_problems(agency: Agency) -> list[str]:
    if agency.channel == "redirect":
        return []    # nothing is sent: its list of fields is never used
    if not sendable(agency):
        return ["fields is empty: list the data items this agency receives, e.g. "
                "[\"name\", \"email\"]"]
    unknown = [f for f in sendable(agency) if f not in DESCRIBABLE]
    if unknown:
        return [f"fields has {', '.join(map(repr, unknown))}, which the consent page cannot "
                "describe to candidates; use only " + ", ".join(DESCRIBABLE)]
    return []


def field_warnings(agency: Agency) -> list[str]:
    """Fields listed that are never sent: harmless, but the operator should know."""
    return [f"fields lists {f!r}, which is never sent ({banned_category(f)})"
            for f in agency.fields if banned_category(f) is not None]


def agency_problems(agency: Agency) -> list[str]:
    """Everything that keeps this agency from being offered, each naming its key."""
    problems = channel_problems(agency) + field_problems(agency)
    secret = secret_problem(agency)
    if secret:
        problems.append(secret)
    return problems


def consented_items(agency: Agency) -> list[str]:
    """The items a consent to this agency covers, as the consent page lists them: its fields
    and the provenance; nothing for a redirect agency, which receives nothing from us."""
    if agency.channel == "redirect":
        return []
    return list(dict.fromkeys([*sendable(agency), *PROVENANCE_ITEMS]))


def offered_agencies(config: Config) -> list[Agency]:
    """The agencies a candidate may choose now, in configuration order."""
    return [a for a in config.agencies if not agency_problems(a)]
