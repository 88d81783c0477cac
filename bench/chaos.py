"""Exactly once through crashes: kill `run` and `serve` at random moments and count the mail.

Starts, all on loopback: a Greenhouse Harvest v3 stand-in (OAuth token, bare-array lists,
`Link: <…?cursor=…>; rel="next"` with the cursor as the only parameter, `ids`/`*_ids` filters of
at most 50, `status` and `updated_at=gte|…` filters, records returned as `in_process` /
`rejected`), a real aiosmtpd server that keeps every message it stores, and the product as
subprocesses (`career-relay run` / `serve`, with a generated config: SQLite file or a fresh
PostgreSQL database `chaos_<pid>`). Mail is due at once (delay 0, business hours "always",
every day a business day).

Each round mutates the ATS (new rejections, un-rejects, re-rejects, people with two
applications at once, people who apply again after a rejection, sometimes a second mutation
while the product runs), starts one instance or 2–3
overlapping ones (`run`, sometimes `serve`), and kills some with SIGKILL or SIGTERM: after a
random delay, or the moment the SMTP server has received a MAIL FROM or a whole message (the
server holds its reply for `--smtp-delay` seconds, so that kill lands between DATA and the
reply: the one moment where nobody can know whether the mail went). Every process is gone at
the end of a round. Then the product finishes undisturbed (`--settle` clean runs) and the
harness counts.

The accounting (what a person is owed). Every email the server stored is attributed to its
application by the job title (each application has its own job post "Chaos role A<id>") and
counted per recipient. Under the product's rules (README "Who is emailed"):

- One email per person: `eligibility.person_cooldown_days` (set to 180 here) means a person
  rejected on two applications gets ONE email. The exception the product documents: an email
  sent *without* the relay invitation because the person was still in process for another
  application owes that person's next rejection its own email. So, going through a person's
  emails in the order the server stored them, an email is **excess** if its application was
  already mailed, or if the person already received an email that carried the invitation.
- An application is **owed** an email when it ends rejected in the ATS (an un-reject before
  the email went out cancels it; a later re-reject is owed again, once). It is **covered** when
  it was mailed, or when the person received an email that carried the invitation (the
  cooldown), or while it or another of the person's cases is in the product's `ambiguous`
  state (held for a person to decide: neither lost nor silently resent). An owed application
  not covered is **lost**; a person with a lost application was owed an email and never mailed.
- An excess email is **explained by ambiguity** when an earlier copy of the same message was
  left without a confirmed reply at the server: its DATA completed but the client never sent
  another command on that connection (the process died between DATA and reading the reply),
  and the product then resent it (`mail.on_ambiguous = "resend"` or `career-relay resend`).
  All other excess emails are **duplicates**.
- **Ambiguous**: cases in state `ambiguous` (from `career-relay status --json`, else the
  `relay_cases` table), whether `status` shows every one of them, and the bound "at most one per
  connection per crash": ambiguous cases ≤ killed instances × `mail.smtp.connections`.
- **Blocked**: an instance that found the lock taken (`run` exit 75, or `serve` logging "cycle
  skipped") while no other instance of this harness was alive during its whole life, or while
  every instance of its round was locked out too: a dead holder's lock.

Target: 0 lost, 0 duplicates, ambiguous within the bound and all shown in `status`, 0 blocked.
The exit code is 1 when the target is missed (2 when the harness itself could not run).

    .venv/bin/python bench/chaos.py --rounds 20 --seed 1                 # SQLite
    .venv/bin/python bench/chaos.py --db postgresql --rounds 300 --seed 7
    .venv/bin/python bench/chaos.py --instances 3 --rounds 20            # always 3 at once
    .venv/bin/python bench/chaos.py --clear-stale-locks --rounds 20      # look past the lock

The same seed gives the same mutations and kill plans; where a timed kill lands still depends
on the machine. `--keep DIR` keeps every instance's config and JSON log.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_standins import (  # noqa: E402
    PUBLIC,
    App,
    Ats,
    EphemeralController,
    Received,
    Sink,
    ats_handler,
)

ROOT = Path(__file__).resolve().parents[1]
# The product from this checkout (not whatever `career-relay` is installed in the venv).
BOOT = ("import sys; from relay_core.commands.cli import app; sys.argv[0] = 'career-relay'; "
        "sys.exit(app())")
EXIT_LOCKED = 75


# --- the product -------------------------------------------------------------------------------
def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))      # a JSON string is a TOML basic string



class QuietServer(ThreadingHTTPServer):
    """A killed product resets its connections mid-request: expected here, not worth a
    traceback on the harness's output."""

    def handle_error(self, request, client_address) -> None:
        pass

