"""Consent evidence for one case: `career-relay evidence --case ID [-f text|json|html]`.

What a dispute or a regulator asks (reference/privacy_email.md sec. 2.2, sec. 6 items 4-6): who
agreed, to exactly which text, when, for which agencies and items, from which link, and what
happened afterwards: every transfer (with its APPI Art. 29 provision record), every withdrawal
and deletion notice. Everything is read from the store, never from the configuration as it is
now: the consent text is the stored one (store/consents.py `keep_consent_text`), so editing an
agency's purpose later changes nothing here.

The hashes are verified, not trusted:
- the stored text's bytes hash to the SHA-256 the consent recorded;
- the audit row written with the consent names the same version and hash;
- every provision record's consent reference names this consent and hash.
A consent recorded before the texts were kept has no stored text; its hash is then compared
with the text the current configuration renders, and the result says which it was.

The link is named by its invitation id (the token itself was never stored). The output holds
personal data while the case still has it (the name and address, until retention deletes
them): it goes to the terminal or a file the operator names, never to the log.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from relay_core.config import Config
from relay_core.errors import FatalError
from relay_core.models import RelayCase
from relay_core.records.consent.disclosure import consent_text_for_case, field_label
from relay_core.records.handoff.payload import consent_reference
from relay_core.rendering.environment import template_environment
from relay_core.store import Store, cases, consents, handoffs

# The audit actions that tell the story of a consent, its transfers and its withdrawal.
STORY = ("consented", "declined", "invitation_expired", "confirmation_missing", "withdrawn",
         "transfer", "transfer_uncertain", "transfer_refused", "handoff_retry", "handoff_dead",
         "handoff_possibly_delivered", "handoff_resumed", "redirect_reference_issued",
         "deletion_queued", "deletion_notice_sent", "deletion_notice_retry",
         "deletion_notice_dead", "agency_event", "unsubscribed", "purged",
         "invitation_withheld", "incident")


@dataclass
class Verification:
    what: str
    ok: bool
    detail: str


@dataclass
class Evidence:
    case: dict[str, Any]
    consent: dict[str, Any] | None
    text: dict[str, Any] | None
    links: list[dict[str, Any]]
    handoffs: list[dict[str, Any]]
    transfers: list[dict[str, Any]]
    deletion_notices: list[dict[str, Any]]
    history: list[dict[str, Any]]
    checks: list[Verification] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def __repr__(self) -> str:   # the case part holds personal data
        return f"Evidence(case={self.case.get('id')}, verified={self.verified})"

    def as_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "checks": [asdict(c) for c in self.checks],
                "case": self.case, "consent": self.consent, "text": self.text,
                "links": self.links, "handoffs": self.handoffs, "transfers": self.transfers,
                "deletion_notices": self.deletion_notices, "history": self.history}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def build_evidence(store: Store, config: Config, case_id: int) -> Evidence:
    """Everything recorded about this case's consent, verified. FatalError if no such case."""
    with store.connect() as conn:
        case = cases.get(conn, case_id)
        if case is None:
            raise FatalError(f"no case {case_id}; pick an id from `career-relay cases`")
        consent = consents.consent_for_case(conn, case_id)
        status = consents.relay_status(conn, case_id).value
        text = consents.consent_text(conn, consent.text_sha256) if consent else None
        links = consents.invitations_of_case(conn, case_id)
        rows = handoffs.handoffs_of_consent(conn, consent.id) if consent else []
        records = handoffs.provision_records_of_case(conn, case_id)
        notices = handoffs.deletion_notices_of_case(conn, case_id)
    trail = [r for r in store.audit_trail(case_id) if r["action"] in STORY]
    person = case.person
    evidence = Evidence(
        case={"id": case.id, "source": case.source, "application_id": case.application_id,
              "candidate_id": case.candidate_id,
              "name": (person.display_name or None) if person else None,
              "email": case.email,
              "personal_data": "held" if case.email or person else
              "deleted by retention (identifiers only)",
              "language": case.language, "relay_status": status},
        consent=None if consent is None else {
            "id": consent.id, "consented_at": _iso(consent.consented_at),
            "method": consent.method, "language": consent.language,
            "text_version": consent.text_version, "text_sha256": consent.text_sha256,
            "invitation_id": consent.invitation_id, "reference": consent_reference(consent),
            "withdrawn_at": _iso(consent.withdrawn_at),
            "withdrawal_method": consent.withdrawal_method,
            "agencies": [{"agency_id": a.agency_id, "legal_name": a.legal_name,
                          "items": list(a.fields),
                          "item_labels": [field_label(f, consent.language) for f in a.fields],
                          "nothing_sent": not a.fields}
                         for a in consent.agencies]},
        text=None if text is None else {
            "sha256": text.sha256, "language": text.language, "version": text.version,
            "kept_since": _iso(text.created_at), "html": text.html,
            "plain": plain_text(text.html)},
        links=[{"invitation_id": i.id, "purpose": i.purpose, "created_at": _iso(i.created_at),
                "expires_at": _iso(i.expires_at), "used_at": _iso(i.used_at),
                "consented_through_it": bool(consent and consent.invitation_id == i.id)}
               for i in links],
        handoffs=[{"handoff_id": h.id, "agency_id": h.agency_id, "state": h.state,
                   "attempts": h.attempts, "delivered_at": _iso(h.delivered_at)}
                  for h in rows],
        transfers=[{"provision_record": r.id, "agency_id": r.agency_id,
                    "recipient_legal_name": r.recipient_legal_name,
                    "recipient_country": r.recipient_country, "items": list(r.items),
                    "channel": r.channel, "provided_at": _iso(r.provided_at),
                    "keep_until": _iso(r.keep_until), "consent_reference": r.consent_reference,
                    "note": r.note}
                   for r in records],
        deletion_notices=[{"agency_id": n.agency_id, "state": n.state,
                           "queued_at": _iso(n.created_at), "sent_at": _iso(n.sent_at)}
                          for n in notices],
        history=[{"at": _iso(r["at"]), "actor": r["actor"], "action": r["action"],
                  "reason": r["reason"]} for r in trail],
    )
    evidence.checks = _verify(config, case, consent, text, trail, records)
    return evidence


