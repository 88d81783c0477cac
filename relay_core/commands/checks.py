"""`career-relay check`: every problem a user can fix before the first real run, as rows."""

from __future__ import annotations

import os
from pathlib import Path

from relay_core.config import Config, load_config
from relay_core.contract.base import CheckResult
from relay_core.errors import ConfigError, RelayError
from relay_core.secrets import SecretRef


def run_checks(config_path: Path, *, offline: bool = False) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [CheckResult("configuration", False, str(exc))]
    results.append(CheckResult("configuration", True, str(config_path)))
    results += _check_store(config)
    results += _check_templates(config)
    results += _check_mail_headers(config)
    results += _check_email_content(config)
    results += _check_relay(config)
    results += _check_ledger(config)
    results += _check_mail(config, offline)
    results += _check_secrets(config)
    results += _check_sources(config, offline)
    results += _check_console(config)
    from relay_core.mail import message

    # A failure, not a warning: Career Relay refuses CR/LF in header values itself
    # (mail/message.py), but an interpreter with a known injection flaw is not one to send
    # candidates' mail from.
    problem = message.check_interpreter()
    results.append(CheckResult("python", problem is None,
                               problem or "email header-injection fix (CVE-2024-6923) present"))
    return results


def _check_mail_headers(config: Config) -> list[CheckResult]:
    """What `run` checks when it builds the first message: sender, reply-to, Message-ID
    domain. A sample message is built exactly as the pipeline builds one."""
    from datetime import UTC, datetime

    from relay_core.mail.message import build_message, make_message_id, message_id_domain

    try:
        build_message(config, to_addr="candidate@example.com", to_name="Sample", subject="x",
                      text="x", html="<p>x</p>", date=datetime.now(UTC),
                      message_id=make_message_id("check", "rejection",
                                                 message_id_domain(config)))
    except ConfigError as exc:
        return [CheckResult("mail headers", False, str(exc))]
    except RelayError as exc:
        return [CheckResult("mail headers", False, f"company.sender: {exc}")]
    return [CheckResult("mail headers", True, f"From {config.company.sender}")]


def _check_email_content(config: Config) -> list[CheckResult]:
    """The issue-10 settings beyond what loading already validated: English mails without
    English names, a feedback field that needs HR's second reader, and the retired Lever key."""
    import re

    results = []
    cjk = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
    company = config.company
    languages = {company.mail_language, *(s.language for s in config.sources if s.language)}
    if cjk.search(company.name) and not company.name_en:
        results.append(CheckResult("english emails", True, (
            "warning: company.name_en is empty, so an English email (the ATS can ask for one"
            + (", and bilingual mails are configured" if "bilingual" in languages else "")
            + ") names the company in Japanese; set company.name_en (and sender_name_en)")))
    else:
        results.append(CheckResult("english emails", True,
                                   f"from {company.sender_name_en or 'the sender'} of "
                                   f"{company.name_en or company.name}"))
    for i, source in enumerate(config.sources):
        options = source.options
        if options.get("feedback_field"):
            mode = ("each waits for HR's approval" if config.mail.feedback_requires_approval
                    else "warning: sent without a second reader "
                         "(mail.feedback_requires_approval = false)")
            results.append(CheckResult(f"feedback {source.name}", True,
                                       f"sources[{i}].feedback_field = "
                                       f"{options['feedback_field']!r}: {mode}"))
        if "mail_confidential" in options:
            results.append(CheckResult(f"source {source.name}: mail_confidential", True, (
                f"warning: sources[{i}].mail_confidential is no longer read; "
                "eligibility.confidential_jobs decides for every source (default \"mail\")")))
    return results


