"""Every command, given the typical mistakes of a new user, answers with a message and an exit
code, never a traceback (issue 12). CliRunner would swallow a traceback into
`result.exception`, so each result must end in SystemExit, and its output must say something."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core.commands.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def example(tmp_path, store_url):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hrmos_export.tsv", tmp_path / "examples")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///examples/career-relay.db"', f'url = "{store_url}"')
    config = tmp_path / "career-relay.toml"
    config.write_text(text, encoding="utf-8")
    return config


def bad_configs(tmp_path: Path) -> dict[str, Path]:
    broken = tmp_path / "broken.toml"
    broken.write_text("[company\nname = 1\n", encoding="utf-8")
    secret = tmp_path / "secret.toml"
    secret.write_text('[mail.smtp]\npassword = "hunter2"\n', encoding="utf-8")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {"missing": tmp_path / "nope.toml", "folder": folder, "broken": broken,
            "secret": secret}


CONFIG_COMMANDS = [["run"], ["check"], ["status"], ["preview"], ["approve", "--all"],
                   ["cancel", "--case", "1"], ["hold", "--case", "1"], ["cases"], ["serve"],
                   ["report"], ["purge"], ["export-incident", "--since", "2025-01-01",
                                           "--until", "2025-02-01"],
                   ["record-incident", "--case", "1", "--note", "x"], ["admin", "list"],
                   ["admin", "unlock", "x"], ["admin", "remove", "x"]]


def assert_clean(result, *codes: int) -> None:
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.output.strip(), "no message"


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_with_a_bad_configuration_says_what_is_wrong(tmp_path, command):
    for kind, path in bad_configs(tmp_path).items():
        result = runner.invoke(app, [*command, "--config", str(path)])
        assert_clean(result, 1, 2)
        if kind == "secret":
            assert "mail.smtp.password" in result.output and "hunter2" not in result.output
        if kind == "folder":
            assert "is a folder" in result.output


USAGE_MISTAKES = [
    ["run", "--now", "tomorrow"],
    ["run", "--now", "2025-06-23T11:00:00"],
    ["run", "--log-format", "xml"],
    ["status", "--now", "yesterday"],
    ["preview", "--kind", "foo"],
    ["preview", "--lang", "fr"],
    ["preview", "--case", "999"],
    ["preview", "--case", "abc"],
    ["approve"],
    ["approve", "--case", "abc"],
    ["approve", "--case", "12345"],
    ["cancel"],
    ["cancel", "--case", "12345"],
    ["hold", "--case", "12345"],
    ["cases", "--state", "bogus"],
    ["cases", "--limit", "0"],
    ["report", "-f", "pdf"],
    ["export-incident", "--since", "soon", "--until", "later"],
    ["export-incident", "--since", "2025-01-01", "--until", "2025-02-01", "-f", "xml"],
    ["record-incident", "--case", "999", "--note", "x"],
    ["agency-events", "import", "missing.csv"],
    ["agency-events", "import", "."],
    ["admin", "add", "bad name!"],
    ["admin", "add", "hanako", "--no-password"],
    ["admin", "add", "hanako", "--email", "not-an-address"],
    ["admin", "password", "nobody"],
    ["admin", "unlock", "nobody"],
    ["admin", "remove", "nobody"],
    ["init", "--yes"],                                     # the file exists
    ["secrets"],
    ["nonsense-command"],
]


@pytest.mark.parametrize("command", USAGE_MISTAKES, ids=lambda c: " ".join(c))
def test_typical_mistakes_get_a_message_not_a_traceback(example, command):
    result = runner.invoke(app, [*command, "--config", str(example)]
                           if command[0] not in ("secrets", "nonsense-command") else command)
    assert_clean(result, 1, 2)


@pytest.mark.parametrize("flags", [
    ["--source-type", "bogus"],
    ["--source-type", "greenhouse"],                       # no --greenhouse-user-id
    ["--relay"],                                           # no legal details, no agency
    ["--source-name", "Not Allowed"],
    ["--agency-id", "a", "--agency-channel", "fax"],
    ["--timezone", "Mars/Olympus"],
])
def test_init_mistakes_get_a_message(tmp_path, flags):
    result = runner.invoke(app, ["init", "--yes", "--config", str(tmp_path / "c.toml"),
                                 *flags])
    assert_clean(result, 2)


def test_the_installed_command_prints_no_traceback_either(tmp_path):
    """The real entry point, in a process of its own, for the two cases of the issue."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for args in (["check", "--config", str(folder)], ["preview", "--kind", "foo"]):
        done = subprocess.run([sys.executable, "-m", "relay_core.commands.cli", *args],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode in (1, 2), done
        assert "Traceback" not in done.stdout + done.stderr
        assert (done.stdout + done.stderr).strip()


@pytest.mark.parametrize("command", ["approve", "cancel", "hold", "resend"])
@pytest.mark.parametrize("case_id", ["99999999999", "0"])
def test_a_case_id_the_database_cannot_hold_is_a_usage_error(example, command, case_id):
    """Case ids are a 32-bit column: a larger one is refused before any query (on PostgreSQL
    the driver's "integer out of range" was a traceback)."""
    result = runner.invoke(app, [command, "--config", str(example), "--case", case_id])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "--case" in result.output
