"""The HRMOS採用 export connector, against files built in tmp_path (no HTTP anywhere)."""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from relay_core.connectors.hrmos_export import PAGE_SIZE, HrmosExport, clean

from relay_core.contract.base import Page
from relay_core.cycle.eligibility import assess
from relay_core.errors import ConfigError, FatalError
from relay_core.models import Category, RejectionEvent

ROOT = Path(__file__).resolve().parents[2]
TOKYO = ZoneInfo("Asia/Tokyo")
HEADER = ["応募ID", "氏名", "メールアドレス", "選考ポジション名", "応募経路", "応募経路詳細",
          "選考ステータス", "1次ステップ", "2次ステップ", "辞退日", "不合格・重複終了日"]
PERSONAL = ("山田", "太郎", "taro@example.com", "鈴木", "hanako@example.jp")


def row(app_id: str = "1001", status: str = "不合格", *, name: str = "山田 太郎",
        email: str = "taro@example.com", job: str = "法人営業", channel: str = "自社サイト",
        detail: str = "", step1: str = "書類選考", step2: str = "", withdrawn: str = "",
        rejected: str = "2025年6月20日") -> list[str]:
    return [app_id, name, email, job, channel, detail, status, step1, step2, withdrawn, rejected]


def write(path: Path, rows: list[list[str]], *, header: list[str] = HEADER,
          encoding: str = "utf-16", delimiter: str = "\t", meta: tuple[str, ...] = ()) -> Path:
    buf = io.StringIO()
    for line in meta:
        buf.write(line + "\r\n")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


@pytest.fixture
def connect(make_config):
    def build(path: str | Path = "export.tsv", *, index: int = 0, company: dict | None = None,
              **options) -> HrmosExport:
        sources = [{"name": f"other{i}", "type": "hrmos_export", "path": "x.tsv"}
                   for i in range(index)]
        sources.append({"name": "hrmos", "type": "hrmos_export", "path": str(path), **options})
        config = make_config({"sources": sources, "company": company or {}})
        return HrmosExport(config.sources[index], config, index)

    return build


def pages(connector: HrmosExport, cursor: str | None = None) -> list[Page]:
    return list(connector.poll(cursor))


def events(connector: HrmosExport) -> dict[str, RejectionEvent]:
    return {e.application_id: e for p in pages(connector) for e in p.events}


def problems(connector: HrmosExport) -> list[str]:
    return [str(p) for page in pages(connector) for p in page.problems]


# --- reading -------------------------------------------------------------------------------
@pytest.mark.parametrize("delimiter", ["\t", ","], ids=["tab", "comma"])
@pytest.mark.parametrize("encoding, label", [
    ("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM"), ("utf-16", "UTF-16 (BOM)"),
    ("utf-16-be-bom", "UTF-16 (BOM)"), ("cp932", "Shift_JIS (cp932)")])
def test_encodings_and_delimiters_round_trip(tmp_path, connect, encoding, label, delimiter):
    rows = [row("1001", name="山田 太郎", job="法人営業①～"),
            row("1002", name="鈴木 花子", email="hanako@example.jp", rejected="2025/6/19")]
    path = tmp_path / "export.tsv"
    if encoding == "utf-16-be-bom":
        write(path, rows, encoding="utf-16-be", delimiter=delimiter)
        path.write_bytes(b"\xfe\xff" + path.read_bytes())
    else:
        write(path, rows, encoding=encoding, delimiter=delimiter)
    connector = connect()

    got = events(connector)

    assert sorted(got) == ["1001", "1002"]
    assert got["1001"].person.full_name == "山田 太郎"
    assert (got["1001"].person.last_name, got["1001"].person.first_name) == ("山田", "太郎")
    assert got["1001"].job_title == "法人営業①～"
    assert got["1002"].person.emails == ["hanako@example.jp"]
    assert got["1002"].rejected_at == datetime(2025, 6, 19, tzinfo=TOKYO)
    assert got["1001"].category is Category.WE_REJECTED
    assert got["1001"].ats == "hrmos_export" and got["1001"].source == "hrmos"
    assert got["1001"].candidate_id == "1001"       # no 応募者ID column: the application id
    detected = {c.what.split(": ")[1]: c for c in connector.check()}
    assert detected["encoding and delimiter"].ok
    kind = "tab" if delimiter == "\t" else "comma"
    assert detected["encoding and delimiter"].detail == f"{label}, {kind}-separated"


