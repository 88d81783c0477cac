"""Configuration: one TOML file, read with tomllib and validated by pydantic.

Every error names the key path (`sources[1].client_secret`) and says how to fix it. Relative
paths are resolved against the folder of the configuration file, so a config works from any cwd.
Secrets are references (see secrets.py); they are resolved only when a component needs them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from relay_core.errors import ConfigError
from relay_core.secrets import SecretRef, secret_field

DEFAULT_CONFIG = "career-relay.toml"

# A mail's language: one of the two template sets, or both in one message (Japanese first),
# the common practice in Japan when the reader's language is not known.
MailLanguage = Literal["ja", "en", "bilingual"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _one_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("write it on one line, without control characters")
    return value.strip()


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)



class Company(Section):
    name: str = "株式会社サンプル"
    legal_name: str = ""
    address: str = ""
    representative: str = ""
    sender: str = "採用担当 <recruit@example.co.jp>"
    reply_to: str = "recruit@example.co.jp"
    timezone: str = "Asia/Tokyo"
    locale: Literal["ja", "en"] = "ja"
    privacy_policy_url: str = ""
    signature: str = ""          # extra lines under the sender name in emails
    # The language of a mail when neither the ATS nor the source says: "ja", "en" or
    # "bilingual" (Japanese first, then English, in one message). Unset: `locale`.
    default_language: MailLanguage | None = None
    # What English mails show instead of the Japanese company name, sender name and signature.
    name_en: str = ""
    sender_name_en: str = ""     # the display name of `sender` in English mails; same address
    signature_en: str = ""

    _single_line = field_validator("name_en", "sender_name_en")(
        lambda cls, value: _one_line(value))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as "
                             "\"Asia/Tokyo\" or \"Europe/Berlin\"") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def mail_language(self) -> str:
        """The language of a mail nobody gave one for: `default_language`, else `locale`."""
        return self.default_language or self.locale


class Store(Section):
    url: str = "sqlite:///career-relay.db"


_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class Schedule(Section):
    delay_hours: float = Field(24, ge=0, le=72)
    business_hours: str = "10:00-18:00"
    deadline_business_days: int = Field(3, ge=1, le=10)
    holidays: str = "JP"
    business_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])  # Mon=0
    hold_for_approval: bool = False

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if value == "always":
            return value
        m = _HOURS.match(value.replace(" ", ""))
        if not m or not (0 <= int(m[1]) < 24 and 0 <= int(m[3]) <= 24
                         and int(m[2]) < 60 and int(m[4]) < 60):
            raise ValueError("write business hours as \"HH:MM-HH:MM\" (e.g. \"10:00-18:00\") "
                             "or \"always\"")
        if (int(m[1]), int(m[2])) >= (int(m[3]), int(m[4])):
            raise ValueError("business hours must end after they start")
        return value

    @field_validator("holidays")
    @classmethod
    def _country(cls, value: str) -> str:
        import holidays

        if value and value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"no holiday calendar for country {value!r}; use an ISO code "
                             "such as \"JP\", \"US\" or \"DE\", or \"\" for none")
        return value.upper()

    @property
    def window(self) -> tuple[time, time] | None:
        if self.business_hours == "always":
            return None
        m = _HOURS.match(self.business_hours.replace(" ", ""))
        end = time(23, 59, 59) if int(m[3]) == 24 else time(int(m[3]), int(m[4]))
        return time(int(m[1]), int(m[2])), end


class Eligibility(Section):
    max_age_days: int = Field(14, ge=1)
    person_cooldown_days: int = Field(180, ge=0)
    skip_agency_sourced: bool = True
    # Rejection categories (or raw reason ids) that get the courteous email without the invitation.
    no_invitation_reasons: list[str] = Field(default_factory=list)
    # A job hidden from other employees inside the ATS: the candidate still knows the role and
    # is owed an answer. "mail" (the default) or "skip".
    confidential_jobs: Literal["mail", "skip"] = "mail"
    # The same person still in process for another position in the same ATS instance:
    # "no_invitation" mails the rejection on time without the relay invitation (the default),
    # "hold" waits for HR's approval, "skip" sends nothing.
    in_process_elsewhere: Literal["no_invitation", "hold", "skip"] = "no_invitation"


class Smtp(Section):
    host: str = "localhost"
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: SecretRef | None = None
    timeout_seconds: float = 30
    retries: int = Field(3, ge=0, le=10)
    messages_per_second: float = Field(0, ge=0)  # 0 = no client-side limit
    connections: int = Field(4, ge=1, le=16)     # parallel SMTP connections for a batch
    ca_file: str = ""   # a private CA bundle, e.g. for a relay with an internal certificate
    # The provider's daily quota (reference/privacy_email.md sec. 3.8): at most this many
    # outbox messages in any 24 hours; the rest wait for the next day. 0 = no limit.
    max_per_day: int = Field(0, ge=0, le=1_000_000)

    _secret = field_validator("password", mode="before")(secret_field)

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> Smtp:
        if self.security == "none" and self.password is not None and self.host not in (
                "localhost", "127.0.0.1", "::1"):
            raise ValueError("security = \"none\" would send the password in clear text; "
                             "use \"starttls\" or \"ssl\"")
        return self


class Reapply(Section):
    """The optional "you are welcome to apply again" block, one of the email's next options."""

    enabled: bool = False
    after_months: int = Field(6, ge=0, le=60)   # 0: a new application is welcome at any time
    careers_url: str = ""                       # the careers page; "" shows no link

    @field_validator("careers_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError("write the careers page's address, e.g. "
                             "\"https://example.co.jp/careers\"")
        return value


