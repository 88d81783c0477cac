"""Every rich table the CLI prints: `run`, `check`, `status`, `report`, `export-incident`.

The data comes from elsewhere as plain values (commands/checks.py, commands/status.py,
records/report.py, records/handoff/deliver.py `handoff_status`, records/retention.py
`export_incident`); only the CLI knows about rich, and only this module builds tables.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from relay_core.models import CaseState
from relay_core.records import retention
from relay_core.records.report import STAGE_LABELS, STAGES, Report, legal_review_lines

if TYPE_CHECKING:   # annotations only: `check` need not import the pipeline
    from relay_core.commands.checks import CheckResult
    from relay_core.cycle.run import CycleReport


# --- run -------------------------------------------------------------------------------------
def cycle_table(report: CycleReport) -> Group:
    table = Table(title="career-relay run", show_footer=False)
    for col in ("source", "new", "known", "scheduled", "skipped", "problems"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in report.sources.items():
        table.add_row(name, str(s.detected), str(s.already_known), str(s.scheduled),
                      str(s.skipped), str(len(s.problems)))
    held = sum(s.held for s in report.sources.values())
    table.caption = (f"sent {report.sent} (late {report.sent_late}) · held {held} · cancelled "
                     f"{report.cancelled} · failed {report.failed} · retry later "
                     f"{report.retry_later} · late {report.late}"
                     + (f" · without invitation {report.no_invitation}"
                        if report.no_invitation else "")
                     + (f" · deferred to tomorrow {report.deferred}" if report.deferred else "")
                     + (f" · skipped (person already mailed) {report.skipped_at_send}"
                        if report.skipped_at_send else "")
                     + (f" · ambiguous {report.ambiguous}" if report.ambiguous else "")
                     + (f" · gave up {report.stuck} (see status)" if report.stuck else "")
                     + (f" · purged {report.purged}" if report.purged is not None else ""))
    lines = []
    for name, s in report.sources.items():
        if s.error:
            lines.append(f"{name}: {s.error}")
        lines += [f"{name}: skipped {n} × {reason}" for reason, n in s.skip_reasons.items()]
        lines += [f"{name}: {p}" for p in s.problems]
    lines += report.errors
    notes = Text("\n".join(f"  {line}" for line in lines)) if lines else Text("")
    return Group(table, notes)


# --- check -----------------------------------------------------------------------------------
def check_table(results: list[CheckResult]) -> Table:
    table = Table(title="career-relay check")
    for col in ("", "check", "detail"):
        table.add_column(col)
    for r in results:
        table.add_row("[green]ok[/green]" if r.ok else "[red]FAIL[/red]", r.what, r.detail)
    return table


# --- status ----------------------------------------------------------------------------------
def status_tables(data: dict[str, Any]) -> list[Table]:
    states = Table(title="cases by state")
    states.add_column("state")
    states.add_column("cases", justify="right")
    for state in CaseState:
        states.add_row(state.value, str(data["by_state"].get(state.value, 0)))
    states.caption = (f"due now {data['due_now']} · late {len(data['late'])} · sent late "
                      f"{data.get('sent_late', 0)}"
                      + (f" · ambiguous {len(data['ambiguous'])}" if data.get("ambiguous")
                         else "")
                      + (f" · gave up {len(data['gave_up'])} (run exits 1)"
                         if data.get("gave_up") else ""))
    tables = [states]
    if "run_lock" in data:
        cycle = Table(title="cycle", show_header=False)
        cycle.add_column("cycle")
        cycle.add_row(run_lock_text(data["run_lock"]))
        tables.insert(0, cycle)
    if data["failed"] or data["late"] or data.get("ambiguous"):
        problems = Table(title="needs attention")
        for col in ("case", "source", "what"):
            problems.add_column(col)
        for a in data.get("ambiguous", []):
            problems.add_row(str(a["case"]), a["source"],
                             f"ambiguous: {a['message_id']} handed to the mail server at "
                             f"{a['handed_over_at']}, answer unknown (counted as mailed). "
                             "Check the server's log; if it did not arrive, "
                             f"`career-relay resend --case {a['case']}`")
        for f in data["failed"]:
            problems.add_row(str(f["case"]), f["source"], f"failed: {f['reason']}")
        for item in data["late"]:
            problems.add_row(str(item["case"]), item["source"],
                             f"late: deadline {item['deadline']}")
        tables.append(problems)
    relay = data.get("relay") or {}
    if relay.get("blockers") or relay.get("agencies_not_offered") or relay.get(
            "sent_without_invitation"):
        tables.append(relay_table(relay))
    if data.get("handoffs", {}).get("handoffs") or data.get("handoffs", {}).get("dead"):
        tables.append(handoff_table(data["handoffs"]))
    for key, title in (("held_reasons", "why cases are held"),
                       ("no_invitation", "why emails go without the relay invitation")):
        if data.get(key):
            why = Table(title=title)
            why.add_column("reason")
            why.add_column("cases", justify="right")
            for reason, n in sorted(data[key].items(), key=lambda kv: -kv[1]):
                why.add_row(reason, str(n))
            tables.append(why)
    if data["skip_reasons"]:
        skips = Table(title="why cases were skipped")
        skips.add_column("reason")
        skips.add_column("cases", justify="right")
        for reason, n in sorted(data["skip_reasons"].items(), key=lambda kv: -kv[1]):
            skips.add_row(reason, str(n))
        tables.append(skips)
    return tables


def run_lock_text(lock: dict[str, Any]) -> str:
    """`run_lock_json` (commands/status.py) in a sentence."""
    if "host" not in lock:
        return "no cycle running"
    who = f"host {lock['host']} pid {lock['pid']}" + (
        f" since {_utc(lock['since'])}" if lock["since"] else "")
    if lock["running"]:
        return f"cycle running: held by {who}, lease until {_utc(lock['lease_until'])}"
    return (f"no cycle running: the lock left by {who} is stale ({lock['stale']}, lease until "
            f"{_utc(lock['lease_until'])}); the next run takes it over")


def _utc(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def relay_table(relay: dict[str, Any]) -> Table:
    """`relay_overview` (records/consent/requirements.py) as a table."""
    table = Table(title="relay invitation")
    table.add_column("what")
    table.add_column("detail")
    for problem in relay["blockers"]:
        table.add_row("[red]not sent[/red]", f"{problem}: emails go out without the "
                                             "invitation until this is fixed")
    for problem in relay["agencies_not_offered"]:
        table.add_row("agency not offered", problem)
    for reason, n in relay["sent_without_invitation"].items():
        table.add_row(f"{n} email(s)", reason)
    return table


def handoff_table(data: dict[str, Any]) -> Table:
    """`handoff_status` (records/handoff/deliver.py) as a table."""
    table = Table(title="agency handoffs")
    for col in ("state", "handoffs", "deletion notices"):
        table.add_column(col, justify="left" if col == "state" else "right")
    states = list(dict.fromkeys([*data["handoffs"], *data["deletion_notices"]]))
    for state in states:
        table.add_row(state, str(data["handoffs"].get(state, 0)),
                      str(data["deletion_notices"].get(state, 0)))
    for item in data["dead"]:
        what = (f"handoff {item['handoff']}" if "handoff" in item
                else f"deletion notice {item['deletion_notice']}")
        table.add_row("[red]dead[/red]", what, f"case {item['case']} → {item['agency']}: "
                      f"{item['error']}")
    for item in data.get("possibly_delivered", []):
        table.add_row("[yellow]possibly delivered[/yellow]", f"handoff {item['handoff']}",
                      f"case {item['case']} → {item['agency']}: {item['error']}; provision "
                      "recorded, a withdrawal asks the agency to delete it")
    return table


# --- report ----------------------------------------------------------------------------------
def report_tables(report: Report) -> Group:
    funnel = Table(title="funnel (cases)")
    funnel.add_column("group")
    for stage in STAGES:
        funnel.add_column(STAGE_LABELS[stage], justify="right")
    funnel.add_column("sent late", justify="right")     # after the deadline
    funnel.add_column("ambiguous", justify="right")     # handed over, answer unknown
    late, unsure = report.sent_late, report.ambiguous
    funnel.add_row("[bold]total[/bold]", *(str(report.total[s]) for s in STAGES),
                   str(late["total"]), str(unsure["total"]))
    for name, values in report.by_source.items():
        funnel.add_row(f"source {name}", *(str(values[s]) for s in STAGES),
                       str(late["by_source"].get(name, 0)),
                       str(unsure["by_source"].get(name, 0)))
    for month, values in report.by_month.items():
        funnel.add_row(f"month {month}", *(str(values[s]) for s in STAGES),
                       str(late["by_month"].get(month, 0)),
                       str(unsure["by_month"].get(month, 0)))
    agencies = Table(title=f"agencies (credit rule: {report.ledger_rule})")
    for col in ("agency", "consented", "handed off", "sent to form", "registered", "placed",
                "credits", "yen"):
        agencies.add_column(col, justify="left" if col == "agency" else "right")
    for agency_id, v in report.by_agency.items():
        agencies.add_row(agency_id, str(v["consented"]), str(v["handed_off"]),
                         str(v["sent_to_form"]), str(v["registered"]), str(v["placed"]),
                         str(v["credits"]), f"{v['yen']:,}")
    agencies.caption = "\n".join(legal_review_lines(report))
    parts: list[Any] = [funnel, agencies]
    if report.credits_by_month:
        monthly = Table(title="credits by agency and month")
        for col in ("agency", "month", "credits", "yen"):
            monthly.add_column(col, justify="left" if col in ("agency", "month") else "right")
        for row in report.credits_by_month:
            monthly.add_row(row["agency"], row["month"], str(row["credits"]),
                            f"{row['yen']:,}")
        parts.append(monthly)
    return Group(*parts)


# --- export-incident -------------------------------------------------------------------------
def incident_table(rows: list[retention.Disclosure], since: datetime, until: datetime) -> Table:
    table = Table(title=f"disclosures {since.isoformat()} – {until.isoformat()}")
    for col in ("at", "what", "case", "recipient", "address", "items"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.at, r.what, r.case, r.recipient, r.address, ", ".join(r.items))
    s = retention.incident_summary(rows)
    table.caption = (f"{s['disclosures']} disclosure(s), {s['candidates']} candidate(s), "
                     f"{len(s['recipients'])} agency recipient(s)")
    return table


# --- cases -----------------------------------------------------------------------------------
def cases_table(found: Any, tz: Any, *, names: bool) -> Table:
    """`career-relay cases` (store/console.py `search_cases`). Names and addresses only when
    `names` (a person at a terminal), never into a pipe or a log file."""
    def local(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    table = Table(title="cases (newest first)")
    for col in ("id", "source", "application", "state", "send at / sent", "reason"):
        table.add_column(col, justify="right" if col == "id" else "left")
    if names:
        table.add_column("candidate")
    for c in found.rows:
        row = [str(c.id), c.source, c.application_id, c.state + (" (late)" if c.late else ""),
               local(c.sent_at or c.send_at), c.reason]
        table.add_row(*row, *([f"{c.name} <{c.email or ''}>"] if names else []))
    shown = len(found.rows)
    table.caption = (f"{shown} of {found.total} case(s)" if found.total > shown
                     else f"{shown} case(s)")
    return table


# --- admin accounts --------------------------------------------------------------------------
def accounts_table(accounts: list[Any], now: datetime, tz: Any) -> Table:
    table = Table(title="console accounts")
    for col in ("name", "email", "sign-in", "last sign-in", "locked until"):
        table.add_column(col)
    for a in accounts:
        table.add_row(a.name, a.email or "",
                      "password" + (" or identity provider" if a.email else "")
                      if a.password_hash else "identity provider only",
                      a.last_sign_in_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                      if a.last_sign_in_at else "never",
                      a.locked_until.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                      if a.locked(now) else "")
    return table


# --- run --dry-run, backfill -----------------------------------------------------------------
def _when(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


PLANNED_ROWS_SHOWN = 200     # a first backfill can find 100,000: a terminal shows a sample


def _planned_table(title: str, planned: list[Any], tz: tzinfo) -> Table:
    """The planned cases, the first `PLANNED_ROWS_SHOWN` of them (rich sizes its columns over
    every row: 100,000 rows took a gigabyte and said nothing a person could read)."""
    table = Table(title=title)
    for col in ("source", "application", "case", "outcome", "send at", "late",
                "invitation", "language", "why"):
        table.add_column(col)
    if len(planned) > PLANNED_ROWS_SHOWN:
        outcomes = Counter(c.outcome for c in planned)
        table.caption = (f"the first {PLANNED_ROWS_SHOWN:,} of {len(planned):,} ("
                         + ", ".join(f"{n:,} {o}" for o, n in sorted(outcomes.items()))
                         + "); --json lists every one")
    for c in planned[:PLANNED_ROWS_SHOWN]:
        why = c.reason or c.invite_note
        table.add_row(c.source, c.application_id, str(c.case_id or ""), c.outcome,
                      _when(c.send_at, tz), "late" if c.late else "",
                      "" if c.outcome == "skip" else ("yes" if c.invite else "no"),
                      c.language, why)
    return table


def plan_tables(plan: Any, tz: tzinfo) -> list[Any]:
    """`run --dry-run`: per source what the poll found and what would happen to it."""
    summary = Table(title="career-relay run --dry-run (nothing sent, nothing recorded)")
    for col in ("source", "new", "known", "would schedule", "would hold", "would skip",
                "problems"):
        summary.add_column(col, justify="left" if col == "source" else "right")
    for name, s in plan.sources.items():
        summary.add_row(name, str(s.detected), str(s.already_known), str(s.scheduled),
                        str(s.held), str(s.skipped), str(len(s.problems)))
    late = sum(1 for c in plan.cases if c.outcome == "schedule" and c.late)
    summary.caption = (f"due now: {plan.due_now} would be sent ({plan.due_late} past the "
                       f"deadline) · newly planned past the deadline: {late}")
    tables: list[Any] = [summary]
    errors = [f"{name}: {s.error}" for name, s in plan.sources.items() if s.error]
    if errors:
        tables.append(Text("\n".join(f"  {e}" for e in errors)))
    if plan.cases:
        tables.append(_planned_table("new rejections", plan.cases, tz))
    return tables


def backfill_table(result: Any, tz: tzinfo) -> Table:
    """`backfill`: the rejections the backfill found, and what would happen to them."""
    table = _planned_table("career-relay backfill", result.cases, tz)
    late = sum(1 for c in result.would_send if c.late)
    summary = (f"would send {len(result.would_send)} email(s), {late} past the "
               "three-business-day deadline (counted as sent late)"
               + (f" · {result.purged} purged by retention" if result.purged else ""))
    table.caption = f"{table.caption}\n{summary}" if table.caption else summary
    return table
