"""Retention (`career-relay purge`) and incident export (`career-relay export-incident`).

Purge (reference/privacy_email.md sec. 6 items 7, 10; APPI Art. 22, 職業安定法 指針):
- the connector's own copy of a candidate (relay_cases.email / person_json / event_json /
  person_key / job_title, the outbox bytes and recipient, the consent preferences, and the .eml
  files of the file outbox: the candidate's mails and the agency mails about them) is deleted
  `retention.candidate_days` (default 180) after the rejection, and at once once the candidate
  withdrew the relay consent; any other .eml file in the outbox folder older than that goes too;
- cases whose email is still due or whose handoff is still being delivered are left for a later
  purge (they are counted as `waiting`);
- APPI Art. 29 provision records are deleted only after their `keep_until` (three years after the
  provision) and never earlier; consent evidence (identifiers only) and the consent texts it
  names stay with them;
- the webhook inbox: rows processed over a day ago are deleted (their bodies went when they were
  processed), and a delivery still unprocessed after `retention.candidate_days` loses its body;
- afterwards the SQLite file gives the freed space back (`Store.reclaim`);
- the audit log is never touched (append-only, kept at least as long as the records).
Every blanked case gets an audit row; the counts are logged and returned. `dry_run` does all of
it in a transaction that is rolled back and deletes no file: the counts of what would go.

`run` and `serve` call `purge_if_due` after each cycle: it purges at most once per calendar day
in the company's timezone (the last `purge_run` audit row says when), unless
`retention.purge_daily = false`.

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
from pathlib import Path
from typing import Any

from relay_core.config import Config
from relay_core.mail.message import make_message_id, message_id_domain
from relay_core.mail.transports import FileTransport
from relay_core.models import CaseState
from relay_core.store import Connection, Store, handoffs, inbox, utcnow
from relay_core.store.retention import (
    blank_case,
    case_exists,
    cases_holding_personal_data,
    cases_with_handoffs_in,
    count_provision_records,
    delete_case_preferences,
    delete_provision_records_before,
    incidents_between,
    last_purge_at,
    mail_ids_of_case,
    mails_sent_between,
    notices_sent_between,
    references_of_case,
    withdrawn_cases,
)

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
    eml_files_deleted: int = 0
    provision_records_deleted: int = 0
    provision_records_kept: int = 0
    waiting: int = 0
    inbox_deleted: int = 0
    inbox_blanked: int = 0
    dry_run: bool = False


PURGE_ACTION = "purge_run"
INBOX_KEEP = timedelta(days=1)      # processed webhook rows (no body left) kept for diagnosis


def purge(store: Store, config: Config, *, now: datetime | None = None,
          dry_run: bool = False) -> PurgeReport:
    now = now or utcnow()
    report = PurgeReport(dry_run=dry_run)
    outbox = config.path(config.mail.outbox_dir)
    with store.connect() as conn:
        transaction = conn.begin()
        try:
            files = _purge_rows(store, conn, config, now, report)
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        except BaseException:
            transaction.rollback()
            raise
    # Files go only after the rows are committed: a failed purge leaves both in place.
    report.eml_files_deleted = _delete_files(files, dry_run)
    report.eml_files_deleted += _sweep_outbox(outbox, now - timedelta(
        days=config.retention.candidate_days), dry_run, exclude=files)
    if not dry_run:
        store.reclaim(convert=True)
        with store.begin() as conn:
            store.audit(conn, None, "purge", PURGE_ACTION, at=now,
                        reason=", ".join(f"{k} {v}" for k, v in asdict(report).items()
                                         if k != "dry_run"))
    log.info("purge%s: %s", " (dry run)" if dry_run else "",
             ", ".join(f"{k}={v}" for k, v in asdict(report).items() if k != "dry_run"))
    return report


def _purge_rows(store: Store, conn: Connection, config: Config, now: datetime,
                report: PurgeReport) -> set[Path]:
    """Blank what is past retention in `conn`'s transaction; returns the .eml files of the
    blanked cases (to delete once this commits)."""
    cutoff = now - timedelta(days=config.retention.candidate_days)
    transport = FileTransport(config.path(config.mail.outbox_dir))
    domain = _domain(config)
    files: set[Path] = set()
    withdrawn = withdrawn_cases(conn)
    in_flight = cases_with_handoffs_in(conn, IN_FLIGHT)
    for row in cases_holding_personal_data(conn):
        expired = row.rejected_at < cutoff
        if not expired and row.id not in withdrawn:
            continue
        if row.state in WAITING_STATES or row.id in in_flight:
            report.waiting += 1
            continue
        files.update(transport.path_for(m) for m in mail_ids_of_case(conn, row.id))
        if domain:
            for reference in references_of_case(conn, row.id):
                files.update(transport.path_for(make_message_id(f"{kind}-{reference}",
                                                                "agency", domain))
                             for kind in ("handoff", "deletion"))
        report.outbox_blanked += blank_case(conn, row.id, now)
        report.preferences_deleted += delete_case_preferences(conn, row.id)
        why = ("the candidate withdrew the relay consent" if row.id in withdrawn and
               not expired else f"{config.retention.candidate_days} days after the rejection")
        store.audit(conn, row.id, "purge", "purged", reason=f"personal data deleted: {why}",
                    at=now)
        report.cases_blanked += 1
        report.after_withdrawal += row.id in withdrawn and not expired
    report.inbox_deleted, report.inbox_blanked = inbox.purge(
        conn, processed_before=now - INBOX_KEEP, received_before=cutoff)
    report.provision_records_deleted = delete_provision_records_before(conn, now)
    report.provision_records_kept = count_provision_records(conn)
    return files


def _domain(config: Config) -> str:
    try:
        return message_id_domain(config)
    except Exception:   # a broken sender: no agency mail could have been written either
        return ""


def _delete_files(files: set[Path], dry_run: bool) -> int:
    deleted = 0
    for path in files:
        if not path.is_file():
            continue
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                log.warning("purge: could not delete %s (%s)", path.name,
                            exc.strerror or type(exc).__name__)
                continue
        deleted += 1
    return deleted


def _sweep_outbox(folder: Path, cutoff: datetime, dry_run: bool, exclude: set[Path]) -> int:
    """Any .eml in the outbox folder last written before the cutoff (mails whose case is gone,
    agency mails, messages written before this version): none may outlive retention."""
    if not folder.is_dir():
        return 0
    limit = cutoff.timestamp()
    old = [p for p in folder.glob("*.eml") if p not in exclude and p.stat().st_mtime < limit]
    return _delete_files(set(old), dry_run)


def purge_if_due(store: Store, config: Config, now: datetime | None = None
                 ) -> PurgeReport | None:
    """Purge unless `retention.purge_daily` is off or a purge already ran today (in the
    company's timezone); returns its report, or None when it did not run."""
    if not config.retention.purge_daily:
        return None
    now = now or utcnow()
    with store.connect() as conn:
        last = last_purge_at(conn, PURGE_ACTION)
    tz = config.company.tz
    if last is not None and last.astimezone(tz).date() >= now.astimezone(tz).date():
        return None
    return purge(store, config, now=now)


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
        if not case_exists(conn, case_id):
            return False
        store.audit(conn, case_id, actor, "incident", reason=note.strip()[:1000])
    return True


def export_incident(store: Store, config: Config, since: datetime,
                    until: datetime) -> list[Disclosure]:
    names = {a.id: a.legal_name for a in config.agencies}
    out: list[Disclosure] = []
    with store.engine.connect() as conn:
        for r in handoffs.provision_records_between(conn, since, until):
            out.append(Disclosure(r.provided_at.isoformat(), f"transfer ({r.channel})",
                                  r.candidate_ref.split(" (")[0],
                                  f"{r.agency_id} {r.recipient_legal_name}",
                                  r.destination, list(r.items)))
        for r in notices_sent_between(conn, since, until):
            out.append(Disclosure(r.sent_at.isoformat(), "deletion notice",
                                  f"{r.source}/{r.application_id}",
                                  f"{r.agency_id} {names.get(r.agency_id, '')}".strip(), "",
                                  ["reference", "withdrawal date"]))
        for r in mails_sent_between(conn, since, until):
            out.append(Disclosure(r.sent_at.isoformat(), f"email to candidate ({r.kind})",
                                  f"{r.source}/{r.application_id}", "candidate",
                                  r.recipient or "(address purged)",
                                  EMAIL_ITEMS.get(r.kind, ["name", "email"])))
        for r in incidents_between(conn, since, until):
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
