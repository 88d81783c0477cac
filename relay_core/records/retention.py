"""Retention (`career-relay purge`) and incident export (`career-relay export-incident`).

Purge (reference/privacy_email.md sec. 6 items 7, 10; APPI Art. 22, 職業安定法 指針):
- the connector's own copy of a candidate (relay_cases.email / person_json / event_json /
  person_key, the outbox bytes and recipient, the consent preferences) is blanked
  `retention.candidate_days` (default 180) after the rejection, and at once once the candidate
  withdrew the relay consent;
- cases whose email is still due or whose handoff is still being delivered are left for a later
  purge (they are counted as `waiting`);
- APPI Art. 29 provision records are deleted only after their `keep_until` (three years after the
  provision) and never earlier; consent evidence (identifiers only) stays with them;
- the audit log is never touched (append-only, kept at least as long as the records).
Every blanked case gets an audit row; the counts are logged and returned.

Incident export (item 23): for a time window, every disclosure the system made: transfers to
agencies (from the provision records, which outlive the candidate's data), deletion notices,
and emails to candidates, with the data items and the recipients, for APPI 速報/確報 and GDPR
72-hour reports. Its output holds personal data (recipient addresses): it goes to the terminal
or a file the operator names, never to the log.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from relay_core.config import Config
from relay_core.models import CaseState
from relay_core.store import Store, utcnow
from relay_core.store import tables as t

log = logging.getLogger("career_relay.retention")
WAITING_STATES = (CaseState.SCHEDULED.value, CaseState.HELD.value, CaseState.SENDING.value)
IN_FLIGHT = ("pending", "retrying", "sending")
EMAIL_ITEMS = {"rejection": ["name", "email", "job_title"],
               "invite_only": ["name", "email", "job_title"],
               "confirmation": ["name", "email", "agencies chosen"]}


@dataclass
class PurgeReport:
    cases_blanked: int = 0
    after_withdrawal: int = 0
    preferences_deleted: int = 0
    outbox_blanked: int = 0
    provision_records_deleted: int = 0
    provision_records_kept: int = 0
    waiting: int = 0


def purge(store: Store, config: Config, *, now: datetime | None = None) -> PurgeReport:
    now = now or utcnow()
    cutoff = now - timedelta(days=config.retention.candidate_days)
    report = PurgeReport()
    c = t.relay_cases.c
    with store.begin() as conn:
        withdrawn = set(conn.execute(select(t.relay_status.c.case_id).where(
            t.relay_status.c.status == "withdrawn")).scalars())
        in_flight = set(conn.execute(select(t.handoffs.c.case_id).where(
            t.handoffs.c.state.in_(IN_FLIGHT))).scalars())
        rows = conn.execute(select(c.id, c.state, c.rejected_at).where(
            (c.email.isnot(None)) | (c.person_json.isnot(None)) | (c.event_json.isnot(None)))
            .order_by(c.id)).all()
        for row in rows:
            expired = row.rejected_at < cutoff
            if not expired and row.id not in withdrawn:
                continue
            if row.state in WAITING_STATES or row.id in in_flight:
                report.waiting += 1
                continue
            conn.execute(update(t.relay_cases).where(c.id == row.id).values(
                email=None, person_json=None, event_json=None, person_key=None,
                updated_at=now))
            report.outbox_blanked += conn.execute(update(t.outbox).where(
                t.outbox.c.case_id == row.id,
                (t.outbox.c.message.isnot(None)) | (t.outbox.c.recipient.isnot(None)))
                .values(message=None, recipient=None)).rowcount
            consent_ids = list(conn.execute(select(t.consents.c.id).where(
                t.consents.c.case_id == row.id)).scalars())
            if consent_ids:
                report.preferences_deleted += conn.execute(delete(t.consent_preferences).where(
                    t.consent_preferences.c.consent_id.in_(consent_ids))).rowcount
            why = ("the candidate withdrew the relay consent" if row.id in withdrawn and
                   not expired else f"{config.retention.candidate_days} days after the rejection")
            store.audit(conn, row.id, "purge", "purged", reason=f"personal data deleted: {why}",
                        at=now)
            report.cases_blanked += 1
            report.after_withdrawal += row.id in withdrawn and not expired
        report.provision_records_deleted = conn.execute(delete(t.provision_records).where(
            t.provision_records.c.keep_until < now)).rowcount
        report.provision_records_kept = len(conn.execute(
            select(t.provision_records.c.id)).all())
        store.audit(conn, None, "purge", "purge_run", at=now,
                    reason=", ".join(f"{k} {v}" for k, v in asdict(report).items()))
    log.info("purge: %s", ", ".join(f"{k}={v}" for k, v in asdict(report).items()))
    return report


# --- incident export -------------------------------------------------------------------------
@dataclass
class Disclosure:
    at: str
    what: str
    case: str
    recipient: str
    address: str
    items: list[str] = field(default_factory=list)


def record_incident(store: Store, case_id: int, note: str, actor: str) -> bool:
    """Log an incident against a case (a misdirected email, say) in the append-only audit log,
    so export-incident lists it. False when there is no such case."""
    with store.begin() as conn:
        if conn.execute(select(t.relay_cases.c.id).where(
                t.relay_cases.c.id == case_id)).first() is None:
            return False
        store.audit(conn, case_id, actor, "incident", reason=note.strip()[:1000])
    return True


def export_incident(store: Store, config: Config, since: datetime,
                    until: datetime) -> list[Disclosure]:
    names = {a.id: a.legal_name for a in config.agencies}
    out: list[Disclosure] = []
    with store.engine.connect() as conn:
        for r in conn.execute(select(t.provision_records).where(
                t.provision_records.c.provided_at >= since,
                t.provision_records.c.provided_at < until)):
            out.append(Disclosure(r.provided_at.isoformat(), f"transfer ({r.channel})",
                                  r.candidate_ref.split(" (")[0],
                                  f"{r.agency_id} {r.recipient_legal_name}",
                                  r.destination, json.loads(r.items_json)))
        notices = conn.execute(
            select(t.deletion_notices, t.relay_cases.c.source, t.relay_cases.c.application_id)
            .join(t.relay_cases, t.relay_cases.c.id == t.deletion_notices.c.case_id)
            .where(t.deletion_notices.c.sent_at >= since, t.deletion_notices.c.sent_at < until))
        for r in notices:
            out.append(Disclosure(r.sent_at.isoformat(), "deletion notice",
                                  f"{r.source}/{r.application_id}",
                                  f"{r.agency_id} {names.get(r.agency_id, '')}".strip(), "",
                                  ["reference", "withdrawal date"]))
        mails = conn.execute(
            select(t.outbox.c.kind, t.outbox.c.recipient, t.outbox.c.sent_at,
                   t.relay_cases.c.source, t.relay_cases.c.application_id)
            .join(t.relay_cases, t.relay_cases.c.id == t.outbox.c.case_id)
            .where(t.outbox.c.state == "sent", t.outbox.c.sent_at >= since,
                   t.outbox.c.sent_at < until))
        for r in mails:
            out.append(Disclosure(r.sent_at.isoformat(), f"email to candidate ({r.kind})",
                                  f"{r.source}/{r.application_id}", "candidate",
                                  r.recipient or "(address purged)",
                                  EMAIL_ITEMS.get(r.kind, ["name", "email"])))
        incidents = conn.execute(
            select(t.audit_log.c.at, t.audit_log.c.reason, t.relay_cases.c.source,
                   t.relay_cases.c.application_id, t.relay_cases.c.email)
            .join(t.relay_cases, t.relay_cases.c.id == t.audit_log.c.case_id)
            .where(t.audit_log.c.action == "incident", t.audit_log.c.at >= since,
                   t.audit_log.c.at < until))
        for r in incidents:
            out.append(Disclosure(r.at.isoformat(), f"incident: {r.reason}",
                                  f"{r.source}/{r.application_id}", "candidate",
                                  r.email or "(address purged)", ["name", "email", "job_title"]))
    out.sort(key=lambda d: (d.at, d.what))
    return out


def incident_summary(rows: list[Disclosure]) -> dict[str, Any]:
    return {"disclosures": len(rows), "candidates": len({r.case for r in rows}),
            "recipients": sorted({r.recipient for r in rows if r.recipient != "candidate"}),
            "items": sorted({i for r in rows for i in r.items})}


def incident_json(rows: list[Disclosure], since: datetime, until: datetime) -> str:
    return json.dumps({"since": since.isoformat(), "until": until.isoformat(),
                       "summary": incident_summary(rows), "rows": [asdict(r) for r in rows]},
                      ensure_ascii=False, indent=2)


def incident_csv(rows: list[Disclosure]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["at", "what", "case", "recipient", "address", "items"])
    for r in rows:
        writer.writerow([r.at, r.what, r.case, r.recipient, r.address, "; ".join(r.items)])
    return out.getvalue()
