"""The `career-relay` command. Every command takes --config and exits non-zero on failure:
0 done, 1 done with failures (see the output), 2 configuration or usage error,
75 another live run holds the lock (cron may simply try again next time; a lock whose holder
is gone is taken over, and one held for over an hour exits 1 instead), 128+N stopped by
signal N after the message in hand (143 SIGTERM, 130 SIGINT)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from relay_core import __version__
from relay_core.contract.times import read_time
from relay_core.errors import ConfigError, LockedError, RelayError, TemplateError
from relay_core.models import CASE_ID_MAX

EXIT_FAILURES, EXIT_CONFIG, EXIT_INTERNAL, EXIT_LOCKED = 1, 2, 70, 75
# When output goes to a file or a pipe (cron, `> f.html`), nothing is wrapped or cut to fit
# a terminal: tables get all the width they need, and no colour codes are written.
UNBOUNDED_WIDTH = 100_000


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=UNBOUNDED_WIDTH, no_color=True, highlight=False,
                   soft_wrap=True, emoji=False)


console = make_console()
err = make_console(stderr=True)
VERBOSE = False      # --verbose: log at INFO and let an unexpected error show its traceback


class SafeGroup(TyperGroup):
    """No traceback reaches the user: a configuration error exits 2 with its message, a file
    that cannot be read says so, and anything unexpected is reported in one line (exit 70;
    `--verbose` shows the traceback, which may quote candidate data)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, SystemExit):
            raise   # usage errors (typer prints them) and deliberate exits
        except ConfigError as exc:
            raise _fail(str(exc), EXIT_CONFIG) from None
        except LockedError as exc:
            raise _fail(str(exc), locked_exit(exc)) from None
        except (TemplateError, RelayError) as exc:
            raise _fail(str(exc), EXIT_FAILURES) from None
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise _fail(f"cannot use{where}: {exc.strerror or exc}", EXIT_CONFIG) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:
            if VERBOSE:
                raise
            raise _fail(f"internal error ({type(exc).__name__}) in `career-relay "
                        f"{ctx.invoked_subcommand or ''}`. Nothing was shown because a "
                        "traceback may hold candidate data; run again with --verbose to see "
                        "it, and report the bug", EXIT_INTERNAL) from None


app = typer.Typer(cls=SafeGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_show_locals=False,
                  help="Career Relay: courteous rejection emails with an opt-in relay to "
                       "partner recruitment agencies.")
secrets_app = typer.Typer(cls=SafeGroup, no_args_is_help=True,
                          help="Store secrets in the system keyring.")
app.add_typer(secrets_app, name="secrets")

ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="CAREER_RELAY_CONFIG", help="The configuration file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_CONFIG = Path("career-relay.toml")


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[LogFormat, typer.Option(
    "--log-format", help="text, or json: one JSON object per line (case ids, no names).")]


def locked_exit(exc: LockedError) -> int:
    """75 while another run is simply busy; 1 (a failure the timer's unit shows) when it has
    held the lock for over an hour or this run lost the lock."""
    return EXIT_FAILURES if exc.long_held else EXIT_LOCKED


def _fail(message: str, code: int) -> typer.Exit:
    # escape: a message may hold brackets ("add a [[sources]] table"), which are not markup
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def _print_json(data: Any) -> None:
    if console.is_terminal:
        console.print_json(json.dumps(data, ensure_ascii=False, default=str))
    else:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


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


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"career-relay {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                               help="Log more, and show tracebacks.")] = False,
         version: Annotated[bool, typer.Option("--version", callback=_show_version,
                                               is_eager=True,
                                               help="Print the version and exit.")] = False,
         ) -> None:
    global console, err, VERBOSE
    console, err, VERBOSE = make_console(), make_console(stderr=True), verbose
    from relay_core.commands.logs import configure_logging

    configure_logging(verbose=verbose)


