"""The relay can only be switched on when the candidate can be told everything the law asks
(reference/privacy_email.md, section 6, items 3, 13 and 25). `career-relay check` calls
`relay_problems(config)` and lists each problem; an empty list means the relay may be on."""

from __future__ import annotations

from urllib.parse import urlsplit

from relay_core.config import Config
from relay_core.records.consent.disclosure import FIELD_LABELS


def relay_problems(config: Config) -> list[str]:
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
    for i, agency in enumerate(config.agencies):
        missing = agency.missing_disclosures()
        if missing:
            problems.append(f"agencies[{i}] ({agency.id}) lacks " + ", ".join(missing)
                            + ": it is not shown to candidates and receives nothing")
        if not agency.fields:
            problems.append(f"agencies[{i}].fields is empty: list the data items this agency "
                            "receives, e.g. [\"name\", \"email\"]")
        unknown = [f for f in agency.fields if f not in FIELD_LABELS]
        if unknown:
            problems.append(f"agencies[{i}].fields has {', '.join(map(repr, unknown))}, which "
                            "the consent page cannot describe to candidates; use only "
                            + ", ".join(FIELD_LABELS))
    return problems
