"""The stand-ins of bench/chaos.py, both on loopback: a Greenhouse Harvest v3 API and an SMTP
server (aiosmtpd) that keeps what it stores and tells the harness when mail is handed over.

The ATS follows what connectors/greenhouse.py calls and ../shared/reference/greenhouse.md
describes: `POST /token` (OAuth client credentials), bare-array lists ordered by id descending,
`Link: <…?cursor=…>; rel="next"` with the cursor as the only parameter (anything beside it →
422), `ids` / `application_ids` / `candidate_ids` / `job_ids` filters of at most 50 (more → 422),
`status` (`rejected`, `active`; records say `in_process`) and `updated_at=gte|…` filters on
/v3/applications, and /v3/candidates, /v3/job_posts, /v3/jobs, /v3/rejection_reasons,
/v3/rejection_details, /v3/users. Pages are smaller than asked (`page_size`), so that every
poll and every look-up follows cursors.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

PUBLIC = "https://relay.chaos.example"      # relay.public_base_url: the invitation's links
TITLE = re.compile(r"Chaos role A(\d+)\b")   # each application has its own job post title
REASON = {"id": 8, "name": "Lacking skills",
          "type": {"id": 1, "key": "WE_REJECTED_THEM", "name": "We rejected them"}}


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the ATS: Greenhouse Harvest v3 ------------------------------------------------------------
@dataclass
class App:
    id: int
    person: int
    status: str = "active"          # active | rejected (the harness's own words)
    rejected_at: str | None = None
    updated_at: str = field(default_factory=stamp)
    history: list[tuple[int, str]] = field(default_factory=list)   # (round, "reject"/"unreject")

    def record(self) -> dict:
        return {"id": self.id, "candidate_id": 300_000 + self.person, "job_id": self.id,
                "job_post_id": 900_000 + self.id, "prospect": False,
                "status": "rejected" if self.status == "rejected" else "in_process",
                "rejected_at": self.rejected_at if self.status == "rejected" else None,
                "rejection_reason_id": REASON["id"] if self.status == "rejected" else None,
                "updated_at": self.updated_at, "stage_name": "Interview"}


class Ats:
    """The stand-in's state; the HTTP handler below reads it, the rounds change it."""

    def __init__(self, page_size: int):
        self.page_size = page_size
        self.lock = threading.Lock()
        self.apps: dict[int, App] = {}
        self.people: dict[int, list[int]] = defaultdict(list)
        self.requests = Counter()

    def add_person(self, n_apps: int) -> list[App]:
        pid = len(self.people) + 1
        return [self.add_application(pid) for _ in range(n_apps)]

    def add_application(self, pid: int) -> App:
        """A new application (in process) of person `pid`, new or returning."""
        app = App(id=100_000 + len(self.apps) + 1, person=pid)
        self.apps[app.id] = app
        self.people[pid].append(app.id)
        return app

    def reject(self, app: App, rnd: int) -> None:
        now = stamp()
        app.status, app.rejected_at, app.updated_at = "rejected", now, now
        app.history.append((rnd, "reject"))

    def unreject(self, app: App, rnd: int) -> None:
        app.status, app.updated_at = "active", stamp()
        app.history.append((rnd, "unreject"))

    def candidate(self, cid: int) -> dict:
        pid = cid - 300_000
        return {"id": cid, "first_name": "Chaos", "last_name": f"Person{pid}",
                "can_email": True, "private": False,
                "email_addresses": [{"value": f"p{pid}@example.com", "type": "personal"}]}

    def applications(self, q: dict[str, str]) -> list[dict]:
        apps = sorted(self.apps.values(), key=lambda a: -a.id)   # v3: by id, descending
        if "ids" in q:
            wanted = {int(i) for i in q["ids"].split(",") if i}
            apps = [a for a in apps if a.id in wanted]
        if "candidate_ids" in q:
            wanted = {int(i) - 300_000 for i in q["candidate_ids"].split(",") if i}
            apps = [a for a in apps if a.person in wanted]
        if "status" in q:
            apps = [a for a in apps if a.status == q["status"]]
        if "updated_at" in q:
            op, _, at = q["updated_at"].partition("|")
            since = datetime.fromisoformat(at.replace("Z", "+00:00"))
            apps = [a for a in apps
                    if datetime.fromisoformat(a.updated_at.replace("Z", "+00:00")) >= since]
        return [a.record() for a in apps]

    def answer(self, path: str, q: dict[str, str]) -> tuple[int, list | dict]:
        ids = [x for x in (q.get("ids") or q.get("application_ids") or q.get("candidate_ids")
                           or q.get("job_ids") or "").split(",") if x]
        if len(ids) > 50:
            return 422, {"message": "at most 50 ids"}
        with self.lock:
            self.requests[path] += 1
            if path == "/v3/applications":
                return 200, self.applications(q)
            if path == "/v3/candidates":
                return 200, [self.candidate(int(i)) for i in ids]
            if path == "/v3/job_posts":
                return 200, [{"id": 900_000 + int(i), "job_id": int(i), "language": "en",
                              "title": f"Chaos role A{i}", "internal": False, "live": True,
                              "active": True} for i in ids]
            if path == "/v3/jobs":
                return 200, [{"id": int(i), "name": f"Chaos role A{i}", "confidential": False}
                             for i in ids]
            if path == "/v3/rejection_reasons":
                return 200, [REASON]
            if path == "/v3/rejection_details":
                return 200, [{"id": 1, "application_id": int(i),
                              "rejection_reason_id": REASON["id"],
                              "rejected_at": self.apps[int(i)].rejected_at}
                             for i in ids if int(i) in self.apps]
            if path == "/v3/users":
                return 200, [{"id": int(i), "site_admin": True} for i in ids]
        return 404, {"message": "not found"}


