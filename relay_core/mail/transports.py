"""Handing built messages over: an outbox folder of .eml files, or an SMTP server.

A transport is used as a context manager around a batch (`with transport: send, send, ...`), so
SMTP opens one connection for the whole batch. What an SMTP answer means for the caller:

    4xx, dropped connection, timeout   retried here (bounded, capped jittered backoff),
                                       then RetriableError: try again in a later run
    login refused (535)                AuthError: fix mail.smtp.username / password
    550-553 to RCPT                    PermanentMailError(suppress_address=True): the address
                                       is dead, never mail it again
    any other 5xx                      PermanentMailError(suppress_address=False)
    certificate not verified           ConfigError: set mail.smtp.ca_file; never switch it off
    no answer after the whole message  AmbiguousMailError: the server may hold it; SMTP cannot
    (connection dropped or timed out   say, so it is never retried here (at most one such
    between the final "." and the      message per connection)
    reply)

`hand_over(mail, before_data)` calls `before_data()` at the one moment that matters for
exactly-once: the server said 354 and the message is about to go. The outbox commits
"handing over" there (cycle/outbox.py): a crash before it leaves nothing ambiguous.

Only the Message-ID is logged; never an address, a name or a body.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from email.message import EmailMessage
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from relay_core.config import Config, Smtp
from relay_core.errors import (
    AmbiguousMailError,
    AuthError,
    ConfigError,
    PermanentMailError,
    RetriableError,
)
from relay_core.mail.message import OutgoingMail

log = logging.getLogger(__name__)

DEFAULT_WAIT = wait_random_exponential(multiplier=0.5, max=5)
SUPPRESS_CODES = range(550, 554)
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})")
_ADDRESS = re.compile(r"[^\s<>()\[\]:;,\"']+@[^\s<>()\[\]:;,\"']+")
CRLF = b"\r\n"
BeforeData = Callable[[], None] | None


class Transport:
    """`open()` before a batch, `send()` each message, `close()` after; or use `with`."""

    idempotent = False   # True when sending the same message twice cannot duplicate it
    connections = 1      # how many of these may send in parallel (see clone())
    max_per_day = 0      # the provider's daily quota (cycle/quota.py); 0 = none

    def clone(self) -> Transport:
        """A fresh transport with the same settings, for another sending thread."""
        return self

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, mail: OutgoingMail | EmailMessage) -> None:
        raise NotImplementedError

    def hand_over(self, mail: OutgoingMail, before_data: BeforeData = None) -> None:
        """`send`, calling `before_data()` right before the message itself goes. Here (a
        file, a test double) that is simply first; SMTP calls it after the server's 354."""
        if before_data is not None:
            before_data()
        self.send(mail)

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _outgoing(mail: OutgoingMail | EmailMessage) -> OutgoingMail:
    return mail if isinstance(mail, OutgoingMail) else OutgoingMail.from_message(mail)


class FileTransport(Transport):
    """One .eml per message, named after its Message-ID: a review outbox and the default."""

    idempotent = True

    def __init__(self, outbox_dir: Path | str):
        self.outbox_dir = Path(outbox_dir)

    def open(self) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, message_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._@-]", "_", message_id.strip("<> "))
        return self.outbox_dir / f"{safe}.eml"

    def send(self, mail: OutgoingMail | EmailMessage) -> None:
        mail = _outgoing(mail)
        message_id = mail.message_id
        target = self.path_for(message_id)
        if target.exists():
            log.info("%s is already in the outbox; not written again", message_id)
            return
        self.open()
        # mkstemp creates the file readable by its owner only: the mail holds personal data.
        fd, tmp = tempfile.mkstemp(dir=self.outbox_dir, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(mail.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)   # readers never see half a message
        except OSError as exc:
            with suppress(OSError):
                os.unlink(tmp)
            raise RetriableError(f"could not write {message_id} to the outbox "
                                 f"{self.outbox_dir} ({exc.strerror or type(exc).__name__})"
                                 ) from None
        log.info("wrote %s to the outbox", message_id)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPException):   # e.g. SMTPNotSupportedError: no use asking again
        return False
    # Refused connections, resets and timeouts; certificate failures never get here because
    # _connect turns them into ConfigError first.
    return isinstance(exc, OSError)