class Mail(Section):
    transport: Literal["file", "smtp"] = "file"
    outbox_dir: str = "outbox"
    mode: Literal["full", "invite_only"] = "full"
    templates_dir: str = ""         # a folder whose files override the shipped templates
    message_id_domain: str = ""     # defaults to the sender's domain
    smtp: Smtp = Field(default_factory=Smtp)
    # A source's designated feedback field (its `feedback_field`): free text written by
    # interviewers, so by default a second person approves each such mail before it goes.
    feedback_requires_approval: bool = True
    feedback_max_chars: int = Field(800, ge=50, le=4000)
    reapply: Reapply = Field(default_factory=Reapply)
    # An email handed to the server whose answer never came (a crash or a dropped connection
    # after DATA) may have been delivered: "hold" keeps it `ambiguous` (counted as mailed,
    # shown in status) until `career-relay resend --case`; "resend" re-queues every one at
    # the start of the next run, accepting a possible duplicate.
    on_ambiguous: Literal["hold", "resend"] = "hold"
    # A temporary failure (SMTP 4xx, the server unreachable) is retried with backoff until
    # this many business days after the case's deadline (or after the first failure, when
    # later); then the case fails with the server's last reply and `run` exits 1.
    give_up_business_days: int = Field(1, ge=0, le=30)


class Relay(Section):
    enabled: bool = True
    public_base_url: str = "https://relay.example.co.jp"
    signing_key: SecretRef | None = None
    invitation_ttl_days: int = Field(30, ge=1, le=365)

    _secret = field_validator("signing_key", mode="before")(secret_field)

    @field_validator("public_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError("write the public address the candidate will open, e.g. "
                             "\"https://relay.example.co.jp\"")
        return value.rstrip("/")


