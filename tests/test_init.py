"""`career-relay init` without questions: flags for every source type, the company's legal
details and one agency; the file passes `check` except for the secrets it names. And
`init --example` for a pip user, who has no checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core.commands.cli import app
from relay_core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
EXPORT = str(ROOT / "examples" / "hrmos_export.tsv")
COMPANY = ["--company", "株式会社テスト", "--legal-name", "株式会社テスト",
           "--address", "東京都千代田区丸の内1-1-1", "--representative", "代表取締役 試験太郎",
           "--sender", "採用担当 <recruit@test.example>", "--privacy-url",
           "https://test.example/privacy", "--public-url", "https://relay.test.example"]
AGENCY = ["--agency-id", "agency-a", "--agency-legal-name", "株式会社エージェントA",
          "--agency-address", "東京都港区芝公園4-2-8", "--agency-representative",
          "代表取締役 佐藤一郎", "--agency-country", "JP", "--agency-licence", "13-ユ-000000",
          "--agency-deletion-contact", "privacy@agency-a.example", "--agency-channel",
          "redirect", "--agency-target", "https://agency-a.example/register"]
SOURCES = {
    "hrmos_export": ["--export-path", EXPORT],
    "greenhouse": ["--greenhouse-user-id", "12345"],
    "lever": [], "herp": [], "talentio": [],
}


def check(path: Path) -> list[dict]:
    result = runner.invoke(app, ["check", "--config", str(path), "--offline", "--json"])
    return [r for r in json.loads(result.stdout) if not r["ok"]]


@pytest.mark.parametrize("source_type", SOURCES)
def test_init_by_flags_writes_a_config_that_passes_check_except_its_secrets(
        tmp_path, source_type):
    path = tmp_path / "career-relay.toml"
    result = runner.invoke(app, ["init", "--yes", "--config", str(path), *COMPANY, *AGENCY,
                                 "--source-type", source_type, *SOURCES[source_type]])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    assert config.relay.enabled and config.company.representative == "代表取締役 試験太郎"
    assert config.sources[0].type == source_type and config.agencies[0].id == "agency-a"
    failures = check(path)
    assert all(f["what"].startswith("secret sources[0].") for f in failures), failures
    if source_type != "hrmos_export":
        assert failures and all("environment variable" in f["detail"] for f in failures)
        assert "secrets set" in result.output or "environment" in result.output


def test_init_leaves_the_relay_off_without_legal_details_and_says_so(tmp_path):
    path = tmp_path / "c.toml"
    result = runner.invoke(app, ["init", "--yes", "--config", str(path), "--export-path",
                                 EXPORT])
    assert result.exit_code == 0
    assert load_config(path).relay.enabled is False
    assert "relay invitation is off until" in result.output and "address" in result.output
    assert check(path) == []


def test_init_example_writes_the_commented_example_and_its_export(tmp_path):
    path = tmp_path / "example.toml"
    result = runner.invoke(app, ["init", "--example", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == (ROOT / "config.example.toml").read_text(
        encoding="utf-8")
    assert (tmp_path / "examples" / "hrmos_export.tsv").is_file()
    assert check(path) == []