@app.command()
def run(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
        now: Annotated[str | None, typer.Option(
            help="Act as if it were this moment (replays, the shipped example).")] = None,
        log_format: LogFormatOpt = LogFormat.text,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Poll and plan only: send nothing, record nothing (the cursor "
                              "does not move).")] = False) -> None:
    """One cycle: poll every source, schedule, send what is due. Safe to run from cron."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from relay_core.commands.logs import configure_logging
    from relay_core.commands.status import cycle_json
    from relay_core.commands.tables import cycle_table
    from relay_core.config import require_sources
    from relay_core.cycle import control
    from relay_core.cycle.run import run_cycle

    configure_logging(log_format.value, verbose=VERBOSE)
    moment = _parse_now(now)
    rt = _runtime(config)
    require_sources(rt.config)
    if dry_run:
        _dry_run(rt, moment, as_json)
        return
    # A line on a terminal that follows a long poll (pages, records) and the sending; never
    # in a log file or a pipe.
    show_progress = err.is_terminal and not as_json
    sent = 0
    control.stopping.clear()
    try:
        with control.stop_on_signals() as signals, Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=err, disable=not show_progress, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def polled(source: str, pages: int, records: int) -> None:
                bar.update(task, description=f"polling {source}: {pages} page(s), "
                                             f"{records} record(s)")

            def sending(n: int) -> None:
                nonlocal sent
                sent += n
                bar.update(task, description=f"sending: {sent} sent")

            report = run_cycle(rt.config, rt.store, rt.connectors, transport=rt.transport(),
                               now=moment, progress=sending, poll_progress=polled)
    except LockedError as exc:
        raise _fail(str(exc), locked_exit(exc)) from None
    except (ConfigError, TemplateError) as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    if signals:
        name = signal.Signals(signals[0]).name
        logging.getLogger("career_relay.run").warning(
            "stopped by %s after the message in hand: sent %d; the lock is released and the "
            "rest waits for the next run", name, report.sent,
            extra={"event": "stopped", "signal": name, "sent": report.sent})
        raise typer.Exit(128 + signals[0])
    summary = report.summary()
    logging.getLogger("career_relay.run").info(
        "cycle %s: sent %d, failed %d, cancelled %d", "ok" if report.ok else "with problems",
        report.sent, report.failed, report.cancelled,
        extra={"event": "cycle", "ok": report.ok,
               **{k: summary[k] for k in ("detected", "scheduled", "skipped", "sent", "failed",
                                          "cancelled", "retry_later", "late", "errors")}})
    if as_json:
        _print_json(cycle_json(report))
    else:
        console.print(cycle_table(report))
    # A case that gave up after temporary failures keeps every run failing until someone
    # resends or cancels it (`career-relay status` lists them).
    if not report.ok or report.failed or report.stuck:
        raise typer.Exit(EXIT_FAILURES)


def _dry_run(rt: Any, moment: datetime | None, as_json: bool) -> None:
    from relay_core.commands.status import plan_json
    from relay_core.commands.tables import plan_tables
    from relay_core.cycle.plan import plan_cycle
    from relay_core.store import utcnow

    plan = plan_cycle(rt.config, rt.store, rt.connectors, now=moment or utcnow())
    if as_json:
        _print_json(plan_json(plan))
    else:
        for table in plan_tables(plan, rt.config.company.tz):
            console.print(table)
    if not plan.ok:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def backfill(config: ConfigOpt = DEFAULT_CONFIG,
             since: Annotated[str, typer.Option(
                 help="Opt in rejections made on or after this day (YYYY-MM-DD, the company's "
                      "timezone) that were skipped as made before the first poll.")] = "",
             source: Annotated[list[str] | None, typer.Option(
                 help="Only this source (repeatable).")] = None,
             dry_run: Annotated[bool, typer.Option(
                 "--dry-run", help="Show what would be sent; change nothing.")] = False,
             yes: Annotated[bool, typer.Option(
                 "--yes", "-y", help="Opt them in without asking.")] = False,
             as_json: JsonOpt = False,
             now: Annotated[str | None, typer.Option(
                 help="Plan as if it were this moment.")] = None) -> None:
    """Opt in rejections made before the installation's first poll, after showing them."""
    from datetime import date, time

    from relay_core.commands.status import backfill_json
    from relay_core.commands.tables import backfill_table
    from relay_core.cycle.plan import backfill as run_backfill
    from relay_core.store import utcnow

    try:
        day = date.fromisoformat(since)
    except ValueError:
        raise _fail(f"--since {since!r} is not a day such as 2025-06-01", EXIT_CONFIG) from None
    rt = _runtime(config)
    start = datetime.combine(day, time(0, 0), rt.config.company.tz)
    moment = _parse_now(now) or utcnow()
    shown = run_backfill(rt.store, rt.config, start, moment, apply=False, actor="cli:backfill",
                         sources=source)
    if as_json and (dry_run or not shown.would_send):
        _print_json(backfill_json(shown, applied=False))
        return
    if not as_json:
        console.print(backfill_table(shown, rt.config.company.tz))
    if dry_run or not shown.would_send:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise _fail(f"{len(shown.would_send)} email(s) would be sent; add --yes to opt "
                        "them in (or --dry-run to only look)", EXIT_CONFIG)
        if not typer.confirm(f"Send these {len(shown.would_send)} email(s)?", default=False):
            raise typer.Exit(EXIT_FAILURES)
    done = run_backfill(rt.store, rt.config, start, moment, apply=True, actor="cli:backfill",
                        sources=source)
    if as_json:
        _print_json(backfill_json(done, applied=True))
    else:
        console.print(f"opted in {done.opted_in} case(s); `career-relay run` sends them",
                      highlight=False)


