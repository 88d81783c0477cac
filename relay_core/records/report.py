"""`career-relay report`: the funnel and the credits, by agency, source and month.

    rejected → eligible → sent → consented → handed off | sent to form → registered → placed

Per case (total, per source, per month of rejection in the company's timezone): rejected = every
rejection detected, eligible = not skipped, sent = the email went out, consented = the candidate
consented (even if withdrawn later), handed off = at least one agency received the data (or may
have: `maybe_delivered`), sent to form = the candidate was sent to a redirect agency's own
registration form (nothing was sent to that agency), registered / placed = an agency reported
it (a cancelled placement no longer counts). "handed off" and "sent to form" are two branches
after "consented" (a candidate who ticked both kinds of agency counts in both); the rate of
each, and of "registered", is against "consented". Per agency the funnel starts at consented
and counts that agency's handoffs, plus its credits and recovered cost from the ledger. Counts
only: no personal data.

The legal review credits rest on ([ledger.legal_review], and each review as the ledger first
used it) is part of the report: table, JSON and HTML.

Formats: a rich table (drawn in commands/tables.py), CSV (one row per group), JSON, and one
self-contained HTML page (inline CSS and SVG, no external assets, no script) rendered from
templates/report/report.html.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relay_core.config import Config
from relay_core.models import CaseState
from relay_core.rendering.environment import template_environment
from relay_core.store import Store, reports, utcnow
from relay_core.store.ledger import attestations

STAGES = ("rejected", "eligible", "sent", "consented", "handed_off", "sent_to_form",
          "registered", "placed")
STAGE_LABELS = {"rejected": "rejected", "eligible": "eligible", "sent": "sent",
                "consented": "consented", "handed_off": "handed off",
                "sent_to_form": "sent to form", "registered": "registered", "placed": "placed"}
# The stage each rate is computed against (the funnel branches after "consented").
RATE_OF = {"eligible": "rejected", "sent": "eligible", "consented": "sent",
           "handed_off": "consented", "sent_to_form": "consented", "registered": "consented",
           "placed": "registered"}
HANDED_OFF = ("delivered", "maybe_delivered")
SENT_TO_FORM = ("redirected",)


@dataclass
class Report:
    generated_at: datetime
    total: dict[str, int]
    by_source: dict[str, dict[str, int]]
    by_month: dict[str, dict[str, int]]
    by_agency: dict[str, dict[str, Any]]
    credits_by_month: list[dict[str, Any]] = field(default_factory=list)
    ledger_rule: str = "off"
    # Of the sent emails, those sent after their deadline: {"total": n, "by_source": {…},
    # "by_month": {…}} (a backfill, an outage, a held case approved late).
    sent_late: dict[str, Any] = field(default_factory=lambda: {
        "total": 0, "by_source": {}, "by_month": {}})
    # {"in_force": the configured review or None, "used": every review credits were computed
    # under, as first used}
    legal_review: dict[str, Any] = field(default_factory=dict)
    # Emails handed to the mail server whose answer never came (a crash or a dropped
    # connection after DATA): maybe delivered, not counted as sent; the same shape as sent_late.
    ambiguous: dict[str, Any] = field(default_factory=lambda: {
        "total": 0, "by_source": {}, "by_month": {}})

    def as_dict(self) -> dict[str, Any]:
        return {"generated_at": self.generated_at.isoformat(), "stages": list(STAGES),
                "total": self.total, "by_source": self.by_source, "by_month": self.by_month,
                "by_agency": self.by_agency, "credits_by_month": self.credits_by_month,
                "ledger_rule": self.ledger_rule, "sent_late": self.sent_late,
                "ambiguous": self.ambiguous, "legal_review": self.legal_review}


def _zero() -> dict[str, int]:
    return dict.fromkeys(STAGES, 0)


def build_report(store: Store, config: Config, now: datetime | None = None) -> Report:
    tz = config.company.tz
    with store.connect() as conn:
        cases, consented, chosen, handoffs, events, credits = reports.funnel_rows(
            conn, HANDED_OFF + SENT_TO_FORM)
    registered: set[int] = set()
    placements: dict[int, int] = defaultdict(int)
    for e in events:
        if e.kind == "registered":
            registered.add(e.handoff_id)
        elif e.kind == "placed":
            placements[e.handoff_id] += 1
        elif e.kind == "placement_cancelled":
            placements[e.handoff_id] -= 1
    placed = {h for h, n in placements.items() if n > 0}
    case_of = {h.id: h.case_id for h in handoffs}
    handed_cases = {h.case_id for h in handoffs if h.state in HANDED_OFF}
    form_cases = {h.case_id for h in handoffs if h.state in SENT_TO_FORM}
    registered_cases = {case_of[h] for h in registered if h in case_of}
    placed_cases = {case_of[h] for h in placed if h in case_of}

    total, by_source = _zero(), defaultdict(_zero)
    by_month: dict[str, dict[str, int]] = defaultdict(_zero)
    late: dict[str, Any] = {"total": 0, "by_source": defaultdict(int),
                            "by_month": defaultdict(int)}
    unsure: dict[str, Any] = {"total": 0, "by_source": defaultdict(int),
                              "by_month": defaultdict(int)}
    for case in cases:
        for tally, counts in ((late, case.sent_late),
                              (unsure, case.state == CaseState.AMBIGUOUS.value)):
            if counts:
                tally["total"] += 1
                tally["by_source"][case.source] += 1
                tally["by_month"][case.rejected_at.astimezone(tz).strftime("%Y-%m")] += 1
        stages = ["rejected"]
        if case.state != CaseState.SKIPPED.value:
            stages.append("eligible")
        if case.state == CaseState.SENT.value:
            stages.append("sent")
        for stage, members in (("consented", consented), ("handed_off", handed_cases),
                               ("sent_to_form", form_cases), ("registered", registered_cases),
                               ("placed", placed_cases)):
            if case.id in members:
                stages.append(stage)
        month = case.rejected_at.astimezone(tz).strftime("%Y-%m")
        for stage in stages:
            total[stage] += 1
            by_source[case.source][stage] += 1
            by_month[month][stage] += 1

    names = {a.id: a.legal_name for a in config.agencies}
    by_agency: dict[str, dict[str, Any]] = {}

    def agency_row(agency_id: str) -> dict[str, Any]:
        if agency_id not in by_agency:
            by_agency[agency_id] = {"legal_name": names.get(agency_id, ""), "consented": 0,
                                    "handed_off": 0, "sent_to_form": 0, "registered": 0,
                                    "placed": 0, "credits": 0, "yen": 0}
        return by_agency[agency_id]

    for a in config.agencies:
        agency_row(a.id)
    for _, agency_id in chosen:
        agency_row(agency_id)["consented"] += 1
    for h in handoffs:
        row = agency_row(h.agency_id)
        row["handed_off" if h.state in HANDED_OFF else "sent_to_form"] += 1
        row["registered"] += h.id in registered
        row["placed"] += h.id in placed
    monthly: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"credits": 0,
                                                                          "yen": 0})
    for c in credits:
        row = agency_row(c.agency_id)
        row["credits"] += c.credits
        row["yen"] += c.yen
        key = (c.agency_id, c.occurred_at.astimezone(tz).strftime("%Y-%m"))
        monthly[key]["credits"] += c.credits
        monthly[key]["yen"] += c.yen
    return Report(
        generated_at=now or utcnow(), total=total, by_source=dict(sorted(by_source.items())),
        by_month=dict(sorted(by_month.items())), by_agency=dict(sorted(by_agency.items())),
        credits_by_month=[{"agency": a, "month": m, **v} for (a, m), v in sorted(monthly.items())],
        ledger_rule=config.ledger.rule if config.ledger.enabled else "off",
        sent_late={"total": late["total"], "by_source": dict(sorted(late["by_source"].items())),
                   "by_month": dict(sorted(late["by_month"].items()))},
        ambiguous={"total": unsure["total"],
                   "by_source": dict(sorted(unsure["by_source"].items())),
                   "by_month": dict(sorted(unsure["by_month"].items()))},
        legal_review=legal_review_view(store, config))


def legal_review_view(store: Store, config: Config) -> dict[str, Any]:
    """The review in force (None while credits are off) and every review credits were
    computed under, as the ledger first used it."""
    review = config.ledger.legal_review
    with store.connect() as conn:
        used = attestations(conn)
    return {
        "in_force": ({**review.as_dict(), "fingerprint": review.fingerprint}
                     if config.ledger.enabled else None),
        "used": [{"reviewer": a.reviewer, "reviewed_on": a.reviewed_on, "document": a.document,
                  "notification_number": a.notification_number, "rule": a.rule,
                  "first_used_at": a.first_used_at.isoformat(), "fingerprint": a.fingerprint}
                 for a in used],
    }


def legal_review_lines(report: Report) -> list[str]:
    """The legal review in words, for the table and the HTML page."""
    view = report.legal_review or {}
    current = view.get("in_force")
    if not current:
        lines = ["credits off: no legal review recorded ([ledger.legal_review]); agency events "
                 "are recorded, no credits are computed"]
    else:
        first = next((u["first_used_at"] for u in view.get("used", [])
                      if u["fingerprint"] == current["fingerprint"]), None)
        lines = [f"credits rest on the legal review by {current['reviewer']} of "
                 f"{current['reviewed_on']}, document {current['document']}"
                 + (f", 特定募集情報等提供 notification {current['notification_number']}"
                    if current["notification_number"] else "")
                 + (f"; first used {first}" if first else "; not used yet")]
    lines += [f"earlier review: {u['reviewer']} of {u['reviewed_on']}, document {u['document']} "
              f"(first used {u['first_used_at']})"
              for u in view.get("used", [])
              if not current or u["fingerprint"] != current["fingerprint"]]
    return lines


# --- renderings ------------------------------------------------------------------------------
def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)


def _rows(report: Report) -> list[dict[str, Any]]:
    late, unsure = report.sent_late, report.ambiguous
    rows = [{"group": "total", "key": "all", **report.total, "sent_late": late["total"],
             "ambiguous": unsure["total"]}]
    rows += [{"group": "source", "key": k, **v, "sent_late": late["by_source"].get(k, 0),
              "ambiguous": unsure["by_source"].get(k, 0)}
             for k, v in report.by_source.items()]
    rows += [{"group": "month", "key": k, **v, "sent_late": late["by_month"].get(k, 0),
              "ambiguous": unsure["by_month"].get(k, 0)}
             for k, v in report.by_month.items()]
    for agency_id, v in report.by_agency.items():
        rows.append({"group": "agency", "key": agency_id, "rejected": "", "eligible": "",
                     "sent": "", "sent_late": "", "ambiguous": "",
                     **{k: v[k] for k in ("consented", "handed_off", "sent_to_form",
                                          "registered", "placed", "credits", "yen")}})
    return rows


def to_csv(report: Report) -> str:
    out = io.StringIO()
    fields = ["group", "key", *STAGES[:3], "sent_late", *STAGES[3:], "credits", "yen",
              "ambiguous"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in _rows(report):
        writer.writerow(row)
    return out.getvalue()


FUNNEL_WIDTH, BAR_HEIGHT, BAR_GAP, LABEL_WIDTH = 640, 34, 8, 120


def funnel_geometry(total: dict[str, int]) -> dict[str, Any]:
    """Where each bar of the SVG funnel goes: centred bars, widths relative to the largest
    stage, and each stage's share of the one before. The markup is in report/report.html."""
    top = max(total.values()) or 1
    span = FUNNEL_WIDTH - LABEL_WIDTH - 100   # room on the right for "2 (100%)"
    bars = []
    for i, stage in enumerate(STAGES):
        n = total[stage]
        w = max(2, round(span * n / top)) if n else 0
        y = BAR_GAP + i * (BAR_HEIGHT + BAR_GAP)
        previous = total[RATE_OF[stage]] if i else 0
        bars.append({"label": STAGE_LABELS[stage], "count": n,
                     "rate": f" ({round(100 * n / previous)}%)" if i and previous else "",
                     "x": f"{LABEL_WIDTH + (span - w) / 2:.1f}", "y": y, "width": w,
                     "text_y": y + BAR_HEIGHT / 2 + 5})
    return {"width": FUNNEL_WIDTH, "height": len(STAGES) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP,
            "bar_height": BAR_HEIGHT, "label_x": LABEL_WIDTH - 10,
            "count_x": LABEL_WIDTH + span + 8, "bars": bars}


