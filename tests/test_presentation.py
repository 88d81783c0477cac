"""Presentation has one home per kind: Jinja environments come from rendering/environment.py,
rich tables live with the CLI in commands/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from relay_core.config import Config, parse_config
from relay_core.errors import ConfigError, TemplateError
from relay_core.records.consent.disclosure import PageRenderer
from relay_core.rendering.emails import Renderer
from relay_core.rendering.environment import TemplateEnvironment, template_environment

PACKAGE = Path(__file__).resolve().parents[1] / "relay_core"
FACTORY = PACKAGE / "rendering" / "environment.py"


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def make_config(tmp_path: Path, **mail) -> Config:
    return parse_config({"company": {"name": "株式会社サンプル"}, "mail": mail},
                        tmp_path)


def test_every_jinja_environment_comes_from_the_factory():
    # Building one elsewhere (Environment(...), Template(...), from_string) would skip the
    # sandbox, StrictUndefined or the user's template folder.
    made_here = re.compile(r"\b(Sandboxed)?Environment\(|\bTemplate\(|\.from_string\(|"
                           r"\bjinja2\.sandbox\b|from jinja2 import")
    offenders = [f"{p.relative_to(PACKAGE)}:{n}"
                 for p in sources() if p != FACTORY
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if made_here.search(line)]
    assert offenders == []
    assert made_here.search(FACTORY.read_text(encoding="utf-8"))   # the pattern does match


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):     # function-level imports count too
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_only_the_cli_imports_rich():
    commands = PACKAGE / "commands"
    offenders = [str(p.relative_to(PACKAGE)) for p in sources()
                 if commands not in p.parents
                 and any(m == "rich" or m.startswith("rich.") for m in imported_modules(p))]
    assert offenders == []
    assert "rich.table" in imported_modules(commands / "tables.py")   # the check does see it


def test_renderers_use_the_factory(tmp_path):
    config = make_config(tmp_path)
    for renderer in (Renderer(config), PageRenderer(config)):
        assert isinstance(renderer.env, TemplateEnvironment)


def test_html_flavour_escapes_everything_and_mail_flavour_only_html_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.txt").write_text("{{ v }}\n", encoding="utf-8")
    (tmp_path / "mine" / "x.html").write_text("{{ v }}\n", encoding="utf-8")
    config = make_config(tmp_path, templates_dir="mine")
    html = template_environment(config, html_only=True)
    mail = template_environment(config, html_only=False)
    assert html.render_file("x.txt", {"v": "<b>"}) == "&lt;b&gt;"
    assert mail.render_file("x.txt", {"v": "<b>"}) == "<b>\n"
    assert mail.render_file("x.html", {"v": "<b>"}) == "&lt;b&gt;\n"


def test_a_page_template_error_names_file_and_line(tmp_path):
    (tmp_path / "mine" / "pages" / "ja").mkdir(parents=True)
    (tmp_path / "mine" / "pages" / "ja" / "error.html").write_text(
        "<p>\n{{ nope }}\n</p>\n", encoding="utf-8")
    config = make_config(tmp_path, templates_dir="mine")
    with pytest.raises(TemplateError) as caught:
        PageRenderer(config).render("error", "ja", {})
    assert caught.value.template.endswith("mine/pages/ja/error.html")
    assert caught.value.line == 2 and "nope" in caught.value.problem


def test_a_missing_user_folder_is_a_config_error_for_every_renderer(tmp_path):
    config = make_config(tmp_path, templates_dir="nowhere")
    for make in (Renderer, PageRenderer):
        with pytest.raises(ConfigError, match="mail.templates_dir"):
            make(config)


def test_status_tables_show_dead_handoffs_and_incident_table_counts():
    from datetime import UTC, datetime

    from rich.console import Console

    from relay_core.commands.tables import incident_table, status_tables
    from relay_core.records.retention import Disclosure

    handoffs = {"handoffs": {"delivered": 2, "dead": 1}, "deletion_notices": {"pending": 1},
                "dead": [{"handoff": 3, "case": 9, "agency": "agency-a", "error": "HTTP 400"}]}
    data = {"by_state": {"sent": 4}, "due_now": 1, "late": [], "handoffs": handoffs,
            "failed": [{"case": 2, "source": "fake", "reason": "bounced"}],
            "skip_reasons": {"too_old": 2}}
    console = Console(record=True, width=120)
    for table in status_tables(data):
        console.print(table)
    rows = [Disclosure("2025-06-01T00:00:00", "transfer (email)", "fake/1", "株式会社A",
                       "intake@a.example", ["name", "email"])]
    console.print(incident_table(rows, datetime(2025, 6, 1, tzinfo=UTC),
                                 datetime(2025, 7, 1, tzinfo=UTC)))
    text = console.export_text()
    for expected in ("cases by state", "needs attention", "failed: bounced", "agency handoffs",
                     "case 9 → agency-a: HTTP 400", "too_old",
                     "1 disclosure(s), 1 candidate(s), 1 agency recipient(s)"):
        assert expected in text, expected