@app.command()
def check(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
          offline: Annotated[bool, typer.Option(
              help="Skip the checks that contact the ATS or the mail server.")] = False) -> None:
    """Configuration, templates, credentials and connectivity, as one table."""
    from relay_core.commands.checks import run_checks
    from relay_core.commands.tables import check_table

    results = run_checks(config, offline=offline)
    if as_json:
        _print_json([r.__dict__ for r in results])
    else:
        console.print(check_table(results))
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
           now: Annotated[str | None, typer.Option(help="Evaluate 'due' and 'late' at this "
                                                   "moment.")] = None) -> None:
    """Cases by state, due, late and failed; whether the relay invitation can go out."""
    from relay_core.commands.status import status_data
    from relay_core.commands.tables import status_tables
    from relay_core.records.consent.requirements import relay_overview

    rt = _runtime(config)
    data = status_data(rt.store, _parse_now(now))
    data["relay"] = relay_overview(rt.config, rt.store)
    if as_json:
        _print_json(data)
    else:
        for table in status_tables(data):
            console.print(table)


class Kind(StrEnum):
    rejection = "rejection"
    invite_only = "invite_only"
    confirmation = "confirmation"


class Lang(StrEnum):
    ja = "ja"
    en = "en"


class MailLang(StrEnum):
    ja = "ja"
    en = "en"
    bilingual = "bilingual"


@app.command()
def preview(config: ConfigOpt = DEFAULT_CONFIG,
            case: Annotated[int | None, typer.Option(help="A case id from `career-relay "
                                                     "cases`.")] = None,
            lang: Annotated[MailLang | None, typer.Option(
                help="ja, en or bilingual (Japanese first, then English)")] = None,
            kind: Annotated[Kind, typer.Option(help="rejection, invite_only or "
                                               "confirmation")] = Kind.rejection,
            html: Annotated[bool, typer.Option("--html", help="Print the HTML part only, "
                                               "exactly (redirect it to a file).")] = False,
            ) -> None:
    """Render an email for sample data or a real case, without sending or recording anything."""
    from relay_core.commands.preview import render_preview

    try:
        rendered = render_preview(config, case_id=case, language=lang.value if lang else None,
                                  kind=kind.value)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    except (TemplateError, RelayError) as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    if html:   # the document itself: no subject line, no wrapping, nothing added
        sys.stdout.write(rendered.html if rendered.html.endswith("\n")
                         else rendered.html + "\n")
        return
    sys.stdout.write(f"Subject: {rendered.subject}\n\n{rendered.text}")


