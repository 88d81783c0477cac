"""deploy/: the systemd units the README installs run commands and flags that exist, read
their env: secrets from an EnvironmentFile, and treat the exit codes as the CLI defines them."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import typer.main

from relay_core.commands.cli import EXIT_CONFIG, EXIT_FAILURES, EXIT_LOCKED, app

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


def options_of(command: str) -> set[str]:
    cmd = typer.main.get_command(app).commands[command]
    return {opt for param in cmd.params for opt in param.opts}


def test_the_units_run_existing_commands_with_existing_flags():
    for name, command in (("career-relay.service", "serve"),
                          ("career-relay-run.service", "run")):
        service = unit(name)["Service"]
        args = shlex.split(service["ExecStart"])
        assert args[0].endswith("/career-relay") and args[1] == command
        flags = {a for a in args[2:] if a.startswith("--")}
        assert flags <= options_of(command), flags - options_of(command)
        assert service["EnvironmentFile"] == "/etc/career-relay/career-relay.env"
        assert service["User"] == "career-relay"
    # 75 (a live run holds the lock) and 143 (stopped by SIGTERM after the message in hand)
    # are not failures; 1 (a holder for over an hour: hung?) is.
    success = unit("career-relay-run.service")["Service"]["SuccessExitStatus"].split()
    assert success == [str(EXIT_LOCKED), "143"] and str(EXIT_FAILURES) not in success
    assert unit("career-relay.service")["Service"]["RestartPreventExitStatus"] == str(
        EXIT_CONFIG)
    assert unit("career-relay-run.timer")["Timer"]["OnCalendar"]


def test_the_environment_file_example_holds_no_values():
    for line in (DEPLOY / "career-relay.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert line.endswith("="), line
