"""Building a batch's mails (render + MIME), in place or ahead in a helper process.

Rendering and building a message is pure-Python CPU work, about half of a large sending run.
While one batch is delivered (outbox.py), the next one is built in a helper process, so the two
overlap on two cores. The helper never touches the database: it is given the cases and what
each mail carries (its links and Message-ID, decided by sending.py) and returns the exact
bytes, or why a mail cannot be built; sending.py commits them like a batch built in place. A
run with a single batch builds in place and starts nothing; if the helper dies, the batch is
built in place.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime

from relay_core.config import Config
from relay_core.cycle.eligibility import feedback_text
from relay_core.errors import FatalError, TemplateError
from relay_core.mail.message import OutgoingMail, build_mail
from relay_core.models import Person, RelayCase
from relay_core.rendering.emails import Renderer, build_context


@dataclass(frozen=True, slots=True, repr=False)
class MailJob:
    """One case's mail to build: the case and the links it carries."""

    case: RelayCase
    kind: str
    message_id: str
    url: str | None = None
    expires: date | None = None
    stop_url: str | None = None

    def __repr__(self) -> str:   # the case holds personal data
        return f"MailJob(case={self.case.id}, kind={self.kind!r})"


@dataclass(frozen=True, slots=True, repr=False)
class BuiltMail:
    """A built mail's recipient and bytes, or `error`: why it could not be built (a template
    or a field, never data)."""

    case_id: int
    recipient: str = ""
    data: bytes = b""
    error: str = ""

    def __repr__(self) -> str:
        return f"BuiltMail(case={self.case_id}, {len(self.data)} bytes)"


def build_case_mail(config: Config, renderer: Renderer, case: RelayCase, kind: str,
                    url: str | None, expires: date | None, message_id: str, now: datetime,
                    unsubscribe_url: str | None = None) -> OutgoingMail:
    """The case's rejection email, rendered and built: what is sent, and what the console
    previews (with a placeholder link). `unsubscribe_url`: the opt-out of an invite_only
    mail."""
    person = case.person or Person()
    context = build_context(
        config, display_name=person.full_name, job_title=case.job_title,
        last_name=person.last_name, first_name=person.first_name, stage=case.stage,
        invitation_url=url, invitation_expires=expires, language=case.language,
        feedback=case_feedback(config, case.source, case.feedback), source=case.source,
        unsubscribe_url=unsubscribe_url)
    rendered = renderer.render(kind, case.language, context)
    return build_mail(config, to_addr=case.email,
                      to_name=context["candidate"]["display_name"], subject=rendered.subject,
                      text=rendered.text, html=rendered.html, message_id=message_id, date=now,
                      language=rendered.language)


def case_feedback(config: Config, source: str, raw: str) -> str:
    """The feedback block's text: only while the case's source still designates a feedback
    field (opt-in per source), bounded by `mail.feedback_max_chars`."""
    settings = next((s for s in config.sources if s.name == source), None)
    if settings is None or not settings.options.get("feedback_field"):
        return ""
    return feedback_text(raw, config)


def build_all(config: Config, renderer: Renderer, jobs: list[MailJob], now: datetime
              ) -> list[BuiltMail]:
    built = []
    for job in jobs:
        try:
            mail = build_case_mail(config, renderer, job.case, job.kind, job.url, job.expires,
                                   job.message_id, now, job.stop_url)
        except (TemplateError, FatalError) as exc:
            built.append(BuiltMail(job.case.id, error=f"could not build the email: {exc}"))
            continue
        built.append(BuiltMail(job.case.id, mail.recipient, mail.data))
    return built


def _serve() -> None:
    """The helper process: a Config, then (jobs, now) requests, each answered with the built
    mails, pickled over its stdin and stdout, until stdin closes."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    config: Config = pickle.load(requests)
    renderer = Renderer(config, auto_reload=False)   # lives one delivery: no stat per template
    while True:
        try:
            jobs, now = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(build_all(config, renderer, jobs, now), answers)
        answers.flush()


class Builder:
    """Builds batches; `ahead=True` in the helper process (started on first use), so that
    the caller can deliver meanwhile. Use as a context manager: the helper stops at the end.
    The helper is a plain `python -c` process that imports only this module's needs, not the
    command line (multiprocessing would import the caller's main module: twice the memory)."""

    def __init__(self, config: Config, renderer: Renderer):
        self.config = config
        self.renderer = renderer
        self._helper: subprocess.Popen | None = None

    def submit(self, jobs: list[MailJob], now: datetime, *, ahead: bool
               ) -> Future[list[BuiltMail]]:
        done: Future[list[BuiltMail]] = Future()
        if ahead and jobs:
            try:
                helper = self._helper or self._start()
                pickle.dump((jobs, now), helper.stdin)
                helper.stdin.flush()
                return done    # answered by result(), which reads the helper's reply
            except OSError:
                self._stop()
        done.set_result(build_all(self.config, self.renderer, jobs, now))
        return done

    def result(self, future: Future[list[BuiltMail]], jobs: list[MailJob], now: datetime
               ) -> list[BuiltMail]:
        if future.done():
            return future.result()
        try:
            assert self._helper is not None
            return pickle.load(self._helper.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, AssertionError):
            # The helper died (killed, out of memory): this batch is built here.
            self._stop()
            return build_all(self.config, self.renderer, jobs, now)

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._helper = subprocess.Popen(
            [sys.executable, "-c", "from relay_core.cycle.building import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        pickle.dump(self.config, self._helper.stdin)
        return self._helper

    def _stop(self) -> None:
        helper, self._helper = self._helper, None
        if helper is None:
            return
        with suppress(OSError):
            helper.stdin.close()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
        with suppress(OSError):
            helper.stdout.close()

    def __enter__(self) -> Builder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()