# A larger id than the database holds (models.CASE_ID_MAX) is a usage error, not a traceback.
CaseIds = Annotated[list[int] | None, typer.Option("--case", min=1, max=CASE_ID_MAX,
                                                   help="A case id (repeatable).")]


def _report_changes(verb: str, wanted: list[int], changed: list[int], store: Any,
                    expected: str) -> None:
    """Say exactly which ids changed, which were in another state, and which do not exist;
    exit 1 when any did not change."""
    from relay_core.store.console import existing_case_ids

    with store.engine.connect() as conn:
        states = existing_case_ids(conn, sorted(set(wanted)))
    missing = sorted(set(wanted) - set(states))
    other = sorted(i for i in states if i not in set(changed))
    console.print(f"{verb} {len(changed)} case(s)" + (
        f": {', '.join(map(str, changed))}" if changed else ""), highlight=False)
    if other:
        err.print(f"not {expected}, left alone: " + ", ".join(f"{i} ({states[i]})"
                                                             for i in other), highlight=False)
    if missing:
        err.print("no such case: " + ", ".join(map(str, missing)) + " (see `career-relay "
                  "cases`)", highlight=False)
    if other or missing:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def approve(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
            all_held: Annotated[bool, typer.Option("--all", help="Every held case.")] = False,
            ) -> None:
    """Release held cases (schedule.hold_for_approval) to be sent at their time."""
    from relay_core.cycle.approval import approve as approve_cases

    if not case and not all_held:
        raise _fail("name cases with --case ID (see `career-relay cases --state held`), or "
                    "pass --all", EXIT_CONFIG)
    rt = _runtime(config)
    approved = approve_cases(rt.store, None if all_held else case, actor="cli:approve")
    if all_held:
        console.print(f"approved {len(approved)} case(s)" + (
            f": {', '.join(map(str, approved))}" if approved else ""), highlight=False)
        return
    _report_changes("approved", case, approved, rt.store, "held")


@app.command()
def cancel(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
           reason: Annotated[str, typer.Option(help="Recorded in the audit log.")] =
           "cancelled by HR") -> None:
    """Stop the email of held or scheduled cases, or give up on failed ones."""
    from relay_core.cycle.approval import cancel as cancel_cases

    if not case:
        raise _fail("name cases with --case ID (see `career-relay cases`)", EXIT_CONFIG)
    rt = _runtime(config)
    cancelled = cancel_cases(rt.store, case, actor="cli:cancel", reason=reason)
    _report_changes("cancelled", case, cancelled, rt.store, "held, scheduled or failed")


@app.command()
def resend(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
           note: Annotated[str, typer.Option(help="Recorded in the audit log, e.g. what the "
                                             "server's log showed.")] = "",
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Re-queue without asking.")]
           = False) -> None:
    """Send an ambiguous or failed email again (the same bytes and Message-ID), once the mail
    server's log shows it did not arrive. The next `run` sends it."""
    from relay_core.cycle.recovery import resend_cases
    from relay_core.store import utcnow
    from relay_core.store.console import existing_case_ids

    if not case:
        raise _fail("name cases with --case ID (see `career-relay status` or `career-relay "
                    "cases --state ambiguous`)", EXIT_CONFIG)
    rt = _runtime(config)
    with rt.store.engine.connect() as conn:
        states = existing_case_ids(conn, sorted(set(case)))
    shown = ", ".join(f"{i} ({states.get(i, 'no such case')})" for i in dict.fromkeys(case))
    if not yes:
        if not sys.stdin.isatty():
            raise _fail(f"would re-queue the email of case(s) {shown}; add --yes once the "
                        "mail server's log shows it did not arrive", EXIT_CONFIG)
        if not typer.confirm(f"Re-queue the email of case(s) {shown}? If the server did "
                             "deliver it, the candidate gets it twice.", default=False):
            raise typer.Exit(EXIT_FAILURES)
    result = resend_cases(rt.store, case, actor="cli:resend", now=utcnow(), note=note)
    console.print(f"re-queued {len(result.resent)} case(s)" + (
        f": {', '.join(map(str, result.resent))}; `career-relay run` sends them"
        if result.resent else ""), highlight=False)
    for case_id, why in result.refused.items():
        err.print(f"case {case_id} left alone: {why}", highlight=False, markup=False)
    if result.refused:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def hold(config: ConfigOpt = DEFAULT_CONFIG, case: CaseIds = None,
         reason: Annotated[str, typer.Option(help="Recorded in the audit log.")] =
         "held for review") -> None:
    """Hold scheduled cases until someone approves them (`career-relay approve`)."""
    from relay_core.cycle.approval import hold as hold_cases

    if not case:
        raise _fail("name cases with --case ID (see `career-relay cases --state scheduled`)",
                    EXIT_CONFIG)
    rt = _runtime(config)
    held = hold_cases(rt.store, case, actor="cli:hold", reason=reason)
    _report_changes("held", case, held, rt.store, "scheduled")