def _secret_refs(config: Config) -> list[tuple[str, SecretRef, str]]:
    """(key path, reference, who needs it) for every secret the configuration names."""
    from relay_core.contract.registry import CONNECTORS, connector_class

    found: list[tuple[str, SecretRef, str]] = []
    if config.mail.transport == "smtp" and config.mail.smtp.password is not None:
        found.append(("mail.smtp.password", config.mail.smtp.password, "run"))
    if config.relay.enabled and config.relay.signing_key is not None:
        found.append(("relay.signing_key", config.relay.signing_key, "run"))
    if config.admin.enabled and config.admin.oidc.enabled and (
            config.admin.oidc.client_secret is not None):
        found.append(("admin.oidc.client_secret", config.admin.oidc.client_secret, "serve"))
    for i, agency in enumerate(config.agencies):
        if agency.secret is not None:
            found.append((f"agencies[{i}].secret", agency.secret, "run"))
    for i, source in enumerate(config.sources):
        if not source.enabled or source.type not in CONNECTORS:
            continue
        settings = connector_class(source.type).Settings
        for key in settings.model_fields:
            value = source.options.get(key)
            if isinstance(value, str) and value.startswith(("env:", "keyring:")):
                # Webhook secrets are used by `serve` only, when a delivery arrives.
                who = "serve" if key.startswith("webhook") else "run"
                found.append((f"sources[{i}].{key}", SecretRef(f"sources[{i}].{key}", value),
                              who))
    return found


def _check_secrets(config: Config) -> list[CheckResult]:
    """Every secret reference resolved, also with --offline: an `env:` variable or a keyring
    entry is on this machine, so an unset one is reported before `run` trips over it."""
    results = []
    for key, ref, who in _secret_refs(config):
        try:
            ref.resolve()
        except ConfigError as exc:
            results.append(CheckResult(f"secret {key}", False,
                                       f"{key}: {exc.problem}. {exc.fix}"
                                       + (" (`serve` needs it)" if who == "serve" else "")))
        else:
            results.append(CheckResult(f"secret {key}", True, f"{ref.reference.split(':')[0]}: "
                                                              "set"))
    return results


def _check_console(config: Config) -> list[CheckResult]:
    if not config.admin.enabled:
        return [CheckResult("console", True, "off (admin.enabled = false)")]
    from relay_core.store import open_store
    from relay_core.store.admin import count_accounts

    try:
        store = open_store(config.store_url)
        accounts = count_accounts(store)
        store.engine.dispose()
    except Exception:  # the store row above already says what is wrong with the database
        return []
    if not accounts:
        return [CheckResult("console", True, "warning: no console account yet; create one "
                                             "with `career-relay admin add NAME`")]
    return [CheckResult("console", True, f"/admin/ with {accounts} account(s)"
                        + (", sign-in through the identity provider"
                           if config.admin.oidc.enabled else ""))]


def _check_store(config: Config) -> list[CheckResult]:
    from relay_core.store import open_store

    try:
        store = open_store(config.store_url)
        store.counts_by_state()
        store.engine.dispose()
    except (ConfigError, RelayError) as exc:
        return [CheckResult("store", False, str(exc))]
    except Exception as exc:  # the database itself: say which and why, no URL credentials
        return [CheckResult("store", False, f"cannot open the database ({type(exc).__name__}: "
                                            f"{str(exc).splitlines()[0][:200]})")]
    return [CheckResult("store", True, f"{config.store_url.split(':', 1)[0]}, migrations "
                                       "up to date")]


def _check_templates(config: Config) -> list[CheckResult]:
    from relay_core.rendering.emails import Renderer

    try:
        problems = Renderer(config).check()
    except (ConfigError, RelayError) as exc:
        return [CheckResult("templates", False, str(exc))]
    if not problems:
        return [CheckResult("templates", True, "all templates render with sample data")]
    return [CheckResult("templates", False, str(p)) for p in problems]


