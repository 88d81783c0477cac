"""The `career-relay` command. Every command takes --config and exits non-zero on failure:
0 done, 1 done with failures (see the output), 2 configuration or usage error,
75 another run holds the lock (cron may simply try again next time)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from relay_core import __version__
from relay_core.contract.times import read_time
from relay_core.errors import ConfigError, LockedError, RelayError, TemplateError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Career Relay: courteous rejection emails with an opt-in relay to "
                       "partner recruitment agencies.")
secrets_app = typer.Typer(no_args_is_help=True, help="Store secrets in the system keyring.")
app.add_typer(secrets_app, name="secrets")
console = Console()
err = Console(stderr=True)

EXIT_FAILURES, EXIT_CONFIG, EXIT_LOCKED = 1, 2, 75
ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="CAREER_RELAY_CONFIG", help="The configuration file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_CONFIG = Path("career-relay.toml")


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _runtime(config: Path):
    from relay_core.runtime import load_runtime

    try:
        return load_runtime(config)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = read_time(value, None)
    except ValueError:
        raise _fail(f"--now {value!r} is not an ISO date-time such as 2025-06-23T11:00:00+09:00",
                    EXIT_CONFIG) from None
    if moment.tzinfo is None:
        raise _fail("--now needs a UTC offset, e.g. 2025-06-23T11:00:00+09:00", EXIT_CONFIG)
    return moment


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
         version: Annotated[bool, typer.Option("--version")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if version:
        console.print(f"career-relay {__version__}")
        raise typer.Exit()


@app.command()
def run(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
        now: Annotated[str | None, typer.Option(
            help="Act as if it were this moment (replays, the shipped example).")] = None) -> None:
    """One cycle: poll every source, schedule, send what is due. Safe to run from cron."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from relay_core.commands.status import cycle_json
    from relay_core.commands.tables import cycle_table
    from relay_core.cycle.run import run_cycle

    moment = _parse_now(now)
    rt = _runtime(config)
    show_progress = console.is_terminal and not as_json
    try:
        with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                      console=err, disable=not show_progress, transient=True) as bar:
            task = bar.add_task("send", total=None)
            report = run_cycle(rt.config, rt.store, rt.connectors, transport=rt.transport(),
                               now=moment, progress=lambda n: bar.advance(task, n))
    except LockedError as exc:
        raise _fail(str(exc), EXIT_LOCKED) from None
    except (ConfigError, TemplateError) as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    if as_json:
        console.print_json(json.dumps(cycle_json(report)))
    else:
        console.print(cycle_table(report))
    if not report.ok or report.failed:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def check(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
          offline: Annotated[bool, typer.Option(
              help="Skip the checks that contact the ATS or the mail server.")] = False) -> None:
    """Configuration, templates, credentials and connectivity, as one table."""
    from relay_core.commands.checks import run_checks
    from relay_core.commands.tables import check_table

    results = run_checks(config, offline=offline)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in results]))
    else:
        console.print(check_table(results))
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
           now: Annotated[str | None, typer.Option(help="Evaluate 'due' and 'late' at this "
                                                   "moment.")] = None) -> None:
    """Cases by state, due, late and failed."""
    from relay_core.commands.status import status_data
    from relay_core.commands.tables import status_tables

    rt = _runtime(config)
    data = status_data(rt.store, _parse_now(now))
    if as_json:
        console.print_json(json.dumps(data))
    else:
        for table in status_tables(data):
            console.print(table)


@app.command()
def preview(config: ConfigOpt = DEFAULT_CONFIG,
            case: Annotated[int | None, typer.Option(help="A case id from `status`.")] = None,
            lang: Annotated[str | None, typer.Option(help="ja or en")] = None,
            kind: Annotated[str, typer.Option(help="rejection, invite_only or "
                                              "confirmation")] = "rejection",
            html: Annotated[bool, typer.Option("--html", help="Print the HTML part.")] = False,
            ) -> None:
    """Render an email for sample data or a real case, without sending or recording anything."""
    from relay_core.commands.preview import render_preview

    try:
        rendered = render_preview(config, case_id=case, language=lang, kind=kind)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    except TemplateError as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    console.print(f"[bold]Subject:[/bold] {rendered.subject}", highlight=False)
    console.print(rendered.html if html else rendered.text, highlight=False, markup=False)


CaseIds = Annotated[list[int] | None, typer.Option("--case", help="A case id (repeatable).")]


