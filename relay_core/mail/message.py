"""Building one email. Headers go only through the email package: EmailMessage and
headerregistry.Address, or (build_mail, the pipeline's) mime.py, which writes the same bytes
with the same policy's header parsing and folding, without the generator.

ATS data (names, job titles) can hold anything, and a CR/LF in a name must never become a header
(`Bcc: ...`). Python refuses raw CR/LF in header values, but encoded line breaks slipped through
its generator until CVE-2024-6923 was fixed (3.11.10, 3.12.5, 3.13.0). So we do not rely on the
interpreter: control characters and encoded line breaks are refused before building, and the
built message is parsed back to check that it carries exactly the headers we wrote.

Errors: a bad per-message value is a FatalError (this case fails, the run goes on) naming the
field, never its value; a bad `company.sender` / `company.reply_to` is a ConfigError.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, parseaddr
from typing import NamedTuple

from relay_core.config import Config
from relay_core.errors import ConfigError, FatalError
from relay_core.mail import mime


class _Headers(HeaderRegistry):
    """The standard header registry, but each header class made once (the stock one makes a
    new class with type() for every header) and each header value parsed once: most headers
    are the same in every mail of a run (From, Reply-To, Date, the MIME headers), and parsing
    them was a third of building a mail. Header objects are immutable, so sharing is safe."""

    LIMIT = 256   # values kept (a parsed header is a few KB); the per-mail ones pass through

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}
        self._values: dict[tuple, BaseHeader] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made

    def __call__(self, name: str, value: object) -> BaseHeader:
        if isinstance(value, str):
            key: tuple = (name, value)
        elif isinstance(value, Address):   # the header is made from str(value)
            key = (name, value.display_name, value.username, value.domain)
        else:
            return super().__call__(name, value)
        header = self._values.get(key)
        if header is None:
            if len(self._values) >= self.LIMIT:
                self._values.clear()
            header = self._values[key] = super().__call__(name, value)
        return header


class _Policy(email.policy.EmailPolicy):
    """Folds each header object once per policy: folding (with RFC 2047 encoding) was the
    other third, and a shared header folds the same every time."""

    def fold_binary(self, name: str, value: object) -> bytes:
        folded = getattr(value, "_relay_folded", None)
        if folded is not None and folded[0] is self:
            return folded[1]
        data = super().fold_binary(name, value)
        if isinstance(value, BaseHeader):
            value._relay_folded = (self, data)   # type: ignore[attr-defined]
        return data


# CRLF line ends for SMTP; cte_type "7bit" makes set_content choose base64 or quoted-printable
# for UTF-8 bodies, so no 8BITMIME support is needed on the way.
POLICY = _Policy(linesep="\r\n", cte_type="7bit", header_factory=_Headers())

# An RFC 2047 encoded word, a URL-encoded or quoted-printable CR/LF: never legitimate in a name.
_ENCODED_BREAK = re.compile(r"=\?[^?\s]*\?[bq]\?|%0[ad]|=0[ad]", re.IGNORECASE)
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MESSAGE_ID = re.compile(r"^<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+>$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Content-Language (RFC 3282) of a mail: a bilingual one holds Japanese, then English.
CONTENT_LANGUAGE = {"ja": "ja", "en": "en", "bilingual": "ja, en"}
_PATCHED = {(3, 11): (3, 11, 10), (3, 12): (3, 12, 5)}
_FIRST_FIXED_MINOR = (3, 13, 0)
FIXED_RELEASES = "3.11.10, 3.12.5, 3.13.0"


def has_unsafe_chars(value: str) -> bool:
    """Control characters (CR, LF, TAB, NUL, ...), Unicode line separators or encoded breaks."""
    return (any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)
            or bool(_ENCODED_BREAK.search(value)))


def _domain(domain: str) -> str | None:
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253 or not all(_LABEL.match(x) for x in labels):
        return None
    return ascii_domain


def validate_address(addr: str) -> str | None:
    """The address normalised (domain lower-case, IDNA), or None when it is not usable."""
    if not isinstance(addr, str):
        return None
    addr = addr.strip(" ")   # a stray CR/LF is suspicious, not whitespace to tidy away
    if has_unsafe_chars(addr) or addr.count("@") != 1 or any(c.isspace() for c in addr):
        return None
    local, domain = addr.split("@")
    if (not local or len(local) > 64 or not _LOCAL_PART.match(local)
            or local.startswith(".") or local.endswith(".") or ".." in local):
        return None
    normal_domain = _domain(domain)
    return f"{local}@{normal_domain}" if normal_domain else None


def make_message_id(case_key: str, kind: str, domain: str) -> str:
    """One Message-ID per case and kind, the same on every retry, so receivers can drop a
    duplicate. The case key is hashed: it names the ATS application, which is nobody's business."""
    normal = _domain(domain or "")
    if normal is None:
        raise ConfigError("mail.message_id_domain", "is not a domain name",
                          'Write the sending domain, e.g. "example.co.jp"')
    digest = hashlib.sha256(f"{case_key}|{kind}".encode()).hexdigest()[:32]
    return f"<relay.{digest}@{normal}>"


