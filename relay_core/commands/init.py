"""`career-relay init`: a short interview that writes a working configuration file."""

from __future__ import annotations

from pathlib import Path

import typer

from relay_core.config import load_config
from relay_core.errors import ConfigError


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path) -> None:
    ask = typer.prompt
    company = ask("Company name shown in emails", default="株式会社サンプル")
    sender = ask("From address (name <address>)", default="採用担当 <recruit@example.co.jp>")
    reply_to = ask("Reply-To address", default=sender.rpartition("<")[2].rstrip(">") or sender)
    timezone = ask("Timezone", default="Asia/Tokyo")
    locale = ask("Default language (ja/en)", default="ja")
    policy = ask("Privacy policy URL (needed for the relay invitation)", default="")
    base_url = ask("Public address of the consent page", default="https://relay.example.co.jp")
    export = ask("HRMOS export file or folder", default="exports/")
    text = f"""# Written by `career-relay init`. Every key is explained in config.example.toml.
[company]
name = {_toml(company)}
legal_name = {_toml(company)}
address = ""
representative = ""
sender = {_toml(sender)}
reply_to = {_toml(reply_to)}
timezone = {_toml(timezone)}
locale = {_toml(locale)}
privacy_policy_url = {_toml(policy)}

[store]
url = "sqlite:///career-relay.db"

[schedule]
delay_hours = 24
business_hours = "10:00-18:00"
deadline_business_days = 3
holidays = "JP"

[eligibility]
max_age_days = 14
person_cooldown_days = 180

[mail]
transport = "file"      # review the .eml files in outbox/ first; then switch to "smtp"
outbox_dir = "outbox"
mode = "full"

[relay]
enabled = {"true" if policy else "false"}
public_base_url = {_toml(base_url)}
invitation_ttl_days = 30

[[sources]]
name = "hrmos"
type = "hrmos_export"
path = {_toml(export)}
"""
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        typer.echo(f"The file was written, but needs a fix: {exc}", err=True)
        raise typer.Exit(2) from None