def _check_relay(config: Config) -> list[CheckResult]:
    """The relay's prerequisites: a blocker sends every email without the invitation; an
    agency with a problem is not offered. Each row names the key to fix."""
    if not config.relay.enabled:
        return [CheckResult("relay invitation", True, "disabled: emails carry no invitation")]
    from relay_core.records.consent.requirements import invitation_blockers

    results = [CheckResult("relay invitation", False,
                           f"{p}. Until this is fixed, emails go out without the invitation")
               for p in invitation_blockers(config)]
    results = results or [CheckResult("relay invitation", True,
                                      f"links point to {config.relay.public_base_url}")]
    if config.relay.signing_key is not None:
        try:
            config.relay.signing_key.resolve()
        except ConfigError as exc:
            results.append(CheckResult("relay signing key", False, str(exc)))
    return results + _check_agencies(config)


def _check_agencies(config: Config) -> list[CheckResult]:
    from relay_core.records.agencies import agency_problems, field_warnings

    results = []
    for i, agency in enumerate(config.agencies):
        what = f"agency {agency.id} ({agency.channel})"
        results += ([CheckResult(what, False, f"agencies[{i}].{p}; it is not offered to "
                                              "candidates and receives nothing")
                     for p in agency_problems(agency)]
                    or [CheckResult(what, True, agency.legal_name)])
        results += [CheckResult(what, True, f"warning: agencies[{i}].{w}")
                    for w in field_warnings(agency)]
    return results


def _check_ledger(config: Config) -> list[CheckResult]:
    """Credits and the legal review they rest on (validated when the file is read)."""
    ledger = config.ledger
    if ledger.enabled:
        return [CheckResult("credits", True, f"{ledger.rule} under the legal review by "
                                             f"{ledger.legal_review.summary()}")]
    if ledger.legal_review_attested.strip():
        return [CheckResult("credits", True, "off; warning: ledger.legal_review_attested no "
                                             "longer switches credits on: record the review "
                                             "under [ledger.legal_review]")]
    return [CheckResult("credits", True, "off: agency events are recorded, no credits")]


def _check_mail(config: Config, offline: bool) -> list[CheckResult]:
    from relay_core.mail.transports import make_transport

    if config.mail.transport == "file":
        outbox = config.path(config.mail.outbox_dir)
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            writable = os.access(outbox, os.W_OK)
        except OSError:
            writable = False
        return [CheckResult("mail (file outbox)", writable,
                            str(outbox) if writable else f"cannot write to {outbox}")]
    if offline:
        return [CheckResult("mail (smtp)", True, "not contacted (--offline)")]
    try:
        with make_transport(config):
            pass
    except (ConfigError, RelayError) as exc:
        return [CheckResult("mail (smtp)", False, str(exc))]
    except OSError as exc:
        where = f"{config.mail.smtp.host}:{config.mail.smtp.port}"
        return [CheckResult("mail (smtp)", False,
                            f"cannot reach {where} ({exc.strerror or exc})")]
    return [CheckResult("mail (smtp)", True, f"{config.mail.smtp.host}:{config.mail.smtp.port} "
                                             "accepted the connection and login")]


def _check_sources(config: Config, offline: bool) -> list[CheckResult]:
    from relay_core.contract.registry import build_connectors
    from relay_core.cycle.run import describe_error, source_config_error

    try:
        connectors = build_connectors(config)
    except ConfigError as exc:
        return [CheckResult("sources", False, str(exc))]
    if not connectors:
        return [CheckResult("sources", False, "no [[sources]] configured; add one (see "
                                              "config.example.toml)")]
    results = []
    for name, connector in connectors.items():
        if offline and connector.type != "hrmos_export":
            results.append(CheckResult(f"source {name}", True, "not contacted (--offline)"))
            continue
        try:
            found = connector.check()
        except ConfigError as exc:
            found = [CheckResult("connection", False, str(source_config_error(config, name,
                                                                             exc)))]
        except RelayError as exc:
            found = [CheckResult("connection", False, describe_error(exc))]
        results += [CheckResult(f"source {name}: {r.what.removeprefix(f'{name}: ')}", r.ok,
                                r.detail) for r in found] or [
            CheckResult(f"source {name}", True, connector.type)]
    return results
