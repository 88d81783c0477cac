"""`career-relay init`: write a configuration file that passes `career-relay check` except for
the secrets it names (and says how to set).

Three ways: questions at a terminal (each answer may also be a flag), `--yes` with flags and
defaults for the rest (scripts, Ansible), or `--example`, the complete commented example with
the sample HRMOS export it reads (what a `pip install` user lacks). Secrets are written as
`env:VARIABLE` references: they work with a systemd EnvironmentFile (deploy/) and with
`career-relay secrets set` once replaced by `keyring:career-relay/NAME`.

The relay invitation is switched on only when the company's legal details, a privacy policy
and one complete agency are given; otherwise it stays off and the file says why.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import typer

from relay_core.config import load_config
from relay_core.errors import ConfigError
from relay_core.rendering.environment import shipped_templates_dir

SOURCE_TYPES = ("hrmos_export", "greenhouse", "lever", "herp", "talentio")
CHANNELS = ("redirect", "email", "webhook")
# Secrets each source type needs, as (key, environment variable).
SOURCE_SECRETS = {
    "greenhouse": [("client_id", "GREENHOUSE_CLIENT_ID"),
                   ("client_secret", "GREENHOUSE_CLIENT_SECRET")],
    "lever": [("api_key", "LEVER_API_KEY")],
    "herp": [("api_key", "HERP_API_KEY")],
    "talentio": [("api_token", "TALENTIO_API_TOKEN")],
}


@dataclass
class Answers:
    company: str | None = None
    legal_name: str | None = None
    address: str | None = None
    representative: str | None = None
    sender: str | None = None
    reply_to: str | None = None
    timezone: str | None = None
    locale: str | None = None
    privacy_url: str | None = None
    public_url: str | None = None
    source_type: str | None = None
    source_name: str | None = None
    export_path: str | None = None
    greenhouse_user_id: int | None = None
    agency_id: str | None = None
    agency_legal_name: str | None = None
    agency_address: str | None = None
    agency_representative: str | None = None
    agency_country: str | None = None
    agency_licence: str | None = None
    agency_deletion_contact: str | None = None
    agency_channel: str | None = None
    agency_target: str | None = None
    agency_retention: str | None = None
    relay: bool | None = None


@dataclass
class InitResult:
    notes: list[str] = field(default_factory=list)


DEFAULTS = {
    "company": "株式会社サンプル", "sender": "採用担当 <recruit@example.co.jp>",
    "timezone": "Asia/Tokyo", "locale": "ja", "public_url": "https://relay.example.co.jp",
    "source_type": "hrmos_export", "export_path": "exports/", "agency_channel": "redirect",
    "agency_country": "JP",
}


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _interview(a: Answers) -> None:
    """Ask for every answer not given as a flag; an empty answer keeps the default."""
    def ask(attr: str, question: str, default: str = "") -> None:
        if getattr(a, attr) is None:
            setattr(a, attr, typer.prompt(question, default=default or "",
                                          show_default=bool(default)).strip())

    ask("company", "Company name shown in emails", DEFAULTS["company"])
    ask("legal_name", "Legal name (for the APPI manifest)", a.company or "")
    ask("address", "Company address (APPI; needed for the relay)")
    ask("representative", "Representative, e.g. 代表取締役 山田太郎 (needed for the relay)")
    ask("sender", "From address (name <address>)", DEFAULTS["sender"])
    ask("reply_to", "Reply-To address",
        (a.sender or "").rpartition("<")[2].rstrip(">") or (a.sender or ""))
    ask("timezone", "Timezone", DEFAULTS["timezone"])
    ask("locale", "Default language (ja/en)", DEFAULTS["locale"])
    ask("privacy_url", "Privacy policy URL (needed for the relay)")
    ask("public_url", "Public https address of `career-relay serve`", DEFAULTS["public_url"])
    ask("source_type", "ATS: " + ", ".join(SOURCE_TYPES), DEFAULTS["source_type"])
    ask("source_name", "A short name for this ATS (lower-case; appears in URLs)",
        (a.source_type or "hrmos_export").split("_")[0])
    if a.source_type == "hrmos_export":
        ask("export_path", "HRMOS export file or folder", DEFAULTS["export_path"])
    if a.source_type == "greenhouse" and a.greenhouse_user_id is None:
        a.greenhouse_user_id = typer.prompt("Greenhouse: user id of a Site Admin", type=int)
    ask("agency_id", "One partner agency's id (empty: none for now)")
    if a.agency_id:
        ask("agency_legal_name", "Agency legal name")
        ask("agency_address", "Agency address")
        ask("agency_representative", "Agency representative")
        ask("agency_country", "Agency country (ISO code)", DEFAULTS["agency_country"])
        if (a.agency_country or "").upper() == "JP":
            ask("agency_licence", "Agency licence number (有料職業紹介, e.g. 13-ユ-000000)")
        ask("agency_deletion_contact", "Where the agency takes deletion requests (address)")
        ask("agency_channel", "How it receives candidates: " + ", ".join(CHANNELS),
            DEFAULTS["agency_channel"])
        ask("agency_target", {"webhook": "Its intake URL (https)",
                              "email": "Its intake email address"}.get(
            a.agency_channel or "", "Its registration form URL"))
        if a.agency_channel != "redirect":
            ask("agency_retention", "How long the agency keeps what it receives (shown to "
                                    "candidates, e.g. ご登録から2年間)")


def _fill_defaults(a: Answers) -> None:
    for f in fields(a):
        if getattr(a, f.name) is None and f.name in DEFAULTS:
            setattr(a, f.name, DEFAULTS[f.name])
    a.legal_name = a.legal_name or a.company or ""
    if a.reply_to is None:
        a.reply_to = (a.sender or "").rpartition("<")[2].rstrip(">")
    a.source_name = a.source_name or (a.source_type or "hrmos").split("_")[0]
    for f in fields(a):
        if getattr(a, f.name) is None and f.type in ("str | None",):
            setattr(a, f.name, "")


def _validate(a: Answers) -> None:
    if a.source_type not in SOURCE_TYPES:
        raise ConfigError("--source-type", f"unknown source type {a.source_type!r}",
                          "Use one of: " + ", ".join(SOURCE_TYPES))
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,39}$", a.source_name or ""):
        raise ConfigError("--source-name", f"{a.source_name!r} cannot be used",
                          "Use lower-case letters, digits, '-' and '_'")
    if a.source_type == "greenhouse" and not a.greenhouse_user_id:
        raise ConfigError("--greenhouse-user-id", "Greenhouse needs a Site Admin's user id",
                          "Pass --greenhouse-user-id (the number in /account/users/<id>)")
    if a.agency_id and a.agency_channel not in CHANNELS:
        raise ConfigError("--agency-channel", f"unknown channel {a.agency_channel!r}",
                          "Use one of: " + ", ".join(CHANNELS))
    if a.agency_id and not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", a.agency_id):
        raise ConfigError("--agency-id", f"{a.agency_id!r} cannot be used",
                          "Use lower-case letters, digits, '-' and '_'")


def _source_block(a: Answers, notes: list[str]) -> str:
    lines = ["[[sources]]", f"name = {_toml(a.source_name)}", f"type = {_toml(a.source_type)}"]
    if a.source_type == "hrmos_export":
        lines.append(f"path = {_toml(a.export_path or 'exports/')}"
                     "   # a file, or a folder: the newest file in it")
    if a.source_type == "greenhouse":
        lines += ['mode = "poll"                    # "both" once the webhook is set up '
                  '(README: Greenhouse)', f"user_id = {a.greenhouse_user_id}"]
    for key, variable in SOURCE_SECRETS.get(a.source_type, []):
        lines.append(f"{key} = \"env:{variable}\"")
        notes.append(f"set the secret {variable} in the environment (deploy/career-relay.env), "
                     f"or store it with `career-relay secrets set {key.replace('_', '-')}` "
                     f"and write \"keyring:career-relay/{key.replace('_', '-')}\" instead")
    return "\n".join(lines) + "\n"


def _agency_block(a: Answers, notes: list[str]) -> str:
    if not a.agency_id:
        return ""
    target_key = {"webhook": "url", "email": "email", "redirect": "register_url"}[
        a.agency_channel]
    lines = ["[[agencies]]", f"id = {_toml(a.agency_id)}",
             f"legal_name = {_toml(a.agency_legal_name or '')}",
             f"address = {_toml(a.agency_address or '')}",
             f"representative = {_toml(a.agency_representative or '')}",
             f"country = {_toml((a.agency_country or '').upper())}",
             f"licence_number = {_toml(a.agency_licence or '')}",
             f"deletion_contact = {_toml(a.agency_deletion_contact or '')}",
             f"channel = {_toml(a.agency_channel)}",
             f"{target_key} = {_toml(a.agency_target or '')}"]
    if a.agency_channel != "redirect":
        lines += ['fields = ["name", "email"]       # what this agency receives, with consent',
                  f"retention = {_toml(a.agency_retention or '')}   # how long it keeps it, "
                  "shown on the consent page"]
    if a.agency_channel == "webhook":
        variable = "AGENCY_" + re.sub(r"[^A-Z0-9]", "_", a.agency_id.upper()) + "_SECRET"
        lines.append(f"secret = \"env:{variable}\"   # shared HMAC secret")
        notes.append(f"set the agency's shared secret {variable} in the environment")
    return "\n".join(lines) + "\n"


def _relay_on(a: Answers, notes: list[str]) -> bool:
    missing = [label for label, value in (
        ("--legal-name", a.legal_name), ("--address", a.address),
        ("--representative", a.representative), ("--privacy-url", a.privacy_url),
        ("--agency-id", a.agency_id)) if not (value or "").strip()]
    if a.agency_id:
        missing += [label for label, value in (
            ("--agency-legal-name", a.agency_legal_name), ("--agency-address", a.agency_address),
            ("--agency-representative", a.agency_representative),
            ("--agency-deletion-contact", a.agency_deletion_contact),
            ("--agency-target", a.agency_target)) if not (value or "").strip()]
        if (a.agency_country or "").upper() == "JP" and not (a.agency_licence or "").strip():
            missing.append("--agency-licence")
        if a.agency_channel != "redirect" and not (a.agency_retention or "").strip():
            missing.append("--agency-retention")
    if a.relay is False:
        notes.append("the relay invitation is off (--no-relay): emails carry no invitation")
        return False
    if missing:
        if a.relay:
            raise ConfigError("--relay", "the relay invitation needs " + ", ".join(missing),
                              "Give them, or pass --no-relay")
        notes.append("the relay invitation is off until these are filled in: "
                     + ", ".join(m.removeprefix("--") for m in missing))
        return False
    return True


def render_config(a: Answers) -> tuple[str, list[str]]:
    notes: list[str] = []
    _validate(a)
    relay = _relay_on(a, notes)
    text = f"""# Written by `career-relay init`. Every key is explained in the example