class State(StrEnum):
    detected = "detected"
    skipped = "skipped"
    scheduled = "scheduled"
    held = "held"
    sending = "sending"
    sent = "sent"
    cancelled = "cancelled"
    failed = "failed"
    ambiguous = "ambiguous"


@app.command()
def cases(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False,
          state: Annotated[State | None, typer.Option(help="Only cases in this state.")] = None,
          source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
          limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, "
                                             "newest first.")] = 50) -> None:
    """List cases with their ids, send time and state (names only on a terminal)."""
    from relay_core.commands.tables import cases_table
    from relay_core.store.console import search_cases

    rt = _runtime(config)
    with rt.store.engine.connect() as conn:
        found = search_cases(conn, state=state.value if state else "", source=source or "",
                             limit=limit)
    if as_json:
        _print_json({"total": found.total, "cases": [
            {"id": c.id, "source": c.source, "application_id": c.application_id,
             "state": c.state, "send_at": c.send_at, "sent_at": c.sent_at,
             "rejected_at": c.rejected_at, "late": c.late, "reason": c.reason}
            for c in found.rows]})
        return
    # Names are for the person at the terminal; a pipe or a log file gets ids only.
    console.print(cases_table(found, rt.config.company.tz, names=console.is_terminal))


@app.command()
def serve(config: ConfigOpt = DEFAULT_CONFIG, log_format: LogFormatOpt = LogFormat.text,
          workers: Annotated[int, typer.Option(
              min=1, max=32, help="Processes answering requests (the first also runs the "
              "cycle); about one per CPU core")] = 1) -> None:
    """Webhooks, consent pages, the HR console (/admin/) and the cycle every few minutes."""
    from relay_core.commands.logs import configure_logging
    from relay_core.config import require_sources
    from relay_core.web.service import serve_forever

    configure_logging(log_format.value, verbose=VERBOSE,
                      level=logging.INFO)
    rt = _runtime(config)
    require_sources(rt.config)
    try:
        serve_forever(rt, workers)
    except ConfigError as exc:      # the port is taken, or cannot be used
        raise _fail(str(exc), EXIT_CONFIG) from None


class SourceType(StrEnum):
    hrmos_export = "hrmos_export"
    greenhouse = "greenhouse"
    lever = "lever"
    herp = "herp"
    talentio = "talentio"


class Channel(StrEnum):
    redirect = "redirect"
    email = "email"
    webhook = "webhook"


def _opt(help_text: str) -> Any:
    return typer.Option(help=help_text)