class SmtpTransport(Transport):
    def __init__(self, settings: Smtp, *, wait: wait_base | None = None):
        self.settings = settings
        self.wait = wait or DEFAULT_WAIT     # tests pass tenacity.wait_none()
        self._smtp: smtplib.SMTP | None = None
        self._last_send = 0.0
        self.connections = settings.connections
        self.max_per_day = settings.max_per_day

    def clone(self) -> SmtpTransport:
        # Each connection gets its share of the configured rate, so together they keep it.
        share = self.settings.messages_per_second / self.settings.connections
        return SmtpTransport(self.settings.model_copy(update={"messages_per_second": share}),
                             wait=self.wait)

    def open(self) -> None:
        if self._smtp is None:
            self._smtp = self._connect()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def send(self, mail: OutgoingMail | EmailMessage) -> None:
        self.hand_over(_outgoing(mail))

    def hand_over(self, mail: OutgoingMail, before_data: BeforeData = None) -> None:
        message_id = mail.message_id
        attempts = self.settings.retries + 1
        retrying = Retrying(stop=stop_after_attempt(attempts), wait=self.wait,
                            retry=retry_if_exception(_transient), reraise=True)
        try:
            retrying(self._send_once, mail, before_data)
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify(exc, message_id, attempts) from None
        log.info("sent %s", message_id)

    def _send_once(self, mail: OutgoingMail, before_data: BeforeData) -> None:
        self._throttle()
        if self._smtp is not None:
            try:
                self._deliver(mail, before_data)
                return
            except smtplib.SMTPServerDisconnected:
                pass  # the server closed the idle connection: reconnect now, no backoff needed
        self.open()
        self._deliver(mail, before_data)

    def _deliver(self, mail: OutgoingMail, before_data: BeforeData) -> None:
        """smtplib's sendmail in its steps, so that the moment the message goes is known:
        before it, any failure may be retried; after the final "." without a reply, the
        server may hold the message, and that is AmbiguousMailError, never a retry."""
        smtp = self._smtp
        assert smtp is not None
        try:
            self._envelope(smtp, mail)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            raise   # the server answered and we sent RSET: the connection stays usable
        except (smtplib.SMTPException, OSError):
            self._drop()
            raise
        try:
            if before_data is not None:
                before_data()
            smtp.send(_dot_stuffed(mail.data))
        except BaseException:
            # The final "." never left (sendall stops at the first error, and it is last),
            # or the caller stopped us: the server holds nothing; the connection is mid-DATA.
            self._drop()
            raise
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise AmbiguousMailError(
                f"the connection to the SMTP server dropped after {mail.message_id} was handed "
                f"over and before the server answered ({type(exc).__name__}); it may have been "
                "delivered") from None
        if code != 250:
            _rset_quietly(smtp)
            raise smtplib.SMTPDataError(code, reply)

    @staticmethod
    def _envelope(smtp: smtplib.SMTP, mail: OutgoingMail) -> None:
        """EHLO, MAIL FROM, RCPT TO and DATA up to the server's 354, as sendmail does them."""
        smtp.ehlo_or_helo_if_needed()
        options = [f"size={len(mail.data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
        code, reply = smtp.mail(mail.sender, options)
        if code != 250:
            _rset_or_close(smtp, code)
            raise smtplib.SMTPSenderRefused(code, reply, mail.sender)
        code, reply = smtp.rcpt(mail.recipient)
        if code not in (250, 251):
            _rset_or_close(smtp, code)
            raise smtplib.SMTPRecipientsRefused({mail.recipient: (code, reply)})
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            _rset_or_close(smtp, code)
            raise smtplib.SMTPDataError(code, reply)

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with suppress(OSError):
                smtp.close()

    def _throttle(self) -> None:
        rate = self.settings.messages_per_second
        if rate <= 0:
            return
        pause = self._last_send + 1 / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._last_send = time.monotonic()

    def _tls_context(self) -> ssl.SSLContext:
        # create_default_context verifies the certificate and the host name; smtplib does not
        # unless it is given a context.
        context = ssl.create_default_context()
        if self.settings.ca_file:
            try:
                context.load_verify_locations(cafile=self.settings.ca_file)
            except (OSError, ssl.SSLError):
                raise ConfigError("mail.smtp.ca_file", f"cannot read {self.settings.ca_file}",
                                  "Point it at a PEM file with the CA certificate") from None
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds,
                                        context=self._tls_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
                if s.security == "starttls":
                    smtp.starttls(context=self._tls_context())
            if s.username:
                self._login(smtp)
            return smtp
        except ssl.SSLCertVerificationError as exc:
            _close_quietly(smtp)
            raise ConfigError("mail.smtp", f"the TLS certificate of {s.host} could not be "
                                           f"verified ({exc.verify_message})",
                              "If the server uses a private CA, set mail.smtp.ca_file to its "
                              "certificate; verification is never switched off") from None
        except smtplib.SMTPNotSupportedError:
            _close_quietly(smtp)
            raise ConfigError("mail.smtp.security", f"{s.host} does not offer STARTTLS",
                              'Use security = "ssl" (usually port 465), or ask the mail '
                              "administrator") from None
        except BaseException:
            _close_quietly(smtp)
            raise

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        password = s.password.resolve().get_secret_value() if s.password else ""
        try:
            smtp.login(s.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code < 500:
                raise   # 454: a temporary failure, retried like any 4xx
            raise AuthError(f"the SMTP server {s.host} refused the login ({exc.smtp_code}); "
                            "check mail.smtp.username and the password secret") from None
        except smtplib.SMTPNotSupportedError:
            raise AuthError(f"the SMTP server {s.host} offers no login (AUTH) here; remove "
                            "mail.smtp.username or use security = \"starttls\"") from None


def _dot_stuffed(data: bytes) -> bytes:
    """The message as smtplib's DATA sends bytes: lines starting with "." doubled, ending in
    CRLF "." CRLF (the stored bytes already have CRLF line ends)."""
    quoted = re.sub(rb"(?m)^\.", b"..", data)
    if not quoted.endswith(CRLF):
        quoted += CRLF
    return quoted + b"." + CRLF


def _rset_quietly(smtp: smtplib.SMTP) -> None:
    with suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _rset_or_close(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:   # the server is closing the connection
        smtp.close()
    else:
        _rset_quietly(smtp)


def masked_reply(code: int, text: str | bytes | None) -> str:
    """A server reply fit to keep: its code and text, any address in it masked (servers often
    quote the recipient)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join((text or "").split())
    return f"{code} {_ADDRESS.sub('<address>', text)}".strip()[:300]


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with suppress(OSError):
            smtp.close()


def _classify(exc: BaseException, message_id: str,
              attempts: int) -> RetriableError | PermanentMailError | AuthError:
    # Server texts are left out: they often quote the recipient's address.
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        stage, suppress_address = "RCPT", code in SUPPRESS_CODES
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, text = exc.smtp_code, exc.smtp_error
        stage = "MAIL FROM" if isinstance(exc, smtplib.SMTPSenderRefused) else "DATA"
        suppress_address = False
    elif _transient(exc):
        return RetriableError(f"could not hand {message_id} to the SMTP server after {attempts} "
                              f"attempts ({type(exc).__name__}); it will be tried again later",
                              reply=f"no answer ({type(exc).__name__})")
    else:
        return PermanentMailError(f"SMTP refused {message_id} ({type(exc).__name__})", 0)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    enhanced = _ENHANCED.match(text or "")
    detail = f"{code}{' ' + enhanced[1] if enhanced else ''} at {stage}"
    if 400 <= code < 500:
        return RetriableError(f"the SMTP server deferred {message_id} ({detail}) after "
                              f"{attempts} attempts; it will be tried again later", status=code,
                              reply=f"{masked_reply(code, text)} (at {stage})")
    if code == 535:
        return AuthError(f"the SMTP server refused the login ({detail})")
    return PermanentMailError(f"the SMTP server refused {message_id} permanently ({detail})",
                              code, suppress_address)


def make_transport(config: Config) -> Transport:
    if config.mail.transport == "smtp":
        settings = config.mail.smtp
        if settings.ca_file:   # relative to the config file, like every other path
            settings = settings.model_copy(update={"ca_file": str(config.path(settings.ca_file))})
        return SmtpTransport(settings)
    return FileTransport(config.path(config.mail.outbox_dir))