def test_explicit_encoding_is_used(tmp_path, connect):
    write(tmp_path / "export.csv", [row()], encoding="cp932", delimiter=",")
    connector = connect("export.csv", encoding="shift_jis")
    assert connector.settings.encoding == "cp932"
    assert list(events(connector)) == ["1001"]


def test_quoted_fields_with_commas_and_line_breaks(tmp_path, connect):
    path = write(tmp_path / "export.csv", [
        row("1001", job="営業, 東京\n(中途)"),
        row("1002", rejected=""),                    # a problem on its own physical line
    ], encoding="utf-8", delimiter=",")
    connector = connect(path)

    got = events(connector)

    assert got["1001"].job_title == "営業, 東京\n(中途)"
    assert problems(connector) == [
        "export.csv line 4: 不合格 row without a rejection date (不合格・重複終了日)"]


def test_date_without_time_is_midnight_in_the_company_timezone(tmp_path, connect):
    write(tmp_path / "export.tsv", [row(rejected="2025年6月20日")])
    connector = connect(company={"timezone": "Europe/Berlin"})
    (event,) = events(connector).values()
    assert event.rejected_at == datetime(2025, 6, 20, tzinfo=ZoneInfo("Europe/Berlin"))


def test_apostrophe_cells_from_sheets(tmp_path, connect):
    header = [*HEADER, "電話番号"]
    write(tmp_path / "export.tsv", [
        [*row("'1001", channel="'", detail="'", step2="'", withdrawn="'"), "'090-1234-5678"],
        [*row("'"), "'"],                           # a blank 応募ID
    ], header=header)
    connector = connect()

    (event,) = events(connector).values()

    assert event.application_id == "1001"
    assert event.raw["電話番号"] == "090-1234-5678"
    assert event.raw["応募経路詳細"] == "" and event.raw["辞退日"] == ""
    assert event.stage == "書類選考"                 # `'` in 2次ステップ is blank
    assert problems(connector) == ["export.tsv line 3: the 応募ID is empty"]
    assert clean("'") == "" and clean("'0120") == "0120" and clean(" 値 ") == "値"


def test_column_map_for_renamed_headers(tmp_path, connect):
    header = ["Application", "Name", "Mail", "Result", "Rejected on", "Step"]
    write(tmp_path / "export.csv", [["A-1", "Emily Carter", "emily@example.com", "NG",
                                     "2025-06-20", "Final"]],
          header=header, encoding="utf-8", delimiter=",")
    connector = connect("export.csv", rejected_values=["NG"], default_language="en", column_map={
        "application_id": "Application", "full_name": "Name", "email": "Mail",
        "status": "Result", "rejected_on": "Rejected on", "stage": "Step"})

    (event,) = events(connector).values()

    assert event.application_id == "A-1"
    assert event.category is Category.WE_REJECTED
    assert (event.person.first_name, event.person.last_name) == ("Emily", "Carter")
    assert event.person.language == "en"
    assert event.stage == "Final"


def test_meta_rows_before_the_header(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001"), row("1002", rejected="2025年2月30日")],
          meta=("応募者情報エクスポート", "出力日時\t2025/06/23 10:00", ""))
    connector = connect()

    assert list(events(connector)) == ["1001"]
    assert problems(connector) == [
        "export.tsv line 6: the date in 不合格・重複終了日 cannot be read; "
        "write it as 2025年6月1日, 2025/6/1 or 2025-06-01"]
    header = [c for c in connector.check() if c.what.endswith("header columns")][0]
    assert "header on line 4" in header.detail


def test_folder_reads_the_newest_export(tmp_path, connect):
    folder = tmp_path / "exports"
    folder.mkdir()
    old = write(folder / "2025-06-16.tsv", [row("1001")])
    new = write(folder / "2025-06-23.csv", [row("2002")], encoding="utf-8", delimiter=",")
    lock = write(folder / "~$2025-06-24.csv", [row("3003")])
    other = folder / "notes.xlsx"
    other.write_bytes(b"PK")
    for i, path in enumerate([old, new, lock, other]):
        os.utime(path, (1_750_000_000 + i, 1_750_000_000 + i))

    connector = connect("exports")

    assert list(events(connector)) == ["2002"]
    assert "2025-06-23.csv" in connector.check()[0].detail


def test_empty_folder_says_what_to_export(tmp_path, connect):
    (tmp_path / "exports").mkdir()
    with pytest.raises(FatalError, match="holds no .tsv, .csv or .txt file yet. Export 応募者情報"):
        pages(connect("exports"))