def _verify(config: Config, case: RelayCase, consent: Any, text: Any,
            trail: list[dict[str, Any]], records: list[Any]) -> list[Verification]:
    if consent is None:
        return [Verification("consent", False, "this case has no consent to show evidence of"
                                               " (see relay_status above)")]
    checks = []
    if text is not None:
        digest = hashlib.sha256(text.html.encode()).hexdigest()
        checks.append(Verification(
            "consent text", digest == consent.text_sha256,
            f"the stored text hashes to {digest}" + (
                ", the SHA-256 recorded with the consent" if digest == consent.text_sha256
                else f", not to the recorded {consent.text_sha256}: the stored text was "
                     "altered")))
    else:
        current = consent_text_for_case(config, case, consent.language)
        same = current.sha256 == consent.text_sha256
        checks.append(Verification(
            "consent text", same,
            "no stored text (the consent predates kept texts); the current configuration "
            + ("renders exactly the recorded text" if same else
               "renders a different text, so what was shown cannot be reproduced")))
    marker = f"text {consent.text_version} {consent.text_sha256[:16]}"
    audited = [r for r in trail if r["action"] == "consented"]
    checks.append(Verification(
        "audit log", any(marker in r["reason"] for r in audited),
        "the audit row written with the consent names the same version and hash"
        if any(marker in r["reason"] for r in audited)
        else "no audit row of the consent names this version and hash"))
    reference = consent_reference(consent)
    wrong = [r.id for r in records if r.consent_reference != reference]
    checks.append(Verification(
        "provision records", not wrong,
        f"{len(records)} provision record(s), each naming {reference}" if not wrong else
        f"provision record(s) {', '.join(map(str, wrong))} name another consent reference"))
    return checks


