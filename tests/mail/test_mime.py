"""build_mail writes the MIME bytes itself (mail/mime.py, issue 14 item 5): they must be exactly
the bytes EmailMessage and the email package's generator write for the same mail, and parse to
the same message, for every body encoding the package would choose and for awkward names."""

from __future__ import annotations

import email
import email.policy
import random
from email import quoprimime

import pytest

from relay_core.errors import FatalError
from relay_core.mail import message as m
from relay_core.mail import mime
from tests.mail.test_message import MID, WHEN, config

STOCK = email.policy.SMTP.clone(cte_type="7bit")   # the email package's own, no caches
NAMES = ["山田 太郎", "Candidate 7", '"Quoted, Name"', "O'Brien \"Bob\"", "Müller, Hans",
         "山田 " * 30, "a" * 90, "", "x@y", "Taro 山田 (テスト)"]
BODIES = [
    ("山田 太郎 様\n\n本文です。\n" * 12, "<p>山田 太郎 様</p>\n" * 40),   # base64, QP
    ("Dear Candidate 7,\nThank you.\n", "<p>Dear Candidate 7</p>"),        # 7bit
    ("株式会社サンプル works with agencies. " * 9 + "\n" * 3, "<p>é</p>\n" * 5),
    (".\nFrom here\n.. two dots\ntrailing space \ttab\t\n=3D= sign\n" + "x" * 200 + "\n",
     "<a href=\"https://relay.example.co.jp/r/" + "A" * 120 + "\">link</a>\n" * 12),
    ("", ""),
    ("no final newline", "\r\nlone CR\rand CRLF\r\n" + "ü " * 60),
    ("\t" * 80 + "\n" + " " * 77 + "\n" + "=" * 100, "x" * 75 + " \n" + "y" * 76 + "\t\n"),
]


def _both(cfg, seed: int, **fields) -> tuple[bytes, bytes]:
    """(build_mail's bytes, the email package's bytes for build_message), same boundary."""
    random.seed(seed)
    fast = m.build_mail(cfg, **fields).data
    random.seed(seed)
    slow = m.build_message(cfg, **fields).as_bytes(policy=STOCK)
    return fast, slow


def _parsed(data: bytes) -> list:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    headers = [(k, str(v)) for k, v in msg.items()]
    parts = [([(k, str(v)) for k, v in p.items()], p.get_content()) for p in msg.iter_parts()]
    return [headers, msg.get_content_type(), parts]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("language", ["ja", "en", "bilingual", None])
def test_the_same_bytes_as_the_email_package_for_every_name(tmp_path, name, language):
    cfg = config(tmp_path, sender_name_en="Recruiting")
    for subject in ("選考結果のご連絡（株式会社サンプル）", "Your application " * 8):
        fast, slow = _both(cfg, 11, to_addr="taro@example.com", to_name=name,
                           subject=subject, text=BODIES[0][0], html=BODIES[0][1],
                           message_id=MID, date=WHEN, language=language)
        assert fast == slow
        assert _parsed(fast) == _parsed(slow)


@pytest.mark.parametrize("text, html", BODIES)
def test_the_same_bytes_as_the_email_package_for_every_body(tmp_path, text, html):
    cfg = config(tmp_path, reply_to="")
    for seed in range(3):
        fast, slow = _both(cfg, seed, to_addr="hanako@example.com", to_name="山田 花子",
                           subject="件名", text=text, html=html, message_id=MID, date=WHEN,
                           language="ja")
        assert fast == slow
        parsed = _parsed(fast)
        assert parsed == _parsed(slow)
        assert parsed[1] == "multipart/alternative"
        assert [dict(h)["Content-Type"] for h, _ in parsed[2]] == [
            'text/plain; charset="utf-8"', 'text/html; charset="utf-8"']
        assert "Reply-To" not in dict(parsed[0])


def test_the_encodings_the_email_package_chooses_are_all_covered(tmp_path):
    cfg = config(tmp_path)
    seen = set()
    for text, html in BODIES:
        data = m.build_mail(cfg, to_addr="a@example.com", to_name="A", subject="s", text=text,
                            html=html, message_id=MID, date=WHEN).data
        msg = email.message_from_bytes(data, policy=email.policy.default)
        seen |= {p["Content-Transfer-Encoding"] for p in msg.iter_parts()}
    assert seen == {"7bit", "base64", "quoted-printable"}


def test_a_boundary_found_in_a_body_is_avoided(tmp_path):
    # The generator looks for it too, but its "$" never matches before a CRLF line end, so it
    # would keep the boundary and the text part would be cut there: here the next one is used.
    cfg = config(tmp_path)
    random.seed(5)
    drawn = "=" * 15 + (email.generator._fmt % random.randrange(2 ** 63 - 1)) + "=="
    text = f"--{drawn}\n--{drawn}.0--\n"    # 7bit, so the lines are in the part as they are
    random.seed(5)
    data = m.build_mail(cfg, to_addr="a@example.com", to_name="A", subject="s", text=text,
                        html="<p>x</p>", message_id=MID, date=WHEN).data
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_boundary() == f"{drawn}.1"
    assert [p.get_content().replace("\r\n", "\n") for p in msg.iter_parts()] == [
        text, "<p>x</p>\n"]


def test_quoted_printable_is_quoprimime_exactly():
    rnd = random.Random(1)
    alphabet = "ab =\t.Fromxyz\u3042\u00e9\r\n\x00\x7f"
    samples = ["", "\n", "=", " ", "a" * 76 + " ", "a" * 75 + "\t", "a" * 74 + "=\n"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 400)))
                for _ in range(2000)]
    for sample in samples:
        data = sample.encode("utf-8")
        for width in (76, 78):
            assert mime.quoted_printable(data, width) == quoprimime.body_encode(
                data.decode("latin-1"), width)


@pytest.mark.parametrize("value", ["x\r\nBcc: evil@example.com", "x\rBcc: y", "x\nBcc: y"])
def test_a_header_folded_with_a_line_break_is_refused(value):
    class Unpatched:   # folds as an interpreter without the CVE-2024-6923 fix could
        def header_store_parse(self, name, v):
            return name, v

        def fold_binary(self, name, v):
            return f"{name}: {v}\r\n".encode()

    with pytest.raises(FatalError) as caught:
        mime.header_lines(Unpatched(), [("Subject", value)])   # type: ignore[arg-type]
    assert "evil" not in str(caught.value) and "Subject" in str(caught.value)
    assert mime.header_lines(Unpatched(), [("Subject", "x\r\n y")]) == b"Subject: x\r\n y\r\n"


def test_the_name_check_still_guards_build_mail(tmp_path, monkeypatch):
    # Input checks bypassed: the encoded line break must still not become a header.
    monkeypatch.setattr(m, "has_unsafe_chars", lambda value: False)
    with pytest.raises((FatalError, ValueError)):
        m.build_mail(config(tmp_path), to_addr="a@example.com",
                     to_name="=?utf-8?q?X=0D=0ABcc:_evil@example.com?=", subject="s", text="t",
                     html="h", message_id=MID, date=WHEN)
    with pytest.raises((FatalError, ValueError)):
        m.build_mail(config(tmp_path), to_addr="a@example.com", to_name="X\r\nBcc: e@x.y",
                     subject="s", text="t", html="h", message_id=MID, date=WHEN)
