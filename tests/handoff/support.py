"""Helpers for the handoff tests: agencies, a consented case made through the consent flow's
own functions, and a real HTTP agency on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from markupsafe import Markup

from relay_core.config import Config
from relay_core.models import CaseState
from relay_core.records.consent import records, tokens
from relay_core.records.consent.disclosure import ConsentText
from relay_core.store import Store
from tests.fakes import event

SECRET = "agency-shared-secret-0123456789"
T0 = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)


def agency(agency_id: str = "agency-a", channel: str = "webhook", **extra: Any) -> dict:
    base = {
        "id": agency_id, "legal_name": f"株式会社{agency_id.upper()}",
        "address": "東京都港区芝公園4-2-8", "representative": "代表取締役 佐藤花子",
        "country": "JP", "licence_number": "13-ユ-000001",
        "deletion_contact": f"privacy@{agency_id}.example", "channel": channel,
        "fields": ["name", "email", "job_title", "desired_role", "message"],
        "retention": "ご登録から2年間",
    }
    if channel == "webhook":
        base.update(url="http://127.0.0.1:9/intake", secret="env:CR_TEST_AGENCY_SECRET")
    elif channel == "email":
        base.update(email=f"intake@{agency_id}.example")
    else:
        base.update(register_url=f"https://{agency_id}.example/register")
    base.update(extra)
    return base


def consented_case(store: Store, config: Config, app_id: str, agency_ids: list[str], *,
                   now: datetime = T0, preferences: dict[str, str] | None = None,
                   source: str = "fake", rejected_at: datetime | None = None,
                   email: str | None = None) -> int:
    """A sent case whose candidate consented to these agencies, through consent/records.py."""
    ev = event(app_id, source=source, rejected_at=rejected_at or now - timedelta(days=2),
               email=email or f"cand{app_id}@example.com")
    with store.begin() as conn:
        case_id = store.insert_case(conn, ev, email=ev.person.emails[0], language="ja",
                                    now=now, actor="test")
        store.transition(conn, case_id, CaseState.SCHEDULED, actor="test", send_at=now, now=now)
        store.transition(conn, case_id, CaseState.SENDING, actor="test", now=now)
        store.transition(conn, case_id, CaseState.SENT, actor="test", sent_at=now, now=now)
        if agency_ids:
            key = tokens.signing_key(config, conn)
            token = tokens.mint(conn, key, case_id, "consent", timedelta(days=30), now)
            invitation = tokens.verify(conn, key, token, "consent", now)
            case = store_case(conn, case_id)
            text = ConsentText(Markup("<p>text</p>"), hashlib.sha256(b"<p>text</p>").hexdigest(),
                               "1+test", "ja")
            records.record_consent(store, conn, config, invitation=invitation, case=case,
                                   agency_ids=agency_ids, text=text,
                                   preferences=preferences or {}, now=now)
    return case_id


def store_case(conn, case_id: int):
    from relay_core.store import cases

    return cases.get(conn, case_id)


def withdraw(store: Store, case_id: int, now: datetime = T0):
    with store.begin() as conn:
        return records.withdraw(store, conn, case_id, now=now)


# --- an agency on loopback -------------------------------------------------------------------
def verify(secret: bytes, header: str, body: bytes, tolerance: int = 300) -> tuple[int, str]:
    """What the README tells agencies to do, written independently of relay_core."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp, received = int(fields["t"]), fields["v1"]
    if abs(time.time() - timestamp) > tolerance:
        raise ValueError("stale timestamp")
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received):
        raise ValueError("bad signature")
    return timestamp, received


class Agency:
    """Plays the agency: verifies every request, fails the first `fail_first` valid ones with
    503, then accepts; a replayed signature or stale timestamp is refused with 401; a known
    Idempotency-Key is acknowledged without storing the candidate again."""

    def __init__(self, secret: str = SECRET, fail_first: int = 0, status: int = 503):
        self.secret = secret.encode()
        self.fail_first = fail_first
        self.fail_status = status
        self.requests: list[dict[str, Any]] = []
        self.accepted: dict[str, dict] = {}   # Idempotency-Key → document
        self.seen_signatures: set[str] = set()
        self.refused: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                code, answer = outer.handle(dict(self.headers), body)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/intake"

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            try:
                _, signature = verify(self.secret, headers.get("X-Relay-Signature", ""), body)
            except (ValueError, KeyError) as exc:
                self.refused.append(str(exc))
                return 401, {"error": str(exc)}
            if signature in self.seen_signatures:
                self.refused.append("replay")
                return 401, {"error": "replayed request"}
            self.seen_signatures.add(signature)
            if self.fail_first > 0:
                self.fail_first -= 1
                return self.fail_status, {"error": "try later"}
            key = headers["Idempotency-Key"]
            if key in self.accepted:
                return 200, {"status": "duplicate"}
            self.accepted[key] = json.loads(body)
            return 200, {"status": "accepted"}

    def __enter__(self) -> Agency:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