class Web(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    cycle_minutes: int = Field(10, ge=1)
    max_body_bytes: int = 1_000_000


class SourceConfig(BaseModel):
    """The common keys of a `[[sources]]` block; the connector validates the rest."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    type: str
    enabled: bool = True
    # The mail's language for this source when the ATS gives none (before company's default).
    language: MailLanguage | None = None
    # Job titles as the candidate should read them: {"ATS title" = "title"} or
    # {"ATS title" = {ja = "…", en = "…"}}; an internal code never reaches a candidate.
    job_titles: dict[str, str | dict[Literal["ja", "en"], str]] = Field(default_factory=dict)

    @field_validator("job_titles")
    @classmethod
    def _titles(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, title in value.items():
            for text in (title.values() if isinstance(title, dict) else [title]):
                if not text.strip() or _CONTROL.search(text):
                    raise ValueError(f"the title for {key!r} must be one non-empty line")
        return value

    def job_title(self, title: str, language: str) -> str:
        """`title` as `job_titles` maps it for a mail in `language` ("ja" or "en")."""
        mapped = self.job_titles.get(title.strip())
        if isinstance(mapped, dict):
            return mapped.get(language) or mapped.get("ja") or mapped.get("en") or title
        return mapped or title

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,39}$", value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (it appears in URLs)")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Agency(Section):
    id: str
    legal_name: str = ""
    address: str = ""
    representative: str = ""
    country: str = ""
    licence_number: str = ""
    deletion_contact: str = ""
    purpose: str = ""
    protection_regime: str = ""     # outside Japan: the country's data-protection regime
    protection_measures: str = ""   # outside Japan: the measures this agency takes
    channel: Literal["webhook", "email", "redirect"] = "redirect"
    url: str = ""
    email: str = ""
    secret: SecretRef | None = None
    fields: list[str] = Field(default_factory=lambda: ["name", "email"])
    # Handoff (relay_core/handoff): webhook attempts before a handoff is `dead`, and the
    # agency's own registration form for the `redirect` channel.
    max_attempts: int = Field(8, ge=1, le=50)
    register_url: str = ""
    # How long the agency keeps what it receives, in the candidate's words (shown on the consent
    # page), e.g. "ご登録から2年間" / "two years after registration". Required for the webhook and
    # email channels; a redirect agency receives nothing from us.
    retention: str = ""

    _secret = field_validator("secret", mode="before")(secret_field)

    def missing_disclosures(self) -> list[str]:
        required = ["legal_name", "address", "representative", "country", "deletion_contact"]
        if self.channel != "redirect":
            required.append("retention")
        if self.country.upper() == "JP":
            required.append("licence_number")
        elif self.country.strip():
            # APPI Art. 28(2): before consenting to a transfer abroad, the candidate is told
            # the country's protection regime and the measures the recipient takes.
            required += ["protection_regime", "protection_measures"]
        return [k for k in required if not getattr(self, k).strip()]


def _plain_line(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise ValueError(f"write {what} on one line, without control characters")
    return value


class LegalReview(Section):
    """The legal review that lets the ledger compute credits (職業安定法: a referral-for-value
    model may be unlicensed paid placement; reference/privacy_email.md sec. 1.8(b)-(c), sec. 6
    item 12). Every field is checked by `career-relay check`; the first credit computed under a
    review writes it to the audit log, and `career-relay report` shows it."""

    reviewer: str = Field("", validate_default=True, max_length=200)
    reviewed_on: date | None = Field(None, validate_default=True)
    document: str = Field("", validate_default=True, max_length=200)
    # 特定募集情報等提供事業の届出の受理番号, where the relay operator has filed one.
    notification_number: str = Field("", max_length=40)

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, value: str) -> str:
        value = _plain_line(value, "the reviewer")
        if not value:
            raise ValueError("write who reviewed the credit model, e.g. \"弁護士 田中一郎（田中法律"
                             "事務所）\"")
        return value

    @field_validator("reviewed_on", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if value in (None, ""):
            raise ValueError("write the day of the review as a date, e.g. reviewed_on = "
                             "2025-06-01")
        return value

    @field_validator("reviewed_on")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > date.today():
            raise ValueError(f"{value.isoformat()} lies in the future; write the day the "
                             "review was done")
        return value

    @field_validator("document")
    @classmethod
    def _document(cls, value: str) -> str:
        value = _plain_line(value, "the document reference")
        if not value:
            raise ValueError("write the reference of the written opinion or memo, e.g. "
                             "\"意見書 2025-014\"")
        return value

    @field_validator("notification_number")
    @classmethod
    def _number(cls, value: str) -> str:
        value = _plain_line(value, "the notification number")
        if value and not any(c.isdigit() for c in value):
            raise ValueError("write the 受理番号 of the 特定募集情報等提供事業 notification as "
                             "the labour bureau issued it, or leave it \"\" when none applies")
        return value

    def as_dict(self) -> dict[str, str]:
        return {"reviewer": self.reviewer, "reviewed_on": self.reviewed_on.isoformat(),
                "document": self.document, "notification_number": self.notification_number}

    @property
    def fingerprint(self) -> str:
        """Names this attestation: a changed review is a new attestation, audited anew."""
        data = json.dumps(self.as_dict(), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    def summary(self) -> str:
        text = f"{self.reviewer}, {self.reviewed_on.isoformat()}, {self.document}"
        return text + (f", 届出受理番号 {self.notification_number}"
                       if self.notification_number else "")


class Ledger(Section):
    """Credits from agency events (relay_core/records/ledger.py). Off unless a legal review is
    recorded under [ledger.legal_review]: per-candidate consideration may make the relay look
    like unlicensed paid placement (職業安定法; reference/privacy_email.md sec. 1.8(c) and sec. 6
    item 12). Without it the ledger still records agency events, and computes no credits."""

    rule: Literal["off", "per_registrations", "per_placement"] = "off"
    per_registrations: int = Field(10, ge=1, le=1000)
    yen_per_credit: int = Field(0, ge=0)
    legal_review: LegalReview | None = None
    # Before [ledger.legal_review]: free text. Still read so old files load; it no longer
    # switches credits on.
    legal_review_attested: str = ""

    @field_validator("legal_review_attested", mode="before")
    @classmethod
    def _attestation(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("record the review under [ledger.legal_review] (reviewer, "
                             "reviewed_on, document), not true/false")
        return value

    @model_validator(mode="after")
    def _attested(self) -> Ledger:
        if self.rule != "off" and self.legal_review is None:
            old = (" (legal_review_attested, free text, no longer does)"
                   if self.legal_review_attested.strip() else "")
            raise ConfigError(
                "ledger.legal_review",
                f"credit accounting (rule = \"{self.rule}\") stays off until a legal review "
                f"is recorded{old}",
                "Add [ledger.legal_review] with reviewer, reviewed_on, document and, where one "
                "applies, notification_number (see config.example.toml); or set rule = \"off\"")
        return self

    @property
    def enabled(self) -> bool:
        return self.rule != "off" and self.legal_review is not None


class Retention(Section):
    # Days after the rejection that the connector keeps the candidate's own data.
    candidate_days: int = Field(180, ge=1, le=3650)
    # `run` and `serve` purge what is past retention at most once a day (records/retention.py);
    # false: only `career-relay purge` does, e.g. from your own timer.
    purge_daily: bool = True


class AdminOidc(Section):
    """Optional sign-in through the company's identity provider (OpenID Connect, code flow with
    PKCE). The provider must vouch for an email address that a console account carries
    (`career-relay admin add NAME --email ADDRESS`)."""

    issuer: str = ""                # e.g. "https://login.example.co.jp/realms/hr"; "" = off
    client_id: str = ""
    client_secret: SecretRef | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    label: str = ""                 # the button, e.g. "社内アカウントでサインイン"

    _secret = field_validator("client_secret", mode="before")(secret_field)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        loopback = re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", value)
        if value and not (value.startswith("https://") or loopback):
            raise ValueError("write the provider's issuer URL, https://… (its discovery "
                             "document is ISSUER/.well-known/openid-configuration)")
        return value

    @model_validator(mode="after")
    def _client(self) -> AdminOidc:
        if self.issuer and not self.client_id:
            raise ValueError("client_id is required when issuer is set: register Career Relay "
                             "as an application with your identity provider")
        if self.issuer and "openid" not in self.scopes:
            raise ValueError("scopes must include \"openid\"")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


class Admin(Section):
    """The HR console at /admin/ in `career-relay serve` (relay_core/web/admin)."""

    enabled: bool = True
    session_hours: int = Field(12, ge=1, le=168)          # a sign-in lasts at most this long
    idle_minutes: int = Field(30, ge=5, le=1440)          # and ends after this much inactivity
    max_failed_sign_ins: int = Field(5, ge=1, le=100)     # in a row; then the account locks
    lockout_minutes: int = Field(15, ge=1, le=1440)
    oidc: AdminOidc = Field(default_factory=AdminOidc)


class Config(Section):
    company: Company = Field(default_factory=Company)
    store: Store = Field(default_factory=Store)
    schedule: Schedule = Field(default_factory=Schedule)
    eligibility: Eligibility = Field(default_factory=Eligibility)
    mail: Mail = Field(default_factory=Mail)
    relay: Relay = Field(default_factory=Relay)
    web: Web = Field(default_factory=Web)
    sources: list[SourceConfig] = Field(default_factory=list)
    agencies: list[Agency] = Field(default_factory=list)
    ledger: Ledger = Field(default_factory=Ledger)
    retention: Retention = Field(default_factory=Retention)
    admin: Admin = Field(default_factory=Admin)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for label, items, attr in (("sources", self.sources, "name"),
                                   ("agencies", self.agencies, "id")):
            seen: set[str] = set()
            for i, item in enumerate(items):
                value = getattr(item, attr)
                if value in seen:
                    raise ConfigError(f"{label}[{i}].{attr}", f"{value!r} is used twice",
                                      "Give every entry its own name")
                seen.add(value)
        return self

    def path(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def store_url(self) -> str:
        url = self.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:" and not url.startswith(
                prefix + "/"):
            return prefix + str(self.path(url[len(prefix):]).resolve())
        return url

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError("sources", f"no source named {name!r}",
                          "Check the name against the [[sources]] blocks")


def key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fix_for(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against config.example.toml"
    if kind == "missing":
        return "this key is required; see config.example.toml"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def validation_to_config_error(exc: ValidationError, prefix: tuple = ()) -> ConfigError:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        problems.append(f"{key_path(prefix + tuple(err['loc']))}: {_fix_for(err)}")
    first = exc.errors(include_url=False, include_input=False)[0]
    error = ConfigError("", "; ".join(problems))
    error.key = key_path(prefix + tuple(first["loc"]))
    return error


def parse_config(data: dict[str, Any], base_dir: Path) -> Config:
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise validation_to_config_error(exc) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError("", f"configuration file {path} not found",
                          "Create one with `career-relay init`, or pass --config PATH")
    try:
        # utf-8-sig: Windows editors save UTF-8 with a byte-order mark; tomllib refuses it.
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except IsADirectoryError:
        raise ConfigError("", f"{path} is a folder, not a configuration file",
                          "Pass the file itself, e.g. --config career-relay.toml") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read {path} ({exc.strerror or exc})",
                          "Check the path and its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML ({exc})",
                          "Fix the syntax at the line shown") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8", "Save the file as UTF-8") from None
    if not data:
        raise ConfigError("", f"{path} is empty (or only comments)",
                          "Start from config.example.toml, or create one with `career-relay "
                          "init`")
    return parse_config(data, path.resolve().parent)


def require_sources(config: Config) -> None:
    """`run` and `serve` need something to relay from: at least one enabled [[sources]]."""
    if not config.sources:
        raise ConfigError("sources", "no [[sources]] table, so there is nothing to poll or "
                          "receive", "Add a [[sources]] table for your ATS (see the commented "
                          "ones in config.example.toml), or run `career-relay init`")
    if not any(s.enabled for s in config.sources):
        raise ConfigError("sources", "every [[sources]] table has enabled = false, so there is "
                          "nothing to poll or receive", "Set enabled = true on at least one")
