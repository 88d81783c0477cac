"""One comparison harness for issue 14: each figure beside the anchor measured in the same run,
and the issue's target (not a looser one).

- Greenhouse requests per poll, R new rejections with private candidates; anchor: a naive
  per-rejection client against the same stand-in. The poll right after, nothing new (≤ 3).
- Lever requests per poll plus re-check; anchor: a naive per-rejection client.
- Webhook acks at 100/s and 500/s, SQLite and PostgreSQL (p99), and consent pages at 100 and
  300 requests/s on SQLite (p99); anchor: `/healthz` p99 at the same rate, the server's floor.
- Emails per second end to end to loopback SMTP on SQLite, and peak memory; anchor: a plain
  render + `EmailMessage` + smtplib loop with 4 connections against the same server.

Latency is measured open loop at a fixed rate from this process, against `serve` running as a
child process (bench/loadgen.py); the request counts come from loopback stand-ins that enforce
the documented rate limits (bench/connectors.py); sending runs `career-relay run` as a child
process against an aiosmtpd server in another (bench/sending.py).

    .venv/bin/python bench/compare.py                      # everything (15 min; --runs 3: 22)
    .venv/bin/python bench/compare.py --only web --quick   # a part, smaller and shorter
    .venv/bin/python bench/compare.py --only web --runs 3  # latency: the median of 3 runs
    .venv/bin/python bench/compare.py --write-readme       # and put the table in README.md

`--write-readme` replaces the block between the `compare:begin` and `compare:end` markers of
the README's benchmark section with the table printed here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = ROOT / "README.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def bench(name: str):
    """A sibling bench module (bench/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


@dataclass
class Row:
    figure: str
    measured: float
    unit: str
    anchor: float | None
    anchor_what: str
    target: str
    met: bool
    note: str = ""

    def ratio(self) -> str:
        if not self.anchor or not self.measured:
            return "—"
        return f"{self.measured / self.anchor:.2f}×"

    def cells(self) -> list[str]:
        anchor = ("—" if self.anchor is None
                  else f"{_num(self.anchor)} {self.unit} ({self.anchor_what})")
        return [self.figure, f"{_num(self.measured)} {self.unit}", anchor, self.ratio(),
                self.target, "yes" if self.met else "**no**", self.note]


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or float(value).is_integer() else f"{value:.1f}"


# --- the parts ----------------------------------------------------------------------------------
def api_rows(quick: bool) -> list[Row]:
    c = bench("connectors")
    gh_r, lever_r = (1000, 500) if quick else (5000, 2000)
    window = 3.0 if quick else 30.0
    gh = c.run_greenhouse(gh_r, 0.05, window=window)
    naive = c.naive_greenhouse(gh_r, 0.05)
    lever = c.run_lever(lever_r)
    naive_lever = c.naive_lever(lever_r)
    rate = "75 per 3 s (--quick)" if quick else "75 per 30 s"
    return [
        Row(f"Greenhouse first poll, R = {gh_r:,}, {gh['private_candidates']} private",
            gh["requests"], "requests", naive["requests"], "naive per-rejection client",
            f"≤ {gh['budget']}, no 429", gh["requests"] <= gh["budget"] and not gh["throttled"],
            f"{gh['forbidden']} × 403, {gh['throttled']} × 429 at {rate}, {gh['seconds']} s"),
        Row("Greenhouse poll right after, nothing new", gh["no_news_requests"], "requests",
            None, "", "≤ 3", gh["no_news_requests"] <= 3),
        Row(f"Lever poll + re-check, R = {lever_r:,}", lever["requests"], "requests",
            naive_lever["requests"], "naive per-rejection client",
            f"≤ {lever['budget']}, no 429",
            lever["requests"] <= lever["budget"] and not lever["throttled"],
            f"{lever['throttled']} × 429 at 10/s, {lever['seconds']} s"),
    ]


def median_run(measure, runs: int) -> dict:
    """The run with the median p99 of `runs` (each a fresh server): one unlucky scheduling
    moment on a shared 2-core machine does not decide a figure, nor does a lucky one."""
    results = sorted((measure() for _ in range(runs)), key=lambda r: r["p99_ms"])
    got = results[len(results) // 2]
    if runs > 1:
        got["spread"] = f"p99 of {runs} runs: " + ", ".join(f"{r['p99_ms']}" for r in results)
    return got


def web_rows(quick: bool, databases: list[str], runs: int, workers: int) -> list[Row]:
    hooks = bench("greenhouse_webhooks")
    consent = bench("consent_load")
    seconds = 5 if quick else 20
    rows = []
    for db in databases:
        for rate, limit in ((100, 20), (500, 100)):
            got = median_run(partial(hooks.measure_webhooks, rate, seconds, db), runs)
            lost = got["sent"] - got["stored"]
            rows.append(Row(
                f"webhook acks at {rate}/s for {seconds} s, {db}", got["p99_ms"], "ms p99",
                got["healthz"]["p99_ms"], "/healthz p99", f"p99 < {limit} ms, none dropped",
                got["p99_ms"] < limit and not got["errors"] and lost == 0,
                f"p50 {got['p50_ms']} ms, {got['stored']:,} of {got['sent']:,} stored, "
                f"{got['errors']} errors" + _spread(got)))
    for rate, limit in ((100, 20), (300, 100)):
        got = median_run(partial(consent.measure_consent, rate, seconds, workers), runs)
        rows.append(Row(
            f"consent pages at {rate} requests/s, SQLite, `serve --workers {workers}`",
            got["p99_ms"], "ms p99",
            got["healthz"]["p99_ms"], "/healthz p99", f"p99 < {limit} ms, no errors",
            got["p99_ms"] < limit and not got["errors"],
            f"p50 {got['p50_ms']} ms, {got['achieved_rate']} requests/s served, "
            f"{got['errors']} errors" + _spread(got)))
    return rows


def _spread(got: dict) -> str:
    return f"; {got['spread']}" if "spread" in got else ""


def sending_rows(rows_n: int) -> list[Row]:
    got = bench("sending").measure_sending(rows_n, "sqlite")
    rate, anchor = round(got["product_per_s"]), round(got["anchor_per_s"])
    tree = got["product_tree_mb"]
    return [
        Row(f"emails end to end, SQLite, {rows_n:,} cases", rate, "emails/s", anchor,
            "plain render + send loop, 4 connections", "≥ 500/s and ahead of the anchor",
            rate >= 500 and rate > anchor,
            f"{got['received']:,} received; load average {got['load']:.1f} at the start"),
        Row("peak memory of that run (with its build helper)", tree, "MB",
            got["anchor_rss_mb"], "the plain loop", "< 200 MB", tree < 200),
    ]


# --- output -----------------------------------------------------------------------------------
HEAD = ["figure", "measured", "anchor (same run)", "ratio", "target", "met", "notes"]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def provenance(argv: list[str], seconds: float) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    command = " ".join([".venv/bin/python bench/compare.py", *argv])
    return (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load} "
            f"after the run, in {seconds / 60:.1f} min; reproduce: `{command}`")


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} … {END} block to replace")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", readme),
                      encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["api", "web", "sending"], action="append",
                        help="run only these parts (repeatable); default all")
    parser.add_argument("--quick", action="store_true",
                        help="smaller R, 5-second loads, 10k emails: a check, not the figures")
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"],
                        help="databases for the webhook loads (default both)")
    parser.add_argument("--emails", type=int,
                        help="cases for the sending figure (default 100,000; 10,000 with --quick)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of each latency figure; the median p99 is shown (default 1)")
    parser.add_argument("--workers", type=int, default=2,
                        help="`serve --workers` for the consent pages (default 2: one a core)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    parts = args.only or ["api", "web", "sending"]
    started = time.monotonic()
    rows: list[Row] = []
    if "api" in parts:
        rows += api_rows(args.quick)
    if "web" in parts:
        rows += web_rows(args.quick, args.db or ["sqlite", "postgresql"], max(1, args.runs),
                         args.workers)
    if "sending" in parts:
        rows += sending_rows(args.emails or (10_000 if args.quick else 100_000))
    text = table(rows) + "\n\n" + provenance(
        [a for a in argv if a != "--write-readme"], time.monotonic() - started)
    print(text)
    missed = [r.figure for r in rows if not r.met]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} targets met"
          + (": missed " + "; ".join(missed) if missed else ""))
    if args.write_readme:
        write_readme(text)
        print("README.md: benchmark table replaced")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