def ats_handler(ats: Ats):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status: int, body, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if urlsplit(self.path).path == "/token":
                return self.reply(200, {"access_token": "chaos-token", "token_type": "Bearer",
                                        "expires_in": 3600})
            self.reply(404, {"message": "not found"})

        def do_GET(self):
            if self.headers.get("Authorization") != "Bearer chaos-token":
                return self.reply(401, {"message": "Unauthorized"})
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            offset = 0
            if "cursor" in q:
                if len(q) > 1:      # v3: the cursor must be the only parameter
                    return self.reply(422, {"message": "cursor must be the only parameter"})
                state = json.loads(base64.urlsafe_b64decode(q["cursor"]))
                q, offset = state["q"], state["offset"]
            status, body = ats.answer(url.path, q)
            if status != 200 or not isinstance(body, list):
                return self.reply(status, body)
            # Pages smaller than asked (`--page-size`) so that every poll follows cursors.
            size = min(ats.page_size, int(q.get("per_page", 100)))
            page, headers = body[offset:offset + size], {}
            if offset + size < len(body):
                token = base64.urlsafe_b64encode(json.dumps(
                    {"q": q, "offset": offset + size}).encode()).decode()
                host = self.headers.get("Host")
                headers["Link"] = f'<http://{host}{url.path}?cursor={token}>; rel="next"'
            self.reply(200, page, headers)

    return Handler


# --- the SMTP server -------------------------------------------------------------------------
@dataclass
class Received:
    at: float
    recipient: str
    message_id: str
    app: int | None
    invited: bool
    session: int
    confirmed: bool = False   # the client sent another command after it: it saw the reply


class Sink:
    """An aiosmtpd handler that stores every message. It holds its reply to DATA for `delay`
    seconds (a slow server), and tells the harness about each MAIL FROM and each message, so
    that a kill can land while mail is being handed over."""

    def __init__(self, delay: float):
        self.delay = delay
        self.cond = threading.Condition()
        self.mail_froms = 0
        self.datas = 0
        self.messages: list[Received] = []
        self.last: dict[int, Received] = {}     # per connection: the message awaiting a reply

    def _confirm(self, session) -> None:
        with self.cond:
            last = self.last.pop(id(session), None)
            if last is not None:
                last.confirmed = True

    async def handle_MAIL(self, server, session, envelope, address, options):
        self._confirm(session)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        with self.cond:
            self.mail_froms += 1
            self.cond.notify_all()
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self._confirm(session)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        self._confirm(session)
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content,
                                 policy=email_policy.default)
        text = ""
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                text += part.get_content()
        found = TITLE.search(text) or TITLE.search(str(msg.get("Subject", "")))
        got = Received(time.time(), envelope.rcpt_tos[0].lower(), str(msg.get("Message-ID")),
                       int(found[1]) if found else None, f"{PUBLIC}/r/" in text, id(session))
        with self.cond:
            self.messages.append(got)
            self.last[id(session)] = got
            self.datas += 1
            self.cond.notify_all()
        await asyncio.sleep(self.delay)   # the server holds the message; the reply waits
        return "250 Message accepted for delivery"

    def wait_for(self, what: str, target: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: getattr(self, what) >= target, timeout)


class EphemeralController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd pokes the server."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