# --- rows and categories -------------------------------------------------------------------
def test_bad_rows_are_reported_with_their_line_and_the_rest_still_comes_out(tmp_path, connect):
    write(tmp_path / "export.tsv", [
        row("1001"),
        row("", name="鈴木 花子", email="hanako@example.jp"),        # line 3: no 応募ID
        row("1003", rejected="2025年13月40日"),                       # line 4: bad date
        row("1004", name="鈴木 花子", rejected=""),                   # line 5: 不合格, no date
        row("1005")[:5],                                              # line 6: too few cells
        row("1006", status=""),                                       # line 7: no status
        row("1007"),
    ])
    connector = connect()

    assert list(events(connector)) == ["1001", "1007"]
    found = problems(connector)
    assert [p.split(":")[0] for p in found] == [
        "export.tsv line 3", "export.tsv line 4", "export.tsv line 5", "export.tsv line 6",
        "export.tsv line 7"]
    assert "5 cells where the header has 11" in found[3]
    for text in found:
        assert not any(word in text for word in PERSONAL), text


def test_trailing_empty_cells_and_blank_lines_are_fine(tmp_path, connect):
    path = write(tmp_path / "export.tsv", [[*row("1001"), "", ""], [], row("1002")])
    assert list(events(connect(path))) == ["1001", "1002"]
    assert problems(connect(path)) == []


def test_withdrawal(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001", "辞退", withdrawn="2025年6月18日", rejected=""),
                                    row("1002", "辞退", withdrawn="", rejected="")])
    got = events(connect())
    assert got["1001"].category is Category.CANDIDATE_WITHDREW
    assert got["1001"].rejected_at == datetime(2025, 6, 18, tzinfo=TOKYO)
    # Withdrawals are never mailed, so a missing 辞退日 is no problem: the export's time is used.
    assert got["1002"].category is Category.CANDIDATE_WITHDREW


