"""When the relay can work, and why not (reference/privacy_email.md, section 6, items 3, 13, 25).

Two kinds of problem:

- *blockers* (`invitation_blockers`): no privacy-policy URL, a clear-text public address,
  incomplete company details, or no agency that can receive anyone. While one exists, every
  email goes out **without** the invitation, the reason is recorded on the case and in the
  audit log (cycle/sending.py), and `run`, `status` and `check` show it;
- *agency problems* (records/agencies.py): that agency alone is not offered on the consent page
  and receives nothing.

`career-relay check` lists both (`relay_problems`), each naming the key to fix.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from relay_core.config import Config
from relay_core.records.agencies import agency_problems, offered_agencies
from relay_core.store import Store, consents

WITHHELD_ACTION = "invitation_withheld"    # the audit action of a case mailed without it


def company_problems(config: Config) -> list[str]:
    problems = []
    if not config.company.privacy_policy_url.strip():
        problems.append("company.privacy_policy_url is empty: the relay needs a privacy policy "
                        "whose purposes include providing applicant data to named partner "
                        "agencies with consent")
    elif not config.company.privacy_policy_url.startswith(("https://", "http://")):
        problems.append("company.privacy_policy_url must be a web address (https://...) that "
                        "the consent page can link to")
    base = urlsplit(config.relay.public_base_url)
    if base.scheme != "https" and base.hostname not in ("localhost", "127.0.0.1", "::1"):
        problems.append("relay.public_base_url must start with https://: the invitation link "
                        "and the session cookie must never travel in clear text")
    for key in ("name", "legal_name", "address", "representative"):
        if not getattr(config.company, key).strip():
            problems.append(f"company.{key} is empty: candidates must see it on the consent "
                            "page and agencies must receive it with every transfer (APPI Art. 30)")
    return problems


def invitation_blockers(config: Config) -> list[str]:
    """Why no email may carry the relay invitation now; [] when it may (or the relay is off)."""
    if not config.relay.enabled:
        return []
    problems = company_problems(config)
    if not config.agencies:
        problems.append("agencies: no [[agencies]] block, so the consent page would have "
                        "nothing to tick; add a partner agency or set relay.enabled = false")
    elif not offered_agencies(config):
        problems.append("agencies: no agency can receive candidates ("
                        + "; ".join(agency_problem_lines(config))
                        + "); fix one or set relay.enabled = false")
    return problems


def agency_problem_lines(config: Config) -> list[str]:
    """One line per problem of each agency that is not offered, with its key path."""
    lines = []
    for i, agency in enumerate(config.agencies):
        problems = agency_problems(agency)
        missing = agency.missing_disclosures()
        if missing:
            lines.append(f"agencies[{i}] ({agency.id}) lacks "
                         + ", ".join(f"agencies[{i}].{k}" for k in missing)
                         + ": it is not offered to candidates and receives nothing")
        lines += [f"agencies[{i}].{p}" for p in problems if not p.endswith(" is empty")
                  or p.split(" ", 1)[0] not in missing]
    return lines


def relay_problems(config: Config) -> list[str]:
    """Everything `check` reports for the relay; [] means every part of it works."""
    if not config.relay.enabled:
        return []
    return invitation_blockers(config) + agency_problem_lines(config)


def relay_overview(config: Config, store: Store) -> dict[str, Any]:
    """For `career-relay status`: whether the invitation can go out now and why not, the
    agencies not offered, and how many emails went out without it, by recorded reason."""
    with store.connect() as conn:
        withheld = consents.withheld_invitations(conn, WITHHELD_ACTION)
    return {"enabled": config.relay.enabled, "blockers": invitation_blockers(config),
            "agencies_not_offered": agency_problem_lines(config) if config.relay.enabled else [],
            "sent_without_invitation": withheld}
