"""`career-relay check`: every problem a user can fix before the first real run, as rows."""

from __future__ import annotations

import os
from pathlib import Path

from relay_core.config import Config, load_config
from relay_core.contract.base import CheckResult
from relay_core.errors import ConfigError, RelayError


def run_checks(config_path: Path, *, offline: bool = False) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [CheckResult("configuration", False, str(exc))]
    results.append(CheckResult("configuration", True, str(config_path)))
    results += _check_store(config)
    results += _check_templates(config)
    results += _check_relay(config)
    results += _check_mail(config, offline)
    results += _check_sources(config, offline)
    from relay_core.mail.message import check_interpreter

    # A warning, not a failure: messages are built only from values already refused if they
    # hold CR/LF (mail/message.py), so the interpreter's own defence is a second line.
    warning = check_interpreter()
    results.append(CheckResult("python", True, f"warning: {warning}" if warning
                               else "email header-injection fix present"))
    return results


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
    if not config.relay.enabled:
        return [CheckResult("relay invitation", True, "disabled: emails carry no invitation")]
    from relay_core.records.consent.requirements import relay_problems

    problems = relay_problems(config)
    if problems:
        return [CheckResult("relay invitation", False, p) for p in problems]
    results = [CheckResult("relay invitation", True,
                           f"links point to {config.relay.public_base_url}")]
    if config.relay.signing_key is not None:
        try:
            config.relay.signing_key.resolve()
        except ConfigError as exc:
            results.append(CheckResult("relay signing key", False, str(exc)))
    results += _check_agencies(config)
    return results


def _check_agencies(config: Config) -> list[CheckResult]:
    from relay_core.records.handoff.gate import channel_problems

    results = []
    for i, agency in enumerate(config.agencies):
        problems = channel_problems(agency)
        if agency.secret is not None:
            try:
                agency.secret.resolve()
            except ConfigError as exc:
                problems.append(str(exc))
        what = f"agency {agency.id} ({agency.channel})"
        results += ([CheckResult(what, False, f"agencies[{i}].{p}") for p in problems]
                    or [CheckResult(what, True, agency.legal_name)])
    return results


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
        except (ConfigError, RelayError) as exc:
            found = [CheckResult("connection", False, str(exc))]
        results += [CheckResult(f"source {name}: {r.what.removeprefix(f'{name}: ')}", r.ok,
                                r.detail) for r in found] or [
            CheckResult(f"source {name}", True, connector.type)]
    return results