def to_html(report: Report, company: str = "", config: Config | None = None) -> str:
    """The report as one page, from templates/report/report.html (a file of the same name in
    `mail.templates_dir` overrides it when `config` is given)."""
    context = {
        "company": company,
        "generated": report.generated_at.isoformat(timespec="minutes"),
        "ledger_rule": report.ledger_rule,
        "stages": [STAGE_LABELS[s] for s in STAGES],
        "funnel": funnel_geometry(report.total),
        "source_rows": [[k, *(v[s] for s in STAGES),
                         report.sent_late["by_source"].get(k, 0),
                         report.ambiguous["by_source"].get(k, 0)]
                        for k, v in report.by_source.items()],
        "month_rows": [[k, *(v[s] for s in STAGES), report.sent_late["by_month"].get(k, 0),
                        report.ambiguous["by_month"].get(k, 0)]
                       for k, v in report.by_month.items()],
        "sent_late": report.sent_late["total"],
        "ambiguous": report.ambiguous["total"],
        "agency_rows": [[k, v["legal_name"], v["consented"], v["handed_off"],
                         v["sent_to_form"], v["registered"], v["placed"], v["credits"],
                         f"{v['yen']:,}"]
                        for k, v in report.by_agency.items()],
        "legal_review": legal_review_lines(report),
        "credit_rows": [[r["agency"], r["month"], r["credits"], f"{r['yen']:,}"]
                        for r in report.credits_by_month],
    }
    return template_environment(config, html_only=True).render_file("report/report.html",
                                                                     context)