@app.command()
def init(config: ConfigOpt = DEFAULT_CONFIG,
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
         example: Annotated[bool, typer.Option(
             "--example", help="Write the complete, commented example configuration (and the "
                               "sample export it reads) instead of asking.")] = False,
         yes: Annotated[bool, typer.Option(
             "--yes", "-y", help="Ask nothing: take the flags, defaults for the rest.")] = False,
         company: Annotated[str | None, _opt("Company name shown in emails.")] = None,
         legal_name: Annotated[str | None, _opt("The company's legal name (APPI).")] = None,
         address: Annotated[str | None, _opt("The company's address (APPI).")] = None,
         representative: Annotated[str | None, _opt("Its representative (APPI).")] = None,
         sender: Annotated[str | None, _opt("From: \"名前 <address>\".")] = None,
         reply_to: Annotated[str | None, _opt("Reply-To address.")] = None,
         timezone: Annotated[str | None, _opt("IANA timezone, e.g. Asia/Tokyo.")] = None,
         locale: Annotated[Lang | None, _opt("Default email language.")] = None,
         privacy_url: Annotated[str | None, _opt("Privacy policy URL (the relay needs it).")]
         = None,
         public_url: Annotated[str | None, _opt("Public https address of `serve`.")] = None,
         source_type: Annotated[SourceType | None, _opt("The ATS.")] = None,
         source_name: Annotated[str | None, _opt("A short name for it (in URLs).")] = None,
         export_path: Annotated[str | None, _opt("hrmos_export: the export file or "
                                                 "folder.")] = None,
         greenhouse_user_id: Annotated[int | None, _opt("greenhouse: a Site Admin's user "
                                                        "id.")] = None,
         agency_id: Annotated[str | None, _opt("One partner agency: its id (leave out for "
                                               "none).")] = None,
         agency_legal_name: Annotated[str | None, _opt("The agency's legal name.")] = None,
         agency_address: Annotated[str | None, _opt("The agency's address.")] = None,
         agency_representative: Annotated[str | None, _opt("Its representative.")] = None,
         agency_country: Annotated[str | None, _opt("Its country (ISO code, e.g. JP).")] = None,
         agency_licence: Annotated[str | None, _opt("Its 有料職業紹介 licence number (JP).")]
         = None,
         agency_deletion_contact: Annotated[str | None, _opt("Where deletion requests "
                                                             "go.")] = None,
         agency_channel: Annotated[Channel | None, _opt("How it receives candidates.")] = None,
         agency_retention: Annotated[str | None, _opt("How long the agency keeps what it "
                                                      "receives (webhook, email).")] = None,
         agency_target: Annotated[str | None, _opt("webhook URL, intake email address or "
                                                   "registration form URL.")] = None,
         relay: Annotated[bool | None, typer.Option(
             "--relay/--no-relay", help="Switch the relay invitation on (needs the legal "
                                        "details and an agency) or off.")] = None,
         ) -> None:
    """Write a configuration file: by questions, by flags (--yes), or the example."""
    from relay_core.commands import init as setup

    if config.exists() and not force:
        raise _fail(f"{config} exists; pass --force to overwrite it", EXIT_CONFIG)
    if example:
        written = setup.write_example(config)
        console.print(f"Wrote {', '.join(map(str, written))}. Try it: `career-relay run "
                      f"--config {config}`.", highlight=False)
        return
    answers = setup.Answers(
        company=company, legal_name=legal_name, address=address, representative=representative,
        sender=sender, reply_to=reply_to, timezone=timezone,
        locale=locale.value if locale else None, privacy_url=privacy_url,
        public_url=public_url, source_type=source_type.value if source_type else None,
        source_name=source_name, export_path=export_path,
        greenhouse_user_id=greenhouse_user_id, agency_id=agency_id,
        agency_legal_name=agency_legal_name, agency_address=agency_address,
        agency_representative=agency_representative, agency_country=agency_country,
        agency_licence=agency_licence, agency_deletion_contact=agency_deletion_contact,
        agency_channel=agency_channel.value if agency_channel else None,
        agency_target=agency_target, agency_retention=agency_retention, relay=relay)
    result = setup.write_config(config, answers, interactive=not yes)
    console.print(f"Wrote {config}.", highlight=False)
    for line in result.notes:
        console.print(f"  {line}", highlight=False)
    console.print(f"Next: `career-relay check --config {config}`.", highlight=False)


# --- the HR console's accounts (commands/admin.py; the console is web/admin/) ---------------
admin_app = typer.Typer(cls=SafeGroup, no_args_is_help=True,
                        help="Accounts of the HR console at /admin/ in `serve`.")
app.add_typer(admin_app, name="admin")