def write_toml(path: Path, data: dict) -> None:
    lines: list[str] = []

    def table(prefix: str, values: dict) -> None:
        plain = {k: v for k, v in values.items() if not isinstance(v, dict | list)
                 or (isinstance(v, list) and not (v and isinstance(v[0], dict)))}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in plain.items())
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)
        for k, v in values.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{k}]]")
                    lines.extend(f"{ik} = {toml_value(iv)}" for ik, iv in item.items())

    table("", data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def product_config(store_url: str, ats_url: str, smtp_port: int, web_port: int,
                   args: argparse.Namespace) -> dict:
    mail_smtp = {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "timeout_seconds": 10, "retries": 1, "connections": args.connections}
    mail: dict = {"transport": "smtp", "smtp": mail_smtp}
    if args.on_ambiguous:
        mail["on_ambiguous"] = args.on_ambiguous
    return {
        "company": {"name": "Chaos Co.", "legal_name": "Chaos Co., Ltd.",
                    "address": "1-1-1 Marunouchi, Chiyoda-ku, Tokyo",
                    "representative": "CEO Taro Yamada",
                    "sender": "Recruiting <recruit@example.co.jp>",
                    "reply_to": "recruit@example.co.jp", "timezone": "UTC", "locale": "en",
                    "privacy_policy_url": "https://example.co.jp/privacy",
                    "name_en": "Chaos Co.", "sender_name_en": "Recruiting"},
        "store": {"url": store_url},
        # Due at once: no cooling-off, no business hours, every day a business day.
        "schedule": {"delay_hours": 0, "business_hours": "always", "holidays": "",
                     "business_days": [0, 1, 2, 3, 4, 5, 6], "deadline_business_days": 3},
        "eligibility": {"person_cooldown_days": 180, "max_age_days": 14,
                        "in_process_elsewhere": "no_invitation"},
        "mail": mail,
        "relay": {"enabled": True, "public_base_url": PUBLIC},
        "web": {"host": "127.0.0.1", "port": web_port, "cycle_minutes": 1},
        "retention": {"purge_daily": False},
        "admin": {"enabled": False},
        "sources": [{"name": "gh", "type": "greenhouse", "mode": "poll", "client_id": "chaos",
                     "client_secret": "env:CHAOS_GH_SECRET", "user_id": 1,
                     "base_url": ats_url, "auth_url": ats_url,
                     # A short re-read keeps each run under the connector's 75 requests per
                     # 30 s (a run over it waits out the window, and the rounds crawl).
                     "overlap_minutes": 2}],
        "agencies": [{"id": "agency-a", "legal_name": "Agency A K.K.",
                      "address": "4-2-8 Shibakoen, Minato-ku, Tokyo",
                      "representative": "CEO Ichiro Sato", "country": "JP",
                      "licence_number": "13-ユ-000000",
                      "deletion_contact": "privacy@agency-a.example",
                      "purpose": "Introducing positions that fit your experience",
                      "channel": "redirect",
                      "register_url": "https://agency-a.example/register"}],
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Instance:
    name: str
    mode: str                       # run | serve
    kill: str                       # none | timer | from | data
    sig: int
    proc: subprocess.Popen
    log: Path
    started: float
    ended: float | None = None
    killed: bool = False
    rc: int | None = None

    def watch(self) -> None:
        """Note the moment it ended (a thread per instance: lifetimes decide `blocked`)."""
        rc = self.proc.wait()
        self.rc, self.ended = rc, time.monotonic()

    def alive(self) -> bool:
        return self.ended is None

    def send(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)     # this one process, by its id
                self.killed = True
            except ProcessLookupError:
                pass

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def cycle_events(self) -> list[str]:
        """serve's cycle lines (JSON log): "cycle ok in …", "cycle skipped: …", …"""
        found = []
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "cycle":
                found.append(str(entry.get("message", "")))
        return found

    def describe(self) -> str:
        how = (f"{signal.Signals(self.sig).name} at {self.kill}" if self.kill != "none"
               else "no kill")
        end = ("killed, " if self.killed and self.mode == "run" else "") + f"exit {self.rc}"
        locked = " LOCKED OUT" if self.locked_out() else ""
        return f"{self.mode} ({how}) {end}{locked}"

    def locked_out(self) -> bool:
        if self.mode == "run":
            return self.rc == EXIT_LOCKED
        return any(m.startswith("cycle skipped") for m in self.cycle_events())


class Product:
    def __init__(self, args: argparse.Namespace, workdir: Path, store_url: str, ats_url: str,
                 smtp_port: int):
        self.args, self.workdir, self.store_url = args, workdir, store_url
        self.ats_url, self.smtp_port = ats_url, smtp_port
        self.command = (shlex.split(args.product) if args.product
                        else [sys.executable, "-c", BOOT])
        self.env = {**os.environ, "CHAOS_GH_SECRET": "chaos-secret",
                    "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.count = 0

    def config(self) -> Path:
        self.count += 1
        path = self.workdir / f"config-{self.count}.toml"
        write_toml(path, product_config(self.store_url, self.ats_url, self.smtp_port,
                                        free_port(), self.args))
        return path

    def start(self, mode: str, kill: str = "none", sig: int = signal.SIGKILL) -> Instance:
        config = self.config()
        log = config.with_suffix(".log")
        argv = [*self.command, mode, "--config", str(config), "--log-format", "json"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        inst = Instance(f"{mode}#{self.count}", mode, kill, sig, proc, log, time.monotonic())
        threading.Thread(target=inst.watch, daemon=True).start()
        return inst

    def call(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, *argv, "--config", str(self.config())],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)


# --- the store, read directly (what `status` may not show) ---------------------------------
class Db:
    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        self.engine = sa.create_engine(url)

    def rows(self, sql: str) -> list:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(self.sa.text(sql)))
        except self.sa.exc.SQLAlchemyError as exc:
            return [("error", type(exc).__name__)]

    def cases(self) -> dict[int, tuple[str, str]]:
        return {int(r[0]): (r[1], r[2] or "") for r in self.rows(
            "select application_id, state, reason from relay_cases where source = 'gh'")
            if r[0] != "error"}

    def lock_holder(self) -> str:
        rows = self.rows("select holder, expires_at from locks")
        return "; ".join(f"{r[0]} until {r[1]}" for r in rows) or "no lock row"

    def clear_locks(self) -> int:
        """Diagnostic only (--clear-stale-locks): delete lock rows nobody alive holds."""
        try:
            with self.engine.begin() as conn:
                return conn.execute(self.sa.text("delete from locks")).rowcount or 0
        except self.sa.exc.SQLAlchemyError:
            return 0

    def dispose(self) -> None:
        self.engine.dispose()


# --- the rounds --------------------------------------------------------------------------------
@dataclass
class Tally:
    kills: Counter = field(default_factory=Counter)          # "SIGKILL run at data" → n
    exits: Counter = field(default_factory=Counter)          # "run rc=1" → n
    blocked: list[str] = field(default_factory=list)
    killed_instances: int = 0
    hung: list[str] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)          # rounds whose lock was cleared
    lock: threading.Lock = field(default_factory=threading.Lock)   # killers run in threads


def mutate(ats: Ats, rng: random.Random, rnd: int, new_people: tuple[int, int]) -> int:
    """One round's changes to the ATS; returns how many rejections it made."""
    made = 0
    with ats.lock:
        rejected = [a for a in ats.apps.values() if a.status == "rejected"]
        waiting = [a for a in ats.apps.values() if a.status == "active"]
        for app in rejected:
            if rng.random() < 0.08:
                ats.unreject(app, rnd)
        for app in waiting:      # re-rejects, and second applications rejected later
            if rng.random() < 0.3:
                ats.reject(app, rnd)
                made += 1
        # Someone rejected before applies again: the new application, rejected in a later
        # round, falls under the cooldown (one email), whatever became of the first email.
        done = [pid for pid, ids in ats.people.items() if len(ids) == 1
                and ats.apps[ids[0]].status == "rejected"]
        for pid in rng.sample(done, min(len(done), rng.randint(0, 2))):
            ats.add_application(pid)
        for _ in range(rng.randint(*new_people)):
            apps = ats.add_person(2 if rng.random() < 0.35 else 1)
            for i, app in enumerate(apps):
                if i == 0 or rng.random() < 0.5:   # else the second stays in process
                    ats.reject(app, rnd)
                    made += 1
    return made


def mid_round(ats: Ats, rng: random.Random, rnd: int) -> None:
    """While the product runs: un-reject a freshly rejected application, reject another."""
    with ats.lock:
        fresh = [a for a in ats.apps.values() if a.status == "rejected"
                 and a.history and a.history[-1][0] == rnd]
        if fresh:
            ats.unreject(rng.choice(fresh), rnd)
        waiting = [a for a in ats.apps.values() if a.status == "active"]
        if waiting:
            ats.reject(rng.choice(waiting), rnd)


def killer(inst: Instance, sink: Sink, rng: random.Random, tally: Tally,
           base: tuple[int, int]) -> None:
    if inst.kill == "timer":
        deadline = time.monotonic() + rng.uniform(0.2, 2.2)
        while time.monotonic() < deadline and inst.alive():
            time.sleep(0.01)
    elif inst.kill in ("from", "data"):
        what, start = ("mail_froms", base[0]) if inst.kill == "from" else ("datas", base[1])
        target = start + rng.randint(1, 4)
        while inst.alive() and not sink.wait_for(what, target, 0.05):
            pass
    if inst.alive():
        inst.send(inst.sig)
        if inst.killed:
            with tally.lock:
                tally.kills[f"{signal.Signals(inst.sig).name} {inst.mode} at {inst.kill}"] += 1
                tally.killed_instances += 1


def finish(inst: Instance, tally: Tally, timeout: float = 60) -> None:
    """Wait for a `run` to end, or for `serve`'s first cycle and then stop it (SIGTERM, as
    systemd does); anything still there after the timeout is killed and reported."""
    deadline = time.monotonic() + timeout
    while inst.alive() and time.monotonic() < deadline:
        if inst.mode == "serve" and inst.cycle_events():
            inst.send(signal.SIGTERM)
            stop = time.monotonic() + 15
            while inst.alive() and time.monotonic() < stop:
                time.sleep(0.02)
            break
        time.sleep(0.02)
    if inst.alive():
        tally.hung.append(inst.name)
        inst.send(signal.SIGKILL)
    inst.proc.wait()
    while inst.alive():      # the watcher notes the end
        time.sleep(0.005)


def one_round(rnd: int, product: Product, ats: Ats, sink: Sink, db: Db, rng: random.Random,
              args: argparse.Namespace, tally: Tally) -> list[Instance]:
    mutate(ats, rng, rnd, (args.min_new, args.max_new))
    count = args.instances or (rng.choice((2, 3)) if rng.random() < args.overlap else 1)
    base = (sink.mail_froms, sink.datas)
    instances = []
    for _ in range(count):
        mode = "serve" if rng.random() < args.serve else "run"
        kill = rng.choices(("none", "timer", "from", "data"), (0.25, 0.35, 0.15, 0.25))[0]
        sig = signal.SIGTERM if rng.random() < args.sigterm else signal.SIGKILL
        instances.append(product.start(mode, kill, sig))
    threads = [threading.Thread(target=killer, args=(i, sink, random.Random(rng.random()),
                                                     tally, base), daemon=True)
               for i in instances if i.kill != "none"]
    if rng.random() < 0.3:
        delay, child = rng.uniform(0.5, 2.0), random.Random(rng.random())
        threads.append(threading.Thread(target=lambda: (time.sleep(delay),
                                                        mid_round(ats, child, rnd)),
                                        daemon=True))
    for t in threads:
        t.start()
    for inst in instances:
        finish(inst, tally)
    for t in threads:
        t.join(timeout=30)
    judge_locks(rnd, instances, db, tally)
    if args.clear_stale_locks and db.clear_locks():   # everyone of this round is gone
        tally.cleared.append(rnd)
    return instances


def judge_locks(rnd: int, instances: list[Instance], db: Db, tally: Tally) -> None:
    everyone_locked = all(i.locked_out() for i in instances)
    for inst in instances:
        if inst.mode == "run" and not inst.killed:
            tally.exits[f"run rc={inst.rc}"] += 1
        if not inst.locked_out():
            continue
        others = any(o is not inst and o.started < (inst.ended or 0) and
                     (o.ended or float("inf")) > inst.started for o in instances)
        if everyone_locked or not others:
            tally.blocked.append(f"round {rnd}: {inst.name} locked out with no live holder "
                                 f"({db.lock_holder()})")


def settle(product: Product, db: Db, args: argparse.Namespace, tally: Tally) -> None:
    for n in range(args.settle):
        inst = product.start("run")
        finish(inst, tally, timeout=120)
        tally.exits[f"settling run rc={inst.rc}"] += 1
        if inst.rc == EXIT_LOCKED:
            tally.blocked.append(f"settling run {n + 1}: exit 75 with no other instance alive "
                                 f"({db.lock_holder()})")


# --- the accounting ----------------------------------------------------------------------------
@dataclass
class Summary:
    people: int = 0
    applications: int = 0
    emails: int = 0
    per_person: Counter = field(default_factory=Counter)     # emails received → people
    owed: int = 0
    lost: list[str] = field(default_factory=list)
    lost_people: set[int] = field(default_factory=set)
    lost_by_state: Counter = field(default_factory=Counter)   # the lost ones' case states
    duplicates: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    second: list[str] = field(default_factory=list)     # a second email the product owes
    ambiguous: int = 0
    ambiguous_shown: bool = True
    ambiguous_note: str = ""
    ambiguous_bound: int = 0
    held_ambiguous: int = 0
    case_states: Counter = field(default_factory=Counter)
    unattributed: int = 0
    # Messages whose DATA completed but whose client never sent another command: it died
    # between DATA and reading the reply. By their case's state (ideally: ambiguous).
    unconfirmed: Counter = field(default_factory=Counter)

    def target_met(self, tally: Tally) -> bool:
        # Lock rows cleared by --clear-stale-locks hide what they would have blocked: no verdict.
        return (not self.lost and not self.duplicates and not tally.blocked and not tally.cleared
                and self.ambiguous_shown and self.ambiguous <= self.ambiguous_bound
                and len(self.explained) <= self.ambiguous_bound and not self.unattributed)


def ambiguous_in_status(product: Product, db: Db) -> tuple[int, bool, str]:
    rows = db.rows("select id from relay_cases where state = 'ambiguous'")
    ids = {int(r[0]) for r in rows if r[0] != "error"}
    done = product.call("status", "--json")
    if done.returncode != 0:
        return len(ids), not ids, f"`status --json` exited {done.returncode}"
    data = json.loads(done.stdout)
    shown = int((data.get("by_state") or {}).get("ambiguous", 0))
    listed: set[int] = set()
    for key, value in data.items():       # a list of ambiguous cases, if status gives one
        if "ambiguous" in key and isinstance(value, list):
            listed |= {int(v["case"]) for v in value if isinstance(v, dict) and "case" in v}
    ok = shown == len(ids) and (not listed or ids <= listed)
    note = f"status shows {shown} in by_state" + (f", lists {len(listed)}" if listed else "")
    return len(ids), ok, note


def account(ats: Ats, messages: list[Received], cases: dict[int, tuple[str, str]]) -> Summary:
    """The accounting of the module's docstring: what each person received against what the
    ATS's final state and the product's rules owe them. `cases`: application id → (state,
    reason) from the store."""
    s = Summary(people=len(ats.people), applications=len(ats.apps), emails=len(messages))
    s.case_states = Counter(state for state, _ in cases.values())
    by_person: dict[int, list[Received]] = defaultdict(list)
    for mail in messages:
        if not mail.confirmed:
            s.unconfirmed[cases.get(mail.app, ("no case", ""))[0]] += 1
        if mail.app is None or mail.app not in ats.apps:
            s.unattributed += 1
            continue
        by_person[ats.apps[mail.app].person].append(mail)
    for pid, app_ids in ats.people.items():
        mails = sorted(by_person.get(pid, []), key=lambda m: m.at)
        s.per_person[len(mails)] += 1
        mailed: set[int] = set()
        invited = False
        unconfirmed: set[str] = set()
        for mail in mails:
            if mail.app in mailed or invited:
                earlier = ", ".join(f"{m.app} (case {cases.get(m.app, ('none', ''))[0]}"
                                    f"{', no invitation' if not m.invited else ''})"
                                    for m in mails if m.at < mail.at)
                what = (f"person {pid}: another email for application {mail.app} "
                        f"({describe(ats.apps[mail.app], cases)}; earlier: {earlier})")
                if mail.message_id in unconfirmed:
                    s.explained.append(what)
                else:
                    s.duplicates.append(what)
            elif mails[0] is not mail:
                s.second.append(f"person {pid}: application {mail.app} after "
                                f"{len(mailed)} email(s) without the invitation")
            mailed.add(mail.app)
            invited = invited or mail.invited
            if not mail.confirmed:
                unconfirmed.add(mail.message_id)
        ambiguous_here = any(cases.get(a, ("", ""))[0] == "ambiguous" for a in app_ids)
        for app_id in app_ids:
            app = ats.apps[app_id]
            if app.status != "rejected":
                continue
            s.owed += 1
            if app_id in mailed or invited:
                continue
            if ambiguous_here:
                s.held_ambiguous += 1
                continue
            s.lost.append(f"person {pid} application {app_id}: {describe(app, cases)}")
            s.lost_by_state[cases.get(app_id, ("no case", ""))[0]] += 1
            s.lost_people.add(pid)
    return s


def describe(app: App, cases: dict[int, tuple[str, str]]) -> str:
    state, reason = cases.get(app.id, ("no case", ""))
    steps = " → ".join(f"{what} r{rnd}" for rnd, what in app.history)
    return f"ATS {steps}; case {state}" + (f" ({reason[:90]})" if reason else "")


# --- main --------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get(
        "CR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
                   help="the PostgreSQL server; a database chaos_<pid> is made and dropped")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--min-new", type=int, default=2, help="new people per round, at least")
    p.add_argument("--max-new", type=int, default=6, help="new people per round, at most")
    p.add_argument("--overlap", type=float, default=0.25,
                   help="share of rounds with 2-3 overlapping instances")
    p.add_argument("--instances", type=int, default=None,
                   help="start exactly this many instances in every round (overrides --overlap)")
    p.add_argument("--serve", type=float, default=0.2, help="share of instances that are serve")
    p.add_argument("--sigterm", type=float, default=0.35, help="share of kills with SIGTERM")
    p.add_argument("--smtp-delay", type=float, default=0.15,
                   help="seconds the SMTP server holds its reply to each message")
    p.add_argument("--connections", type=int, default=2, help="mail.smtp.connections")
    p.add_argument("--page-size", type=int, default=40,
                   help="the ATS stand-in's page size (smaller than asked: cursors are followed)")
    p.add_argument("--settle", type=int, default=2, help="clean runs at the end")
    p.add_argument("--on-ambiguous", choices=("hold", "resend"), default=None,
                   help="write mail.on_ambiguous into the config (default: leave it out)")
    p.add_argument("--clear-stale-locks", action="store_true",
                   help="diagnostic: after each round delete the lock rows its dead instances "
                        "left, to see the failures a stale lock would hide (the rounds are "
                        "listed, and a run that cleared any is never judged MET)")
    p.add_argument("--product", default=None,
                   help="the product's command (default: this checkout's relay_core)")
    p.add_argument("--keep", type=Path, default=None, help="keep configs, logs and SQLite here")
    p.add_argument("--quiet", action="store_true", help="no per-round lines")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    return args