def test_duplicate_application(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001", "重複応募", rejected="2025年6月17日")])
    (event,) = events(connect()).values()
    assert event.category is Category.OTHER
    assert event.flags.duplicate


@pytest.mark.parametrize("status", ["新着応募", "選考中", "内定", "内定承諾", "入社"])
def test_statuses_that_are_not_rejections_emit_nothing(tmp_path, connect, status):
    write(tmp_path / "export.tsv", [row("1001", status, rejected="")])
    result = pages(connect())
    assert len(result) == 1 and result[0].events == [] and result[0].problems == []
    assert result[0].cursor is not None            # the cursor is stored all the same


def test_unknown_status_is_other_and_keeps_the_raw_row(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001", "保留", rejected="")])
    (event,) = events(connect()).values()
    assert event.category is Category.OTHER and not event.flags.duplicate
    assert event.raw["選考ステータス"] == "保留" and event.raw["応募ID"] == "1001"


def test_custom_status_values(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001", "不採用"), row("1002", "応募者辞退", rejected="")])
    got = events(connect(rejected_values=["不合格", "不採用"], withdrawn_values=["応募者辞退"]))
    assert got["1001"].category is Category.WE_REJECTED
    assert got["1002"].category is Category.CANDIDATE_WITHDREW


@pytest.mark.parametrize("channel, detail, agency", [
    ("エージェント", "", True),
    ("人材紹介", "", True),
    ("Agent", "", True),
    ("その他", "株式会社サンプルエージェント", True),
    ("エージェント", "株式会社サンプル", True),
    ("doda", "パーソルキャリア株式会社", False),
    ("社員紹介", "", False),
    ("自社サイト", "", False),
])
def test_agency_sourced(tmp_path, connect, channel, detail, agency):
    write(tmp_path / "export.tsv", [row(channel=channel, detail=detail)])
    (event,) = events(connect()).values()
    assert event.flags.agency_sourced is agency


@pytest.mark.parametrize("cell, language", [("ja", "ja"), ("日本語", "ja"), ("en", "en"),
                                             ("英語", "en"), ("English", "en"), ("", None)])
def test_language_column(tmp_path, connect, cell, language):
    write(tmp_path / "export.tsv", [[*row(), cell]], header=[*HEADER, "言語"])
    (event,) = events(connect()).values()
    assert event.person.language == language


def test_names_from_separate_columns_and_applicant_id(tmp_path, connect):
    header = ["応募ID", "応募者ID", "姓", "名", "Eメール", "選考ステータス", "不合格日"]
    write(tmp_path / "export.tsv", [["1001", "C-77", "鈴木", "花子", "hanako@example.jp",
                                     "不合格", "2025年6月20日"]], header=header)
    (event,) = events(connect()).values()
    assert (event.person.last_name, event.person.first_name) == ("鈴木", "花子")
    assert event.person.full_name == "鈴木 花子"
    assert event.candidate_id == "C-77"
    assert event.person.emails == ["hanako@example.jp"]


def test_stage_from_the_older_interview_columns(tmp_path, connect):
    header = ["応募ID", "氏名", "メールアドレス", "選考ステータス", "不合格日",
              "1次面接実施日", "1次面接評価者", "2次面接実施日", "最終面接実施日"]
    write(tmp_path / "export.tsv", [
        ["1001", "山田 太郎", "taro@example.com", "不合格", "2025年6月20日",
         "2025年6月10日", "評価者A", "2025年6月17日", ""],
        ["1002", "山田 太郎", "taro@example.com", "不合格", "2025年6月20日", "", "", "", ""],
    ], header=header)
    got = events(connect())
    assert got["1001"].stage == "2次面接"
    assert got["1002"].stage == ""


def test_personal_data_stays_out_of_repr_and_errors(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001"), row("1002", rejected="yesterday")])
    connector = connect()
    result = pages(connector)
    (event,) = result[0].events
    texts = [repr(event), str(event), repr(event.person), repr(connector),
             *(str(p) for p in result[0].problems), *(repr(p) for p in result[0].problems)]
    for text in texts:
        assert not any(word in text for word in PERSONAL), text
    assert "yesterday" not in str(result[0].problems[0])


# --- the file as a whole -------------------------------------------------------------------
def test_unchanged_file_yields_no_pages(tmp_path, connect):
    path = write(tmp_path / "export.tsv", [row("1001")])
    connector = connect()
    (first,) = pages(connector)
    cursor = json.loads(first.cursor)
    assert cursor["file"] == "export.tsv" and cursor["size"] == path.stat().st_size
    assert set(cursor) == {"file", "size", "mtime_ns", "sha256", "rows"}

    assert pages(connector, first.cursor) == []
    os.utime(path, (1_800_000_000, 1_800_000_000))           # touched, same content
    assert pages(connector, first.cursor) == []

    write(path, [row("1001"), row("1002")])
    again = pages(connector, first.cursor)
    assert [e.application_id for e in again[0].events] == ["1001", "1002"]
    assert again[-1].cursor != first.cursor
    assert pages(connector, "not a cursor of this connector")   # unreadable: read again


def test_a_re_export_of_the_same_data_is_recognised_without_reading_its_rows(tmp_path, connect,
                                                                               monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()
    write(folder / "export-1.tsv", [row("1001"), row("1002", name="鈴木 花子")])
    connector = connect(folder)
    (first,) = pages(connector)
    assert len(first.events) == 2
    # HR exports again: another name and encoding, comma-separated, a meta row, rows swapped
    later = write(folder / "export-2.csv", [row("1002", name="鈴木 花子"), row("1001")],
                  encoding="utf-8-sig", delimiter=",", meta=("出力日時: 2025/06/24 10:00",))
    os.utime(later, (1_900_000_000, 1_900_000_000))
    translated = []
    monkeypatch.setattr(connector, "to_event", lambda *a: translated.append(a))
    (same,) = pages(connector, first.cursor)
    assert same.events == [] and translated == []          # no row went to the core
    assert json.loads(same.cursor)["file"] == "export-2.csv"
    assert json.loads(same.cursor)["rows"] == json.loads(first.cursor)["rows"]
    assert pages(connector, same.cursor) == []              # and now by its bytes
    monkeypatch.undo()
    write(later, [row("1002", name="鈴木 花子"), row("1001", status="辞退")],
          encoding="utf-8-sig", delimiter=",")               # one row changed: read again
    os.utime(later, (1_900_000_100, 1_900_000_100))
    changed = pages(connector, same.cursor)
    assert {e.application_id for p in changed for e in p.events} == {"1001", "1002"}


def test_pages_hold_at_most_500_and_only_the_last_carries_the_cursor(tmp_path, connect):
    rows = [row(str(i)) for i in range(2 * PAGE_SIZE + 1)]
    rows[7] = row("bad", rejected="2025年13月40日")             # problems count towards a page
    write(tmp_path / "export.tsv", rows)
    connector = connect()

    result = pages(connector, "previous")

    assert [len(p.events) + len(p.problems) for p in result] == [PAGE_SIZE, PAGE_SIZE, 1]
    assert [p.cursor for p in result[:-1]] == ["previous", "previous"]
    assert json.loads(result[-1].cursor)["sha256"]
    assert result[0].problems and "line 9" in str(result[0].problems[0])


def test_full_page_multiple_still_ends_with_a_cursor_page(tmp_path, connect):
    write(tmp_path / "export.tsv", [row(str(i)) for i in range(PAGE_SIZE)])
    result = pages(connect())
    assert [len(p.events) for p in result] == [PAGE_SIZE, 0]
    assert result[0].cursor is None and result[-1].cursor is not None


def test_large_export_is_streamed(tmp_path, connect):
    path = tmp_path / "export.tsv"
    with path.open("w", encoding="utf-16", newline="") as fh:
        fh.write("\t".join(HEADER) + "\r\n")
        # One in ten rejected: the reader sees every row, pydantic builds fewer events.
        rejected = "\t".join(row("{}", email="u{}@example.com")) + "\r\n"
        ongoing = "\t".join(row("{}", "選考中", email="u{}@example.com")) + "\r\n"
        for i in range(100_000):
            fh.write((ongoing if i % 10 else rejected).format(i, i))
    connector = connect()

    tracemalloc.start()
    try:
        count = sum(len(p.events) for p in connector.poll(None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert count == 10_000
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_missing_required_column_is_a_clear_error(tmp_path, connect):
    header = [h for h in HEADER if h != "選考ステータス"]
    write(tmp_path / "export.tsv", [row()[:6] + row()[7:]], header=header)
    connector = connect()
    with pytest.raises(FatalError, match="no column 選考ステータス. Add it to the 応募者情報"):
        pages(connector)
    required = connector.check()[-1]
    assert not required.ok and required.detail == "missing: 選考ステータス"


def test_missing_name_column(tmp_path, connect):
    write(tmp_path / "export.tsv", [["1001", "不合格", "taro@example.com", "山田"]],
          header=["応募ID", "選考ステータス", "メールアドレス", "姓"])
    with pytest.raises(FatalError, match=r"no column 氏名 \(or 姓 and 名\)"):
        pages(connect())


@pytest.mark.parametrize("content", [
    b"\x00\x01\x02\xff\xfe\x00garbage" * 10,
    "氏名\tメールアドレス\n山田 太郎\ttaro@example.com\n".encode(),
], ids=["binary", "no-id-column"])
def test_a_file_without_a_header_tells_hr_what_to_export(tmp_path, connect, content):
    (tmp_path / "export.tsv").write_bytes(content)
    connector = connect()
    with pytest.raises(FatalError) as info:
        pages(connector)
    message = str(info.value)
    assert "no header row with 応募ID" in message and "Export 応募者情報 from HRMOS採用" in message
    assert "sources[0].column_map" in message
    assert not any(word in message for word in PERSONAL)
    assert not connector.check()[-1].ok


# --- settings ------------------------------------------------------------------------------
def test_missing_file_is_a_config_error_on_the_path(tmp_path, connect):
    connector = connect("nowhere/export.tsv", index=1)
    with pytest.raises(ConfigError) as info:
        pages(connector)
    assert info.value.key == "sources[1].path"
    assert "Check the path" in str(info.value)
    assert not connector.check()[0].ok


@pytest.mark.parametrize("options, key", [
    ({"path": ""}, "sources[0].path"),
    ({"encoding": "klingon"}, "sources[0].encoding"),
    ({"column_map": {"mail": "Mail"}}, "sources[0].column_map"),
    ({"column_map": {"email": " "}}, "sources[0].column_map"),
    ({"default_language": "fr"}, "sources[0].default_language"),
    ({"rejected_values": []}, "sources[0].rejected_values"),
    ({"withdrawn_values": "辞退"}, "sources[0].withdrawn_values"),
    ({"colum_map": {}}, "sources[0].colum_map"),
])
def test_settings_errors_name_the_key(connect, options, key):
    with pytest.raises(ConfigError) as info:
        connect(**{"path": "export.tsv", **options})
    assert info.value.key == key
    assert key in str(info.value)


def test_path_is_required(make_config):
    config = make_config({"sources": [{"name": "hrmos", "type": "hrmos_export"}]})
    with pytest.raises(ConfigError) as info:
        HrmosExport(config.sources[0], config, 0)
    assert info.value.key == "sources[0].path"


def test_status_values_cannot_be_both(connect):
    with pytest.raises(ConfigError, match="cannot be both rejected and withdrawn"):
        connect(rejected_values=["不合格", "辞退"])


def test_registered():
    from relay_core.contract.registry import connector_class

    assert connector_class("hrmos_export") is HrmosExport


# --- the shipped example -------------------------------------------------------------------
def test_shipped_example(make_config):
    example = ROOT / "examples" / "hrmos_export.tsv"
    assert example.read_bytes()[:2] == b"\xff\xfe"
    config = make_config({"sources": [{"name": "hrmos", "type": "hrmos_export",
                                       "path": str(example)}]})
    connector = HrmosExport(config.sources[0], config, 0)

    result = pages(connector)
    got = {e.application_id: e for p in result for e in p.events}

    assert {k: e.category for k, e in got.items()} == {
        "1000101": Category.WE_REJECTED, "1000102": Category.WE_REJECTED,
        "1000103": Category.WE_REJECTED, "1000104": Category.WE_REJECTED,
        "1000105": Category.CANDIDATE_WITHDREW, "1000106": Category.WE_REJECTED,
        "1000107": Category.WE_REJECTED, "1000108": Category.OTHER}
    assert [str(p) for p in result[-1].problems] == [
        "hrmos_export.tsv line 11: the date in 不合格・重複終了日 cannot be read; "
        "write it as 2025年6月1日, 2025/6/1 or 2025-06-01"]
    assert got["1000101"].stage == "1次面接" and got["1000102"].stage == "書類選考"
    assert got["1000104"].person.language == "en"
    assert got["1000104"].person.full_name == "Emily Carter"
    assert got["1000107"].flags.agency_sourced and got["1000108"].flags.duplicate
    assert all(c.ok for c in connector.check())

    # The team's example run: --now 2025-06-23T11:00:00+09:00, max_age_days = 14.
    now = datetime(2025, 6, 23, 11, tzinfo=TOKYO)
    eligible = sorted(k for k, e in got.items() if assess(e, config, now).eligible)
    assert eligible == ["1000101", "1000102", "1000103", "1000104"]
    assert "days ago" in assess(got["1000106"], config, now).reason


# --- the same person in process elsewhere; the feedback column (issue 10) -------------------
def test_a_person_still_in_process_for_another_position_is_flagged(tmp_path, connect):
    """The export lists every application, so the same address with a 選考中 row means the
    person is still in process elsewhere: mailed without the invitation by default."""
    write(tmp_path / "export.tsv", [
        row("1001"),                                              # rejected, 選考中 for 1002
        row("1002", "選考中", job="経理", rejected=""),
        row("1003", name="鈴木 花子", email="hanako@example.jp"),   # rejected, nothing else
        row("1004", "辞退", withdrawn="2025年6月18日", rejected="")])
    connector = connect()
    got = events(connector)
    assert got["1001"].flags.in_process_elsewhere is True
    assert got["1003"].flags.in_process_elsewhere is False
    assert got["1004"].flags.in_process_elsewhere is None       # a withdrawal: not asked
    decision = assess(got["1001"], connector.config, datetime(2025, 6, 21, tzinfo=TOKYO))
    assert decision.eligible and not decision.invite
    assert "another position" in decision.invite_note


def test_an_export_of_finished_rows_only_cannot_tell(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001"), row("1003", email="hanako@example.jp")])
    got = events(connect())
    assert got["1001"].flags.in_process_elsewhere is None


def test_only_the_designated_feedback_column_is_read(tmp_path, connect):
    header = [*HEADER, "候補者へのフィードバック", "面接官メモ"]
    write(tmp_path / "export.tsv", [
        [*row("1001"), "ご経験を具体的にお話しいただきました。", "INTERNAL: 年齢が気になる"],
        [*row("1002", email="b@example.com"), "", "INTERNAL"]], header=header)
    got = events(connect(feedback_field="候補者へのフィードバック"))
    assert got["1001"].feedback == "ご経験を具体的にお話しいただきました。"
    assert got["1002"].feedback == ""
    assert "INTERNAL" not in got["1001"].feedback
    assert events(connect())["1001"].feedback == ""               # not configured: nothing


def test_a_missing_feedback_column_names_the_key(tmp_path, connect):
    write(tmp_path / "export.tsv", [row("1001")])
    connector = connect(feedback_field="候補者へのフィードバック")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.feedback_field"):
        pages(connector)
    result = {c.what.split(": ")[1]: c for c in connector.check()}["feedback column"]
    assert not result.ok and "feedback_field" in result.detail
