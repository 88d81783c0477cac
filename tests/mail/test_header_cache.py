"""Building a mail parses each header value once and folds each header once (issue 14
item 5): the bytes must be exactly those of the stock email policy, also for names that need
quoting, RFC 2047 encoding or folding, and a shared header must never leak between mails."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, datetime

import pytest

from relay_core.mail import message as m
from tests.mail.test_message import config

NAMES = ["山田 太郎", '"Quoted, Name"', "O'Brien \"Bob\"", "山田 " * 30, "Müller, Hans",
         "Ünïcødé Ñame with a rather long display name that has to be folded somewhere", "a" * 90,
         "", "name (comment)", "x@y"]


def _build(cfg, policy, name, subject, seed):
    saved = m.POLICY
    m.POLICY = policy
    try:
        random.seed(seed)   # the same MIME boundary for both policies
        return m.build_mail(cfg, to_addr="taro@example.com", to_name=name, subject=subject,
                            text="本文です。\n" * 20, html="<p>本文です。</p>", date=m_date(),
                            message_id="<relay.1@example.co.jp>", language="ja").data
    finally:
        m.POLICY = saved


def m_date():
    return datetime(2025, 6, 23, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", NAMES)
def test_the_bytes_are_those_of_the_stock_policy(tmp_path, name):
    cfg = config(tmp_path)
    stock = email.policy.SMTP.clone(cte_type="7bit")
    for subject in ("不採用のお知らせ", "Your application " * 8):
        for _ in range(2):   # the second time from the caches
            assert _build(cfg, m.POLICY, name, subject, 7) == _build(cfg, stock, name, subject, 7)


def test_a_cached_header_does_not_leak_into_another_mail(tmp_path):
    cfg = config(tmp_path)
    first = _build(cfg, m.POLICY, "山田 太郎", "件名", 1)
    second = _build(cfg, m.POLICY, "佐藤 花子", "件名", 1)
    assert first != second
    parsed = email.message_from_bytes(second, policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == "佐藤 花子"
    assert _build(cfg, m.POLICY, "山田 太郎", "件名", 1) == first