# configuration, which `career-relay init --example --config example.toml` writes.
[company]
name = {_toml(a.company)}
legal_name = {_toml(a.legal_name)}
address = {_toml(a.address or '')}
representative = {_toml(a.representative or '')}
sender = {_toml(a.sender)}
reply_to = {_toml(a.reply_to or '')}
timezone = {_toml(a.timezone)}
locale = {_toml(a.locale)}
privacy_policy_url = {_toml(a.privacy_url or '')}

[store]
url = "sqlite:///career-relay.db"   # or postgresql+psycopg://USER@HOST/DB

[schedule]
delay_hours = 24                  # cooling-off, so a recruiter can undo a rejection
business_hours = "10:00-18:00"
deadline_business_days = 3
holidays = "JP"
hold_for_approval = false         # true: every email waits for approval in the console (/admin/)

[eligibility]
max_age_days = 14
person_cooldown_days = 180

[mail]
transport = "file"      # review the .eml files in outbox/ first; then switch to "smtp"
outbox_dir = "outbox"
mode = "full"

[relay]
enabled = {"true" if relay else "false"}
public_base_url = {_toml(a.public_url)}
invitation_ttl_days = 30

[web]
host = "127.0.0.1"
port = 8080

{_source_block(a, notes)}
{_agency_block(a, notes)}"""
    return text, notes


def write_config(path: Path, answers: Answers, *, interactive: bool) -> InitResult:
    if interactive:
        _interview(answers)
    _fill_defaults(answers)
    text, notes = render_config(answers)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        raise ConfigError(exc.key, f"{path} was written but needs a fix: {exc.problem}",
                          exc.fix) from None
    return InitResult(notes)


# --- init --example --------------------------------------------------------------------------
def example_files() -> tuple[Path, Path]:
    """The shipped example configuration and its sample export: inside the package in a
    wheel (pyproject force-include), at the top of a checkout."""
    root = shipped_templates_dir().parent
    return root / "config.example.toml", root / "examples" / "hrmos_export.tsv"


def write_example(path: Path) -> list[Path]:
    config, export = example_files()
    shutil.copyfile(config, path)
    written = [path]
    target = path.parent / "examples" / export.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(export, target)
        written.append(target)
    return written