@admin_app.command("add")
def admin_add(name: Annotated[str, typer.Argument(help="Sign-in name, e.g. hanako.")],
              config: ConfigOpt = DEFAULT_CONFIG,
              email: Annotated[str | None, typer.Option(
                  help="Lets the identity provider (admin.oidc) sign this account in.")] = None,
              no_password: Annotated[bool, typer.Option(
                  "--no-password", help="Sign in only through the identity provider.")] = False,
              ) -> None:
    """Create a console account; asks for its password (twice, hidden)."""
    from relay_core.commands import admin

    admin.check_new_account(name, email, no_password)
    rt = _runtime(config)
    if no_password and not rt.config.admin.oidc.enabled:
        err.print("note: admin.oidc is not configured; this account cannot sign in until it "
                  "is", highlight=False)
    admin.add_account(rt, name, email, None if no_password else admin.ask_password())
    console.print(f"Account {name} created. Sign in at {rt.config.relay.public_base_url}"
                  "/admin/", highlight=False)


@admin_app.command("list")
def admin_list(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """List the console accounts."""
    from relay_core.commands.tables import accounts_table
    from relay_core.store import utcnow
    from relay_core.store.admin import list_accounts

    rt = _runtime(config)
    console.print(accounts_table(list_accounts(rt.store), utcnow(), rt.config.company.tz))


@admin_app.command("password")
def admin_password(name: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Set a new password; the account's sessions are signed out."""
    from relay_core.commands import admin

    rt = _runtime(config)
    try:
        admin.require_account(rt, name)
        admin.set_password(rt, name, admin.ask_password())
    except LookupError as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    console.print(f"Password of {name} changed.", highlight=False)


@admin_app.command("unlock")
def admin_unlock(name: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """End a lockout after repeated failed sign-ins."""
    from relay_core.commands import admin

    rt = _runtime(config)
    try:
        admin.unlock(rt, name)
    except LookupError as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    console.print(f"{name} can sign in again.", highlight=False)


@admin_app.command("remove")
def admin_remove(name: str, config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Delete a console account and sign it out everywhere."""
    from relay_core.commands import admin

    rt = _runtime(config)
    try:
        admin.remove(rt, name)
    except LookupError as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    console.print(f"Account {name} removed.", highlight=False)


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
agency_events_app = typer.Typer(cls=SafeGroup, no_args_is_help=True,
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
        file: Annotated[Path, typer.Argument(help="CSV: reference,type,occurred_at[,event_id]",
                                             exists=True, dir_okay=False, readable=True)],
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
        _print_json(result.__dict__)
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
    from relay_core.records import report as reporting

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
          = None,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Count what would be deleted; delete nothing.")] = False,
          ) -> None:
    """Delete candidate data past retention (provision records stay 3 years)."""
    from relay_core.records.retention import purge as run_purge

    rt = _runtime(config)
    result = run_purge(rt.store, rt.config, now=_parse_now(now), dry_run=dry_run)
    if as_json:
        _print_json(result.__dict__)
    else:
        console.print(", ".join(f"{k.replace('_', ' ')} {v}"
                                for k, v in result.__dict__.items()))


@app.command()
def evidence(
        case: Annotated[int, typer.Option("--case", help="The case (see `career-relay "
                                                         "cases`).")],
        config: ConfigOpt = DEFAULT_CONFIG,
        fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or html.")] = "text",
        output: OutputOpt = None) -> None:
    """Who agreed to which exact text, when, for which agencies, from which link, and every
    later transfer and withdrawal; the hashes are verified (exit 1 if they do not match)."""
    from relay_core.records import evidence as proof

    if fmt not in ("text", "json", "html"):
        raise _fail("--format must be text, json or html", EXIT_CONFIG)
    rt = _runtime(config)
    try:
        found = proof.build_evidence(rt.store, rt.config, case)
    except RelayError as exc:
        raise _fail(str(exc), EXIT_FAILURES) from None
    render = {"text": proof.evidence_text, "json": proof.evidence_json,
              "html": lambda e: proof.evidence_html(e, rt.config)}[fmt]
    _emit(render(found), output)
    if not found.verified:
        err.print("evidence NOT verified: see the checks at the top", highlight=False)
        raise typer.Exit(EXIT_FAILURES)


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
