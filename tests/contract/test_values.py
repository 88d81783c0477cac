"""relay_core.contract.values: ATS values read defensively."""

from __future__ import annotations

from relay_core.contract.values import clean_text, zone_name


def test_clean_text_turns_layout_into_one_space():
    assert clean_text(" 営業\r\n(中途)\u2028x ") == "営業 (中途) x"
    assert clean_text(None) == ""


def test_zone_name_keeps_only_zones_the_system_knows():
    assert zone_name("Asia/Tokyo") == "Asia/Tokyo"
    assert [zone_name(v) for v in ("Mars/Olympus", "", None, 9, "../etc")] == [None] * 5