def message_id_domain(config: Config) -> str:
    if config.mail.message_id_domain:
        return config.mail.message_id_domain
    if validate_address(parseaddr(config.company.sender)[1]) is None:
        # The domain comes from the sender: name the key the user has to fix.
        _mailbox_from_config("company.sender", config.company.sender)
    return parseaddr(config.company.sender)[1].rpartition("@")[2]


def _mailbox_from_config(key: str, value: str) -> Address:
    if has_unsafe_chars(value):
        raise ConfigError(key, "contains a line break or a control character",
                          "Write it on one line")
    name, addr = parseaddr(value)
    normal = validate_address(addr)
    if normal is None:
        raise ConfigError(key, "is not a valid email address",
                          'Write it as "採用担当 <recruit@example.co.jp>" or a bare address')
    return _address(name, normal)


def sender_name(config: Config, language: str) -> str:
    """The sender's display name in a mail of `language`; the address never changes.
    English: `company.sender_name_en`; without it the configured name, unless that is written in
    Japanese, then a plain "Recruiting Team". Bilingual: "日本語 / English" when the two differ."""
    name = parseaddr(config.company.sender)[0]
    if language == "ja":
        return name or "採用担当"
    english = config.company.sender_name_en or (
        name if name and not _CJK.search(name) else "Recruiting Team")
    if language == "en":
        return english
    japanese = name or "採用担当"
    return japanese if japanese == english else f"{japanese} / {english}"


def _address(name: str, addr: str) -> Address:
    username, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=username, domain=domain)


def _require_safe(field: str, value: str) -> None:
    if not isinstance(value, str) or has_unsafe_chars(value):
        raise FatalError(f"{field} contains a line break, a control character or an encoded "
                         "line break; refusing to build the message")


@dataclass(frozen=True, repr=False)
class OutgoingMail:
    """A finished message as the transports take it: envelope plus the exact bytes, so a retry
    sends byte for byte what was first built (and nothing is re-parsed on the way)."""

    message_id: str
    sender: str
    recipient: str
    data: bytes

    def __repr__(self) -> str:
        return f"OutgoingMail({self.message_id}, {len(self.data)} bytes)"

    @classmethod
    def from_message(cls, msg: EmailMessage) -> OutgoingMail:
        message_id = str(msg.get("Message-ID") or "").strip()
        if not message_id:
            raise FatalError("the message has no Message-ID; build it with build_message()")
        return cls(message_id, msg["From"].addresses[0].addr_spec,
                   msg["To"].addresses[0].addr_spec, serialize(msg))


def serialize(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=POLICY)


def build_mail(config: Config, *, to_addr: str, to_name: str, subject: str, text: str,
               html: str, message_id: str, date: datetime,
               language: str | None = None) -> OutgoingMail:
    """What the pipeline stores and sends: build_message()'s bytes, written by mime.py (the
    same bytes; the headers still go through the email package) and checked."""
    fields = _checked(config, to_addr=to_addr, to_name=to_name, subject=subject,
                      message_id=message_id, date=date, language=language)
    top: list[tuple[str, object]] = [("From", fields.sender), ("To", fields.to)]
    if fields.reply_to is not None:
        top.append(("Reply-To", fields.reply_to))
    top += [("Subject", subject), ("Date", format_datetime(date)), ("Message-ID", message_id)]
    after: list[tuple[str, object]] = []
    if language in CONTENT_LANGUAGE:
        after.append(("Content-Language", CONTENT_LANGUAGE[language]))
    data = mime.write_alternative(POLICY, top, after, text, html)
    _verify_headers([name for name, _ in top] + ["MIME-Version", "Content-Type"]
                    + [name for name, _ in after], data)
    return OutgoingMail(message_id, fields.sender.addr_spec, fields.to.addr_spec, data)