_TAGS = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</?(p|h[1-6]|li|dt|dd|article|section|ul|dl)\b[^>]*>", re.IGNORECASE)


def plain_text(markup: str) -> str:
    """The consent text as the candidate read it, without markup (for the terminal)."""
    text = _BLOCK.sub("\n", markup)
    text = html.unescape(_TAGS.sub("", text))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


# --- renderings ------------------------------------------------------------------------------
def evidence_json(evidence: Evidence) -> str:
    return json.dumps(evidence.as_dict(), ensure_ascii=False, indent=2) + "\n"


def evidence_text(evidence: Evidence) -> str:
    e = evidence.as_dict()
    case, consent = e["case"], e["consent"]
    out = [f"Consent evidence for case {case['id']} ({case['source']}/{case['application_id']}, "
           f"candidate {case['candidate_id'] or '-'})",
           f"verified: {'yes' if e['verified'] else 'NO'}"]
    out += [f"  [{'ok' if c['ok'] else 'FAIL'}] {c['what']}: {c['detail']}" for c in e["checks"]]
    out.append(f"person: {case['name'] or '-'} <{case['email'] or '-'}> "
               f"({case['personal_data']})")
    if consent:
        out += ["", f"consented {consent['consented_at']} by {consent['method']} in "
                    f"{consent['language']}, through link (invitation) {consent['invitation_id']}",
                f"reference {consent['reference']}; text version {consent['text_version']}, "
                f"SHA-256 {consent['text_sha256']}"]
        for a in consent["agencies"]:
            items = ("nothing sent (the agency's own registration form)" if a["nothing_sent"]
                     else ", ".join(a["items"]))
            out.append(f"  agency {a['agency_id']} {a['legal_name']}: {items}")
        out.append(f"withdrawn: {consent['withdrawn_at'] or 'no'}"
                   + (f" ({consent['withdrawal_method']})" if consent["withdrawn_at"] else ""))
    out += ["", "links:"]
    out += [f"  invitation {link['invitation_id']} ({link['purpose']}): made "
            f"{link['created_at']}, expires {link['expires_at']}, used {link['used_at'] or '-'}"
            for link in e["links"]]
    out += ["", "transfers (APPI Art. 29 provision records):"]
    out += [f"  {t['provided_at']} record {t['provision_record']} to {t['agency_id']} "
            f"{t['recipient_legal_name']} ({t['recipient_country']}) via {t['channel']}: "
            f"{', '.join(t['items'])}; kept until {t['keep_until']}"
            + (f"; {t['note']}" if t["note"] else "") for t in e["transfers"]] or ["  none"]
    out += ["", "handoffs:"]
    out += [f"  {h['agency_id']}: {h['state']} after {h['attempts']} attempt(s)"
            for h in e["handoffs"]] or ["  none"]
    out += ["", "deletion notices:"]
    out += [f"  {n['agency_id']}: {n['state']}, queued {n['queued_at']}, sent "
            f"{n['sent_at'] or '-'}" for n in e["deletion_notices"]] or ["  none"]
    out += ["", "history (audit log):"]
    out += [f"  {h['at']} {h['actor']} {h['action']}: {h['reason']}" for h in e["history"]]
    if e["text"]:
        out += ["", f"the consent text shown ({e['text']['language']}, kept since "
                    f"{e['text']['kept_since']}):", "", e["text"]["plain"]]
    return "\n".join(out) + "\n"


def evidence_html(evidence: Evidence, config: Config | None = None) -> str:
    """One self-contained page from templates/evidence/evidence.html."""
    return template_environment(config, html_only=True).render_file(
        "evidence/evidence.html", {"e": evidence.as_dict()})
