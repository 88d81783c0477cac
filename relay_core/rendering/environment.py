"""The one place a Jinja2 environment is made: emails, consent pages, agency mail, the report.

Every environment is a SandboxedEnvironment with StrictUndefined: a template that names an
unknown variable or reaches for Python internals fails with its file and line instead of
producing a broken mail or page. Block tags eat their own line (trim_blocks, lstrip_blocks), so
templates can be laid out one tag per line.

Templates are looked up in `mail.templates_dir` first (when configured; it must exist), then in
the shipped `templates/` folder, under the same relative names (`email/ja/rejection.txt`,
`pages/en/consent.html`): a user file overrides the shipped one, one file at a time.

Two flavours, chosen by `html_only`:

    html_only=True     every template is an HTML document (pages, report): everything is
                       autoescaped; the file's final newline is dropped
    html_only=False    a mix of `.txt` and `.html` (mails): only `.html` files are autoescaped,
                       and the final newline is kept, since a text body ends with one

Filters every template may use: `nl2br` (escape a multi-line value and join its lines with
<br>) and `format_day(language)` (a date written out for the language, "2025年6月30日").
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from relay_core.config import Config
from relay_core.errors import ConfigError, TemplateError


def shipped_templates_dir() -> Path:
    # A wheel carries the templates inside the package (pyproject force-include); a checkout
    # keeps them at the top of the repository.
    package = Path(__file__).resolve().parents[1]        # relay_core/
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


def template_folders(config: Config | None) -> list[Path]:
    """Where templates are looked up, in order: the user's folder (if any), then the shipped
    one. Without a configuration (a bare report), only the shipped folder."""
    folders: list[Path] = []
    if config is not None and config.mail.templates_dir:
        user_dir = config.path(config.mail.templates_dir).resolve()
        if not user_dir.is_dir():
            raise ConfigError("mail.templates_dir", f"folder {user_dir} does not exist",
                              "Create it with your template files, or remove the key to use "
                              "the shipped templates")
        folders.append(user_dir)
    folders.append(shipped_templates_dir())
    return folders


# --- filters ---------------------------------------------------------------------------------
def format_day(day: date | datetime | str | None, language: str) -> str | None:
    if day is None or isinstance(day, str):
        return day or None
    if language == "ja":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {day:%B} {day.year}"


def nl2br(value: Any) -> Markup:
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


FILTERS = {"nl2br": nl2br, "format_day": format_day}


# --- the environment -------------------------------------------------------------------------
class TemplateEnvironment(SandboxedEnvironment):
    """A sandboxed environment that knows its folders, so that `render_file` can say which
    file and line went wrong."""

    def __init__(self, folders: Sequence[Path], **options: Any):
        super().__init__(loader=ChoiceLoader([FileSystemLoader(p) for p in folders]),
                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                         **options)
        self.folders = tuple(folders)
        self.filters.update(FILTERS)

    def render_file(self, name: str, context: dict[str, Any]) -> str:
        """Render one template; any failure becomes a TemplateError naming the file and line.
        Messages come from the template or from Jinja, never from the context's values."""
        try:
            return self.get_template(name).render(context)
        except TemplateSyntaxError as exc:
            raise TemplateError(exc.filename or exc.name or name, exc.lineno,
                                f"syntax error: {exc.message}") from None
        except TemplateNotFound as exc:
            folders = ", ".join(str(p) for p in self.folders)
            raise TemplateError(name, None, f"template {exc.name} not found in {folders}") from None
        except UndefinedError as exc:
            raise TemplateError(*self._where(exc, name),
                                f"{exc} (not in the context; see the docstring of the module "
                                "that renders this template for the variables it may use)"
                                ) from None
        except Exception as exc:  # SecurityError, or a Python error raised by a template expression
            raise TemplateError(*self._where(exc, name), _describe(exc)) from None

    def _where(self, exc: BaseException, fallback: str) -> tuple[str, int | None]:
        """The innermost template frame: Jinja rewrites tracebacks so that frames point at the
        template file and line, including inside included or extended templates."""
        roots = [str(p) + os.sep for p in self.folders]
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if any(os.path.normpath(f.filename).startswith(r) for r in roots)]
        if not frames:
            return fallback, None
        return os.path.normpath(frames[-1].filename), frames[-1].lineno


def template_environment(config: Config | None, *, html_only: bool,
                         auto_reload: bool = True) -> TemplateEnvironment:
    """The environment for one renderer (see the module docstring for the two flavours). Make
    one per renderer and keep it: templates are compiled once per environment. `auto_reload`
    False: a template file is not checked for changes each time it is used (a few stat calls
    per render; for a process that lives one run, like the build helper)."""
    if html_only:
        return TemplateEnvironment(template_folders(config), autoescape=True,
                                   auto_reload=auto_reload)
    return TemplateEnvironment(
        template_folders(config),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False,
                                     default=False),
        keep_trailing_newline=True, auto_reload=auto_reload)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    # Other exception texts may quote the values being processed, i.e. candidate data.
    return f"{type(exc).__name__} raised while rendering"