def reproduce(args: argparse.Namespace, argv: list[str] | None) -> str:
    given = list(argv if argv is not None else sys.argv[1:])
    if "--seed" not in given:
        given += ["--seed", str(args.seed)]
    return "python bench/chaos.py " + shlex.join(given)


def make_store(args: argparse.Namespace, workdir: Path) -> tuple[str, Callable[[], None]]:
    if args.db == "sqlite":
        return f"sqlite:///{workdir / 'relay.db'}", lambda: None
    import sqlalchemy as sa

    name = f"chaos_{os.getpid()}"
    admin = sa.create_engine(f"{args.pg_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return f"{args.pg_url}/{name}", drop


class HarnessError(Exception):
    """The harness itself could not run (not a finding about the product)."""


@dataclass
class Result:
    summary: Summary
    tally: Tally
    seconds: float

    @property
    def met(self) -> bool:
        return self.summary.target_met(self.tally)


def execute(args: argparse.Namespace) -> Result:
    """Set everything up, play the rounds, settle, count; the stand-ins and the database made
    for this run are gone afterwards (unless --keep)."""
    rng = random.Random(args.seed)
    started = time.monotonic()
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="chaos-")
    workdir = args.keep or Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    ats = Ats(args.page_size)
    http = QuietServer(("127.0.0.1", 0), ats_handler(ats))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    sink = Sink(args.smtp_delay)
    smtp = EphemeralController(sink, hostname="127.0.0.1", port=0)
    smtp.start()
    drop = None
    try:
        store_url, drop = make_store(args, workdir)
        db = Db(store_url)
        product = Product(args, workdir, store_url, f"http://127.0.0.1:{http.server_port}",
                          smtp.port)
        tally = Tally()
        try:
            # The installation's first poll, with nothing rejected yet: every later rejection
            # is after it, so none is skipped as "before the first poll".
            first = product.start("run")
            finish(first, tally)
            if first.rc not in (0, 1):
                raise HarnessError(f"the first run failed (exit {first.rc}):\n"
                                   f"{first.log_text()[-2000:]}")
            tally.exits.clear()
            for rnd in range(1, args.rounds + 1):
                at = time.monotonic()
                instances = one_round(rnd, product, ats, sink, db, rng, args, tally)
                if not args.quiet:
                    print(f"round {rnd}: " + "; ".join(i.describe() for i in instances)
                          + f" | {time.monotonic() - at:.1f} s, emails so far "
                          f"{len(sink.messages)}, blocked so far {len(tally.blocked)}",
                          flush=True)
            settle(product, db, args, tally)
            time.sleep(max(0.3, args.smtp_delay * 2))   # the last replies
            summary = account(ats, sink.messages, db.cases())
            summary.ambiguous, summary.ambiguous_shown, summary.ambiguous_note = \
                ambiguous_in_status(product, db)
            summary.ambiguous_bound = tally.killed_instances * args.connections
        finally:
            db.dispose()
    finally:
        smtp.stop()
        http.shutdown()
        if drop is not None:
            drop()
        if tmp is not None:
            tmp.cleanup()
    return Result(summary, tally, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = execute(args)
    except HarnessError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    report(result.summary, result.tally, args, result.seconds)
    print("reproduce: " + reproduce(args, argv))
    return 0 if result.met else 1


def report(s: Summary, tally: Tally, args: argparse.Namespace, seconds: float) -> None:
    print(f"\nchaos on {args.db}: {args.rounds} rounds, seed {args.seed}, {seconds:.0f} s")
    print(f"ATS: {s.people} people, {s.applications} applications, {s.owed} end rejected")
    print("kills: " + (", ".join(f"{k} ×{n}" for k, n in sorted(tally.kills.items()))
                       or "none"))
    print("exits: " + ", ".join(f"{k} ×{n}" for k, n in sorted(tally.exits.items())))
    if tally.hung:
        print(f"killed after hanging: {', '.join(tally.hung)}")
    print("cases by state: " + ", ".join(f"{k} {n}" for k, n in sorted(s.case_states.items())))
    print(f"emails: {s.emails}; people by emails received: "
          + ", ".join(f"{k}: {n}" for k, n in sorted(s.per_person.items())))
    if s.unattributed:
        print(f"emails not attributable to an application: {s.unattributed}")
    print(f"duplicates (excess emails not explained by an ambiguous hand-over): "
          f"{len(s.duplicates)}")
    for line in s.duplicates[:20]:
        print(f"  {line}")
    print(f"second emails owed because the first went without the invitation (the person was "
          f"in process elsewhere): {len(s.second)}")
    print(f"excess emails explained by an ambiguous hand-over (resent): {len(s.explained)}")
    for line in s.explained[:10]:
        print(f"  {line}")
    print(f"lost (owed, never mailed): {len(s.lost)} application(s) of "
          f"{len(s.lost_people)} people"
          + (" (their cases: " + ", ".join(f"{k} {n}" for k, n in s.lost_by_state.most_common())
             + ")" if s.lost else ""))
    for line in s.lost[:20]:
        print(f"  {line}")
    if len(s.lost) > 20:
        print(f"  … and {len(s.lost) - 20} more")
    print(f"emails stored whose reply the client never confirmed (it died between DATA and the "
          f"reply): {sum(s.unconfirmed.values())}" + (" (their cases: " + ", ".join(
              f"{k} {n}" for k, n in s.unconfirmed.most_common()) + ")" if s.unconfirmed else ""))
    print(f"ambiguous cases: {s.ambiguous} (bound: {tally.killed_instances} killed instances × "
          f"{args.connections} connections = {s.ambiguous_bound}); shown in status: "
          f"{'yes' if s.ambiguous_shown else 'NO'} ({s.ambiguous_note}); owed applications "
          f"waiting on one: {s.held_ambiguous}")
    if args.clear_stale_locks:
        print(f"stale lock rows cleared after {len(tally.cleared)} round(s): "
              + (", ".join(map(str, tally.cleared)) or "none"))
    print(f"blocked by a dead holder's lock: {len(tally.blocked)}")
    for line in tally.blocked[:20]:
        print(f"  {line}")
    verdict = "MET" if s.target_met(tally) else "MISSED"
    if tally.cleared:
        verdict += " (not judged: --clear-stale-locks cleared lock rows left by dead instances)"
    print(f"target (0 lost, 0 duplicates, ambiguous within bound and shown, 0 blocked): "
          f"{verdict}")


if __name__ == "__main__":
    sys.exit(main())