@app.command()
def approve(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
            all_held: Annotated[bool, typer.Option("--all", help="Every held case.")] = False,
            ) -> None:
    """Release held cases (schedule.hold_for_approval) to be sent at their time."""
    from relay_core.cycle.approval import approve as approve_cases

    if not case and not all_held:
        raise _fail("name cases with --case ID, or pass --all", EXIT_CONFIG)
    rt = _runtime(config)
    approved = approve_cases(rt.store, None if all_held else case, actor="cli:approve")
    console.print(f"approved {len(approved)} case(s)" + (
        f": {', '.join(map(str, approved))}" if approved else ""))
    if case and len(approved) < len(set(case)):
        err.print("some cases were not held (see `career-relay status`)")
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def cancel(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
           reason: Annotated[str, typer.Option(help="Recorded in the audit log.")] =
           "cancelled by HR") -> None:
    """Stop the email of held or scheduled cases."""
    from relay_core.cycle.approval import cancel as cancel_cases

    if not case:
        raise _fail("name cases with --case ID", EXIT_CONFIG)
    rt = _runtime(config)
    cancelled = cancel_cases(rt.store, case, actor="cli:cancel", reason=reason)
    console.print(f"cancelled {len(cancelled)} case(s)")
    if len(cancelled) < len(set(case)):
        err.print("some cases were already sent, cancelled or skipped (see `career-relay "
                  "status`)")
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def serve(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Webhooks, the consent page and the same cycle as `run` every few minutes."""
    from relay_core.web.service import serve_forever

    rt = _runtime(config)
    serve_forever(rt)


@app.command()
def init(config: ConfigOpt = DEFAULT_CONFIG,
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a configuration file by answering a few questions."""
    from relay_core.commands.init import write_config

    if config.exists() and not force:
        raise _fail(f"{config} exists; pass --force to overwrite it", EXIT_CONFIG)
    write_config(config)
    console.print(f"Wrote {config}. Next: `career-relay check --config {config}`.")


@secrets_app.command("set")
def secrets_set(name: Annotated[str, typer.Argument(help="e.g. smtp, greenhouse")],
                service: Annotated[str, typer.Option(help="Keyring service")] = "career-relay",
                ) -> None:
    """Prompt for a secret (not echoed) and store it in the system keyring."""
    from relay_core.secrets import keyring_set

    value = typer.prompt(f"Value for {service}/{name}", hide_input=True,
                         confirmation_prompt=True)
    try:
        keyring_set(service, name, value)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    console.print(f"Stored. Write \"keyring:{service}/{name}\" in the configuration file.")


# --- handoff, ledger, report, retention (relay_core/handoff, ledger, reporting, retention) ----
agency_events_app = typer.Typer(no_args_is_help=True,
                                help="Registrations and placements reported by agencies.")
app.add_typer(agency_events_app, name="agency-events")
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv, json or html.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")]


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


@agency_events_app.command("import")
def agency_events_import(
        file: Annotated[Path, typer.Argument(help="CSV: reference,type,occurred_at[,event_id]")],
        config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
        agency: Annotated[str | None, typer.Option(help="Only accept this agency's "
                                                   "references.")] = None) -> None:
    """Import an agency's CSV of registrations and placements (idempotent)."""
    from relay_core.records.ledger import import_csv

    rt = _runtime(config)
    try:
        result = import_csv(rt.store, rt.config, file, agency_id=agency)
    except RelayError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    if as_json:
        console.print_json(json.dumps(result.__dict__))
    else:
        console.print(f"stored {result.stored} · already known {result.duplicates} · "
                      f"credits {result.credits:+d} · refused {len(result.errors)}")
        for line in result.errors:
            err.print(f"  {line}", highlight=False, markup=False)
    if result.errors:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def report(config: ConfigOpt = DEFAULT_CONFIG, fmt: FormatOpt = "table",
           output: OutputOpt = None) -> None:
    """The funnel and credits by agency, source and month (table, CSV, JSON or HTML)."""
    from relay_core.commands import report as reporting

    rt = _runtime(config)
    data = reporting.build_report(rt.store, rt.config)
    if fmt == "table":
        from relay_core.commands.tables import report_tables

        console.print(report_tables(data))
        return
    render = {"csv": reporting.to_csv, "json": reporting.to_json,
              "html": lambda r: reporting.to_html(r, rt.config.company.name,
                                                      rt.config)}.get(fmt)
    if render is None:
        raise _fail("--format must be table, csv, json or html", EXIT_CONFIG)
    _emit(render(data), output)


@app.command()
def purge(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
          now: Annotated[str | None, typer.Option(help="Act as if it were this moment.")]
          = None) -> None:
    """Delete candidate data past retention (provision records stay 3 years)."""
    from relay_core.records.retention import purge as run_purge

    rt = _runtime(config)
    result = run_purge(rt.store, rt.config, now=_parse_now(now))
    if as_json:
        console.print_json(json.dumps(result.__dict__))
    else:
        console.print(", ".join(f"{k.replace('_', ' ')} {v}"
                                for k, v in result.__dict__.items()))


@app.command("export-incident")
def export_incident(
        since: Annotated[str, typer.Option(help="Start: a date or an ISO date-time.")],
        until: Annotated[str, typer.Option(help="End (exclusive): a date or date-time.")],
        config: ConfigOpt = DEFAULT_CONFIG, fmt: FormatOpt = "table",
        output: OutputOpt = None) -> None:
    """Who received which data items in a time window (for APPI/GDPR incident reports)."""
    from relay_core.records import retention
    from relay_core.records.ledger import parse_moment

    rt = _runtime(config)
    try:   # a bare date is midnight in the company's timezone
        start, end = parse_moment(since, rt.config), parse_moment(until, rt.config)
    except ValueError as exc:
        raise _fail(f"--since/--until: {exc}", EXIT_CONFIG) from None
    rows = retention.export_incident(rt.store, rt.config, start, end)
    if fmt == "table":
        from relay_core.commands.tables import incident_table

        console.print(incident_table(rows, start, end))
    elif fmt in ("csv", "json"):
        _emit(retention.incident_csv(rows) if fmt == "csv"
              else retention.incident_json(rows, start, end) + "\n", output)
    else:
        raise _fail("--format must be table, csv or json", EXIT_CONFIG)


@app.command("record-incident")
def record_incident(
        case: Annotated[int, typer.Option("--case", help="The case concerned.")],
        note: Annotated[str, typer.Option(help="What happened, without personal data "
                                          "(e.g. \"misdirected: sent to a former address\").")],
        config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Log an incident (a misdirected email, say) so export-incident reports it."""
    from relay_core.records.retention import record_incident as record

    rt = _runtime(config)
    if not record(rt.store, case, note, actor="cli:record-incident"):
        raise _fail(f"no case {case}; pick an id from `career-relay status`", EXIT_FAILURES)
    console.print(f"incident recorded for case {case}")


if __name__ == "__main__":
    app()