def build_message(config: Config, *, to_addr: str, to_name: str, subject: str, text: str,
                  html: str, message_id: str, date: datetime,
                  language: str | None = None) -> EmailMessage:
    msg = _assemble(config, to_addr=to_addr, to_name=to_name, subject=subject, text=text,
                    html=html, message_id=message_id, date=date, language=language)
    _verify_headers(list(msg.keys()), serialize(msg))
    return msg


class _Fields(NamedTuple):
    sender: Address
    to: Address
    reply_to: Address | None


_senders: dict[tuple, tuple[Address, Address | None]] = {}


def _checked(config: Config, *, to_addr: str, to_name: str, subject: str, message_id: str,
             date: datetime, language: str | None) -> _Fields:
    """The per-message values refused or normalised, and the From, To and Reply-To mailboxes.
    `language` ("ja", "en", "bilingual") sets the sender's display name for that language;
    None leaves it as configured (agency mail, the confirmation of an older release)."""
    for field, value in (("to_name", to_name), ("to_addr", to_addr), ("subject", subject),
                         ("message_id", message_id)):
        _require_safe(field, value)
    recipient = validate_address(to_addr)
    if recipient is None:
        raise FatalError("to_addr is not a valid email address")
    if not _MESSAGE_ID.match(message_id):
        raise FatalError("message_id must look like <id@domain>")
    if date.tzinfo is None:
        raise FatalError("date must carry a timezone")
    company = config.company
    key = (company.sender, company.sender_name_en, company.reply_to, language)
    mailboxes = _senders.get(key)   # the same for every mail of a run: parsed once
    if mailboxes is None:
        sender = _mailbox_from_config("company.sender", company.sender)
        if language in CONTENT_LANGUAGE:
            display = sender_name(config, language)
            _require_safe("company.sender_name_en", display)
            sender = _address(display, sender.addr_spec)
        reply_to = (_mailbox_from_config("company.reply_to", company.reply_to)
                    if company.reply_to else None)
        mailboxes = (sender, reply_to)
        if len(_senders) < 64:
            _senders[key] = mailboxes
    return _Fields(mailboxes[0], _address(to_name, recipient), mailboxes[1])


def _assemble(config: Config, *, to_addr: str, to_name: str, subject: str, text: str,
              html: str, message_id: str, date: datetime,
              language: str | None = None) -> EmailMessage:
    """The message as an EmailMessage; `language` as in _checked, and Content-Language."""
    fields = _checked(config, to_addr=to_addr, to_name=to_name, subject=subject,
                      message_id=message_id, date=date, language=language)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = fields.sender
    msg["To"] = fields.to
    if fields.reply_to is not None:
        msg["Reply-To"] = fields.reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    if language in CONTENT_LANGUAGE:
        # After the parts: set_content clears Content-* headers, add_alternative moves them.
        msg["Content-Language"] = CONTENT_LANGUAGE[language]
    return msg


def _verify_headers(wrote: list[str], data: bytes) -> None:
    # The last line of defence on an unpatched interpreter: what a receiver would parse must be
    # exactly what we set, one recipient and no extra header. Only the top-level header block
    # is read, with the fast compat32 parser: the full parse cost more than building the mail.
    # The parser reads headers up to the first empty line, so it is given just that much.
    end = data.find(b"\r\n\r\n")
    parsed = BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        data if end < 0 else data[:end + 2])
    if (sorted(k.lower() for k in parsed.keys()) != sorted(k.lower() for k in wrote)
            or len(getaddresses(parsed.get_all("To", []))) != 1):
        raise FatalError("the generated message carries headers that were not set; refusing to "
                         "send it (run `career-relay check` to see whether Python needs updating)")


def header_fix_present() -> bool:
    """Whether this interpreter's email package has the CVE-2024-6923 fix. Asked of the code,
    not the version number: distributions backport the fix (Debian's 3.11.2 has it), and the
    fix added `verify_generated_headers` to the email policies."""
    return hasattr(email.policy.compat32, "verify_generated_headers")


def check_interpreter(version: tuple[int, ...] | None = None) -> str | None:
    """Why this Python must not send mail (it lacks the CVE-2024-6923 fix for email header
    injection), or None. With `version`, judged by the version number alone."""
    current = tuple((version or sys.version_info)[:3])
    patched = _PATCHED.get(current[:2], _FIRST_FIXED_MINOR)
    if current >= patched or (version is None and header_fix_present()):
        return None
    return (f"Python {'.'.join(map(str, current))} lacks the fix for CVE-2024-6923 (email header "
            f"injection). It is fixed in Python {FIXED_RELEASES} and later (or in a "
            "distribution's build with the fix backported): install one of those and run "
            "`career-relay check` again.")
