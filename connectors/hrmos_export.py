"""HRMOS採用 (中途/新卒): rejections read from the 応募者情報 export, not from an API.

HRMOS採用 (BizReach / VISIONAL) has no public applicant API: the documented HRMOS APIs cover
HRMOS CORE and HRMOS勤怠 only, and public projects that automate HRMOS採用 import its CSV/TSV
export instead (fact sheet /work/shared/reference/hrmos_japan.md, sections 0, 1.3 and 2.1).

How HR produces the file [S3][S4]: in HRMOS採用, download 応募者情報 as CSV with a column template
of your choosing, or push it to a Google スプレッドシート and download that sheet as TSV/CSV. The
template must hold 応募ID, 選考ステータス, 氏名 (or 姓 and 名), メールアドレス and
不合格・重複終了日 (older exports: 不合格日); useful too: 辞退日, 応募者ID,
求人名 / 選考ポジション名, 応募経路, 応募経路詳細, 言語 and the step columns N次ステップ
(older: 1次面接実施日 … 最終面接実施日) that give the stage. Other header text is mapped
with `column_map`.

What the reader copes with, as seen in public parsers of real exports [S16][S17][S18]: UTF-16
with BOM and tab-separated (the usual download), UTF-8 with or without BOM, Shift_JIS (cp932)
re-saved by Excel, comma-separated copies, meta rows above the header (the header is the row
holding 応募ID), dates like 2025年6月1日, and the Sheets habit of writing `'` into blank cells [S3].

`path` is a file or a folder (the newest *.tsv / *.csv / *.txt in it). The cursor is the file's
fingerprint, a small JSON object {file, size, mtime_ns, sha256, rows}: an unchanged file is a
no-op, and so is a re-export of the same data (new name, date, encoding, meta rows or row order:
`rows` is a digest of the header and the set of data rows, checked when the bytes differ, in
about a second for 100,000 rows instead of reading every row into the core again). A re-import
is harmless anyway because the core keys cases on (source, 応募ID). Rows are streamed
and handed over in pages of at most 500, so a 100,000-row export is read in flat memory.

Uses only the transport-free base (`relay_core.contract.base`): no HTTP. `recheck` keeps the default
(UNKNOWN), since a file cannot be asked again. What the next export says instead: a row back in
process (選考中, …) is reported as un-rejected (its pending email is cancelled), a row now 辞退
as a withdrawal (the core cancels it too), and a row 不合格 again with a later 不合格・重複終了日
reopens a case so cancelled. The date has day precision: an un-reject and a re-reject on the
same day read as the same rejection.

Sources (fact sheet section 7):
[S3] https://atsguide.hrmos.co/hc/ja/articles/20859800186009 (応募者情報 → Googleスプレッドシート)
[S4] https://guide.hrmos.co/hc/ja/articles/4409394656409 (応募者情報CSV, columns A–CG)
[S6] https://atsguide.hrmos.co/hc/ja/articles/16069676266905 (判定結果 通過/不合格)
[S16][S17][S18] public importers/parsers of HRMOS採用 exports (repositories not identified)
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from relay_core.contract import CheckResult, Connector, ConnectorSettings, Page, read_sheet_time
from relay_core.errors import ConfigError, FatalError, RecordError
from relay_core.models import Category, Flags, Person, RejectionEvent

if TYPE_CHECKING:
    from relay_core.contract import Config, SourceConfig

PAGE_SIZE = 500
SUFFIXES = (".tsv", ".csv", ".txt")
AUTO_ENCODINGS = ("utf-8-sig", "utf-16", "cp932")   # utf-8-sig also reads UTF-8 without BOM
SAMPLE_BYTES = 256 * 1024                            # enough for meta rows and the header
_LABELS = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16 (BOM)", "cp932": "Shift_JIS (cp932)"}

# 選考ステータス → category. None: not a rejection, no event at all. Values not listed here map
# to OTHER and keep the raw row. `rejected_values` / `withdrawn_values` add to this table.
STATUS_CATEGORIES: dict[str, Category | None] = {
    "不合格": Category.WE_REJECTED,
    "辞退": Category.CANDIDATE_WITHDREW,
    "重複応募": Category.OTHER,            # flags.duplicate; shares the 終了日 column with 不合格
    "入社": None,                          # Category.HIRED, but nothing to mail: not emitted
    "新着応募": None,
    "選考中": None,
    "内定": None,
    "内定承諾": None,
}
DUPLICATE_STATUSES = {"重複応募"}
# A person with a row in one of these is still in process for that position [S17]. When an
# export holds none of them at all (HR exported the finished rows only), it cannot tell.
IN_PROCESS_STATUSES = {"新着応募", "選考中", "内定", "内定承諾"}

# Logical field → header text, first present wins per row (value-level: first non-empty).
COLUMNS: dict[str, tuple[str, ...]] = {
    "application_id": ("応募ID",),
    "candidate_id": ("応募者ID",),
    "full_name": ("氏名",),
    "last_name": ("姓",),
    "first_name": ("名",),
    "email": ("メールアドレス", "Eメール", "E-mail"),
    "job_title": ("求人名", "選考ポジション名", "選考ポジション"),
    "status": ("選考ステータス",),
    "rejected_on": ("不合格・重複終了日", "不合格日"),
    "withdrawn_on": ("辞退日",),
    "channel": ("応募経路",),
    "channel_detail": ("応募経路詳細",),
    "language": ("言語", "Language"),
    "stage": (),                           # read from the step columns unless mapped
}
REQUIRED = ("application_id", "status", "email")
_STEP = re.compile(r"^(\d+)次ステップ$")
_OLD_STEP = re.compile(r"^(\d+次面接|最終面接)(?:実施日)?$")
_AGENT_WORDS = ("エージェント", "人材紹介", "紹介会社", "agent")
_LANGUAGES = {"ja": "ja", "jp": "ja", "日本語": "ja", "japanese": "ja",
              "en": "en", "英語": "en", "english": "en"}
_WHAT_TO_EXPORT = ("Export 応募者情報 from HRMOS採用 (CSV/TSV download, or the Google Sheets "
                   "export saved as TSV/CSV) with at least the columns 応募ID, "
                   "選考ステータス, 氏名, メールアドレス, 不合格・重複終了日 and 辞退日")


class HrmosExportSettings(ConnectorSettings):
    path: str
    encoding: str = "auto"
    column_map: dict[str, str] = Field(default_factory=dict)
    default_language: Literal["ja", "en"] | None = None
    rejected_values: list[str] = Field(default_factory=lambda: ["不合格"])
    withdrawn_values: list[str] = Field(default_factory=lambda: ["辞退"])
    # The header of the one column HR fills in as feedback for the candidate (e.g. a 項目 of
    # your own, 「候補者へのフィードバック」); only that column's text is ever mailed.
    feedback_field: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the export file, or the folder HR saves exports into")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; use \"auto\" or a codec such as "
                             "\"utf-16\", \"utf-8-sig\" or \"cp932\"") from None
        return "cp932" if name == "shift_jis" else name  # Excel's Shift_JIS is cp932

    @field_validator("column_map")
    @classmethod
    def _column_map(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(COLUMNS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; map any of "
                             + ", ".join(COLUMNS) + " to your export's header text")
        if any(not header.strip() for header in value.values()):
            raise ValueError("a mapped header text is empty")
        return {k: v.strip() for k, v in value.items()}

    @field_validator("rejected_values", "withdrawn_values")
    @classmethod
    def _values(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        if not cleaned:
            raise ValueError("list at least one 選考ステータス value")
        return cleaned

    @model_validator(mode="after")
    def _disjoint(self) -> HrmosExportSettings:
        both = set(self.rejected_values) & set(self.withdrawn_values)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} cannot be both rejected and withdrawn")
        return self


@dataclass
class Layout:
    """What the export looks like: found once per file, before any row is read."""

    encoding: str
    label: str                              # e.g. "UTF-16 (BOM)", for `check`
    delimiter: str
    header_row: int                         # csv row index of the header (0-based)
    header_line: int                        # its physical line (1-based)
    header: list[str]
    columns: dict[str, list[int]] = field(default_factory=dict)
    wanted: dict[str, tuple[str, ...]] = field(default_factory=dict)   # header texts looked for
    steps: list[tuple[int, str | None]] = field(default_factory=list)  # (column, fixed name)
    feedback: int | None = None             # the `feedback_field` column

    def missing(self) -> list[str]:
        missing = [" / ".join(self.wanted[k]) for k in REQUIRED if not self.columns[k]]
        if not (self.columns["full_name"]
                or (self.columns["last_name"] and self.columns["first_name"])):
            names = self.wanted
            missing.append(f"{names['full_name'][0]} (or {names['last_name'][0]} and "
                           f"{names['first_name'][0]})")
        return missing


def clean(cell: str) -> str:
    """Sheets writes `'` for a blank and `'090…` to force text; both mean the plain value."""
    cell = cell.strip().lstrip("\ufeff")
    return cell[1:].strip() if cell.startswith("'") else cell


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    stat = path.stat()
    return json.dumps({"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                       "sha256": digest.hexdigest()}, ensure_ascii=False, separators=(",", ":"))


def _with_rows(current: str, digest: str) -> str:
    return json.dumps({**json.loads(current), "rows": digest}, ensure_ascii=False,
                      separators=(",", ":"))


def _same_rows(cursor: str | None, digest: str) -> bool:
    try:
        return bool(cursor) and json.loads(cursor).get("rows") == digest
    except (ValueError, AttributeError):
        return False


def _same_content(cursor: str | None, current: str) -> bool:
    try:
        return bool(cursor) and json.loads(cursor)["sha256"] == json.loads(current)["sha256"]
    except (ValueError, KeyError, TypeError):
        return False   # a cursor from another format: read the file again (idempotent)


def _agent_like(text: str) -> bool:
    return any(word in text.lower() for word in _AGENT_WORDS)


def _split_name(full: str) -> tuple[str, str]:
    """(last, first): 姓 名 order for Japanese names, given-name first for Latin ones."""
    parts = full.split(maxsplit=1)      # also splits on the full-width space
    if len(parts) < 2:
        return "", ""
    if any(ord(ch) >= 0x2E80 for ch in full):
        return parts[0], parts[1]
    return parts[1], parts[0]


class HrmosExport(Connector):
    type = "hrmos_export"
    Settings = HrmosExportSettings
    settings: HrmosExportSettings

    def __init__(self, source: SourceConfig, config: Config, index: int = 0):
        self.index = index
        super().__init__(source, config, index)

    # --- the file ------------------------------------------------------------------------
    def export_file(self) -> Path:
        where = self.config.path(self.settings.path)
        if where.is_dir():
            files = [p for p in where.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                     and not p.name.startswith((".", "~$"))]
            if not files:
                raise FatalError(f"source {self.name!r}: the folder {where} holds no .tsv, .csv "
                                 f"or .txt file yet. {_WHAT_TO_EXPORT}, and save it there")
            return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
        if not where.is_file():
            raise ConfigError(f"sources[{self.index}].path", f"{where} does not exist",
                              "Check the path (relative paths start at the config file's "
                              "folder) and that the export was saved there")
        return where

    def detect(self, path: Path) -> Layout:
        id_header = self.settings.column_map.get("application_id", COLUMNS["application_id"][0])
        with path.open("rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
            final = not fh.read(1)
        encodings = AUTO_ENCODINGS if self.settings.encoding == "auto" else (
            self.settings.encoding,)
        for encoding in encodings:
            try:
                text = codecs.getincrementaldecoder(encoding)().decode(sample, final=final)
            except UnicodeError:       # utf-16 without a BOM raises the parent class
                continue
            layout = self._find_header(text, encoding, id_header)
            if layout is not None:
                bom = encoding == "utf-8-sig" and sample.startswith(codecs.BOM_UTF8)
                layout.label = "UTF-8 with BOM" if bom else _LABELS.get(encoding, encoding)
                return layout
        tried = ", ".join(_LABELS.get(e, e) for e in encodings)
        raise FatalError(f"{path.name}: no header row with {id_header} was found (read as "
                         f"{tried}). {_WHAT_TO_EXPORT}; if your headers differ, set "
                         f"sources[{self.index}].column_map")

    def _find_header(self, text: str, encoding: str, id_header: str) -> Layout | None:
        # Split lines the way the streamed file will be split (universal newlines only).
        line = next((ln for ln in io.StringIO(text, newline="") if id_header in ln), None)
        if line is None:
            return None
        delimiter = "\t" if line.count("\t") >= line.count(",") and "\t" in line else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            for row_index, row in enumerate(reader):
                header = [clean(c) for c in row]
                if id_header in header:
                    layout = Layout(encoding, "", delimiter, row_index, reader.line_num, header)
                    self._resolve(layout)
                    return layout
        except csv.Error:
            pass
        return None

    def _resolve(self, layout: Layout) -> None:
        position: dict[str, int] = {}
        for i, name in enumerate(layout.header):
            position.setdefault(name, i)
        for key, defaults in COLUMNS.items():
            mapped = self.settings.column_map.get(key)
            names = (mapped,) if mapped else defaults
            layout.wanted[key] = names
            layout.columns[key] = [position[n] for n in names if n in position]
        if self.settings.feedback_field:
            layout.feedback = position.get(self.settings.feedback_field.strip())
        numbered = sorted((int(m[1]), i) for i, h in enumerate(layout.header)
                          if (m := _STEP.match(h)))
        if numbered:
            layout.steps = [(i, None) for _, i in numbered]
        else:
            layout.steps = [(i, m[1]) for i, h in enumerate(layout.header)
                            if (m := _OLD_STEP.match(h))]

    def rows(self, path: Path, layout: Layout) -> Iterator[tuple[int, list[str] | None]]:
        """(first physical line, cells) per data row; cells None for a row csv cannot split."""
        with path.open(encoding=layout.encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=layout.delimiter)
            line = 0
            row_index = -1
            while True:
                start = line + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    line = reader.line_num
                    yield start, None
                    continue
                except UnicodeError:
                    raise FatalError(f"{path.name}: cannot be read as {layout.label} after line "
                                     f"{line}. {_WHAT_TO_EXPORT}, and save it again without "
                                     "converting its encoding") from None
                line = reader.line_num
                row_index += 1
                if row_index > layout.header_row and any(clean(c) for c in row):
                    yield start, row

    # --- the contract --------------------------------------------------------------------
    def poll(self, cursor: str | None) -> Iterator[Page]:
        path = self.export_file()
        current = fingerprint(path)
        if _same_content(cursor, current):
            return
        layout = self.detect(path)
        missing = layout.missing()
        if missing:
            raise FatalError(f"{path.name}: the export has no column {', '.join(missing)}. "
                             f"Add it to the 応募者情報 export template in HRMOS採用, or map your "
                             f"header text with sources[{self.index}].column_map")
        self._require_feedback_column(path, layout)
        digest = self.rows_digest(path, layout)
        current = _with_rows(current, digest)
        if _same_rows(cursor, digest):
            yield Page(events=[], cursor=current)    # the same data, exported again
            return
        seen_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        active = self.people_in_process(path, layout)

        def translate(row: tuple[int, list[str] | None]) -> RejectionEvent | None:
            line, cells = row
            event = self.to_event(cells, layout, seen_at, f"{path.name} line {line}")
            if event is None or active is None or event.category is not Category.WE_REJECTED:
                return event
            keys = {event.candidate_id, *(e.lower() for e in event.person.emails)}
            return event.model_copy(update={"flags": event.flags.model_copy(update={
                "in_process_elsewhere": bool(keys & active)})})

        page = Page(events=[], cursor=cursor)
        for row in self.rows(path, layout):
            page.read(row, translate)
            if (app_id := self.in_process_id(row[1], layout)) is not None:
                page.unrejected.append(app_id)   # un-rejected, if it was rejected before
            if page.size >= PAGE_SIZE:
                # Nothing counts as read until the whole file is stored: keep the old cursor.
                yield page
                page = Page(events=[], cursor=cursor)
        page.cursor = current
        yield page

    def rows_digest(self, path: Path, layout: Layout) -> str:
        """The export's data, independent of its bytes: the header and the sorted digests of
        the data rows (cleaned cells), so a re-export in another encoding, with other meta rows
        or in another order, digests the same."""
        digests = sorted(
            hashlib.sha256("\x1f".join(clean(c) for c in cells).encode()).digest()
            if cells is not None else b"" for _, cells in self.rows(path, layout))
        total = hashlib.sha256("\x1f".join(layout.header).encode())
        for d in digests:
            total.update(d)
        return total.hexdigest()

    def _require_feedback_column(self, path: Path, layout: Layout) -> None:
        if self.settings.feedback_field and layout.feedback is None:
            raise ConfigError(f"sources[{self.index}].feedback_field",
                              f"{path.name} has no column {self.settings.feedback_field!r}",
                              "Add the column to the 応募者情報 export template in HRMOS採用, "
                              "or correct the header text")

    def people_in_process(self, path: Path, layout: Layout) -> set[str] | None:
        """応募者ID and addresses of everyone with an application still in process (a first
        pass over the file: ids only, flat memory). None when the export holds no such row at
        all, and so cannot tell."""
        found: set[str] = set()
        any_row = False
        candidate = layout.columns["candidate_id"]
        emails = layout.columns["email"]
        status = layout.columns["status"]
        for _, cells in self.rows(path, layout):
            if cells is None or len(cells) < len(layout.header):
                continue
            values = [clean(c) for c in cells[:len(layout.header)]]
            if next((values[i] for i in status if values[i]), "") not in IN_PROCESS_STATUSES:
                continue
            any_row = True
            found.update(values[i] for i in candidate if values[i])
            found.update(e.lower() for i in emails for e in re.split(r"[\s,;]+", values[i])
                         if e)
        return found if any_row else None

    def in_process_id(self, cells: list[str] | None, layout: Layout) -> str | None:
        """The 応募ID of a row whose 選考ステータス says it is in process (新着応募, 選考中, 内定,
        内定承諾): an application HR un-rejected since an earlier export."""
        if cells is None or len(cells) < len(layout.header):
            return None
        values = [clean(c) for c in cells[:len(layout.header)]]
        status = next((values[i] for i in layout.columns["status"] if values[i]), "")
        app_id = next((values[i] for i in layout.columns["application_id"] if values[i]), "")
        return app_id if app_id and status in IN_PROCESS_STATUSES else None

    def to_event(self, cells: list[str] | None, layout: Layout, seen_at: datetime,
                 where: str) -> RejectionEvent | None:
        width = len(layout.header)
        if cells is None:
            raise RecordError(where, "the row cannot be split into cells (a broken quote?)")
        if len(cells) != width and not (len(cells) > width and not any(
                c.strip() for c in cells[width:])):
            raise RecordError(where, f"{len(cells)} cells where the header has {width}; "
                                     "check for an unquoted tab, comma or line break")
        values = [clean(c) for c in cells[:width]]

        def get(key: str) -> str:
            return next((values[i] for i in layout.columns[key] if values[i]), "")

        def when(key: str) -> datetime | None:
            try:
                return read_sheet_time(get(key), self.config.company.tz)
            except ValueError:
                header = layout.header[layout.columns[key][0]]
                raise RecordError(where, f"the date in {header} cannot be read; write it as "
                                         "2025年6月1日, 2025/6/1 or 2025-06-01") from None

        app_id = get("application_id")
        if not app_id:
            raise RecordError(where, "the 応募ID is empty")
        status = get("status")
        if not status:
            raise RecordError(where, f"the 選考ステータス of 応募ID {app_id} is empty")
        category = self.category_for(status)
        if category is None:
            return None
        if category is Category.WE_REJECTED:
            rejected_at = when("rejected_on")
            if rejected_at is None:
                raise RecordError(where, f"{status} row without a rejection date "
                                         "(不合格・重複終了日)")
        elif category is Category.CANDIDATE_WITHDREW:
            rejected_at = when("withdrawn_on") or when("rejected_on") or seen_at
        else:   # the date matters only for mail, and these are never mailed
            rejected_at = when("rejected_on") or when("withdrawn_on") or seen_at

        channel, detail = get("channel"), get("channel_detail")
        full, last, first = get("full_name"), get("last_name"), get("first_name")
        email = get("email")
        if full and not (last or first):
            last, first = _split_name(full)
        language = _LANGUAGES.get(get("language").lower(), self.settings.default_language)
        raw: dict[str, str] = {}
        for header, value in zip(layout.header, values, strict=True):
            key, n = header, 2
            while key in raw:
                key, n = f"{header} ({n})", n + 1
            raw[key] = value
        return RejectionEvent(
            ats=self.type, source=self.name, application_id=app_id,
            candidate_id=get("candidate_id") or app_id,
            person=Person(full_name=full or f"{last} {first}".strip(), last_name=last,
                          first_name=first, emails=[e for e in re.split(r"[\s,;]+", email) if e],
                          language=language),
            job_title=get("job_title"), stage=self.stage_of(values, layout),
            reason_text=status, category=category, rejected_at=rejected_at,
            feedback=values[layout.feedback] if layout.feedback is not None else "",
            flags=Flags(agency_sourced=_agent_like(channel) or _agent_like(detail),
                        duplicate=status in DUPLICATE_STATUSES),
            raw=raw)

    def category_for(self, status: str) -> Category | None:
        if status in self.settings.rejected_values:
            return Category.WE_REJECTED
        if status in self.settings.withdrawn_values:
            return Category.CANDIDATE_WITHDREW
        return STATUS_CATEGORIES.get(status, Category.OTHER)

    def stage_of(self, values: list[str], layout: Layout) -> str:
        if layout.columns["stage"]:
            return values[layout.columns["stage"][0]]
        stage = ""
        for column, name in layout.steps:
            if values[column]:
                stage = name or values[column]
        return stage

    def check(self) -> list[CheckResult]:
        what = f"{self.name}: "
        try:
            path = self.export_file()
        except (ConfigError, FatalError) as exc:
            return [CheckResult(what + "export file", False, str(exc))]
        results = [CheckResult(what + "export file", True,
                               f"{path} ({path.stat().st_size:,} bytes)")]
        try:
            layout = self.detect(path)
        except FatalError as exc:
            return [*results, CheckResult(what + "encoding and header", False, str(exc))]
        kind = "tab" if layout.delimiter == "\t" else "comma"
        results.append(CheckResult(what + "encoding and delimiter", True,
                                   f"{layout.label}, {kind}-separated"))
        found = [f"{key}={layout.header[cols[0]]}" for key, cols in layout.columns.items()
                 if cols]
        steps = f"; stage from {len(layout.steps)} step column(s)" if layout.steps else ""
        results.append(CheckResult(what + "header columns", True,
                                   f"header on line {layout.header_line}: "
                                   + ", ".join(found) + steps))
        missing = layout.missing()
        results.append(CheckResult(what + "required columns", not missing,
                                   "missing: " + ", ".join(missing) if missing
                                   else "all present"))
        if self.settings.feedback_field:
            try:
                self._require_feedback_column(path, layout)
            except ConfigError as exc:
                results.append(CheckResult(what + "feedback column", False, str(exc)))
            else:
                results.append(CheckResult(what + "feedback column", True,
                                           self.settings.feedback_field))
        return results
