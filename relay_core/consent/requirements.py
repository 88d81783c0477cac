"""The relay can only be switched on when the candidate can be told everything the law asks
(reference/privacy_email.md, section 6, items 3, 13 and 25)."""

from __future__ import annotations

from ..config import Config


def relay_problems(config: Config) -> list[str]:
    problems = []
    if not config.company.privacy_policy_url.strip():
        problems.append("company.privacy_policy_url is empty: the relay needs a privacy policy "
                        "whose purposes include providing applicant data to named partner "
                        "agencies with consent")
    for key in ("legal_name", "address", "representative"):
        if not getattr(config.company, key).strip():
            problems.append(f"company.{key} is empty: agencies must receive it with every "
                            "transfer (APPI Art. 30)")
    for i, agency in enumerate(config.agencies):
        missing = agency.missing_disclosures()
        if missing:
            problems.append(f"agencies[{i}] ({agency.id}) lacks " + ", ".join(missing)
                            + ": it is not shown to candidates and receives nothing")
    return problems
