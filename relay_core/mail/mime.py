"""Writing a mail's bytes without the email generator: the exact bytes that `EmailMessage`
(set_content + add_alternative) and `BytesGenerator` write for build_message, at a third of
the cost (tests/mail/test_mime.py compares the two byte for byte, and parsed).

Every header still goes through the email package: the policy's `header_store_parse` (which
refuses CR/LF), the header registry and the policy's folding, as `EmailMessage.__setitem__`
and the generator do it; nothing from the ATS is written into a header by hand. What is
written here is the MIME frame, whose text is fixed (boundary lines, the parts' own headers),
and the two bodies, encoded by the email package's rules (contentmanager `_encode_text`: 7bit
when every line is ASCII and short enough, else quoted-printable or base64, whichever its
sniff of the first ten lines finds shorter) with binascii and a regex instead of its
pure-Python loops. A folded header with a bare CR or LF is refused, as the generator of a
patched interpreter does (CVE-2024-6923).
"""

from __future__ import annotations

import binascii
import random
import re
import sys
from email import generator
from email.policy import EmailPolicy

from relay_core.errors import FatalError

Header = tuple[str, object]
CRLF = "\r\n"
_QP_UNSAFE = re.compile(rb"[^\t\r\n -<>-~]+")   # what quoted-printable must quote in a body
_BARE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n(?![ \t])")


def header_lines(policy: EmailPolicy, headers: list[Header]) -> bytes:
    """The folded header lines, as `msg[name] = value` and the generator make them."""
    out = []
    for name, value in headers:
        folded = policy.fold_binary(*policy.header_store_parse(name, value))
        if not folded.endswith(b"\r\n") or _BARE_BREAK.search(folded, 0, len(folded) - 2):
            raise FatalError(f"the {name} header would carry a line break; refusing to build "
                             "the message")
        out.append(folded)
    return b"".join(out)


_quoted: dict[bytes, bytes] = {}


def _quote(found: re.Match) -> bytes:
    # A template's words come back in every mail: each run of bytes is quoted once.
    run = found.group()
    quoted = _quoted.get(run)
    if quoted is None:
        quoted = ("=" + run.hex("=").upper()).encode("ascii")
        if len(_quoted) >= 4096:
            _quoted.clear()
        _quoted[run] = quoted
    return quoted


def quoted_printable(body: bytes, maxlinelen: int) -> str:
    """email.quoprimime.body_encode(body.decode("latin-1"), maxlinelen), the same string:
    the quoting is one regex over the bytes instead of a per-character translate."""
    if not body:
        return ""
    text = _QP_UNSAFE.sub(_quote, body).decode("ascii")
    encoded: list[str] = []
    append = encoded.append
    maxlinelen1 = maxlinelen - 1
    for line in text.splitlines():
        # From here on, quoprimime's loop as it is (soft breaks never split an escape).
        start = 0
        laststart = len(line) - 1 - maxlinelen
        while start <= laststart:
            stop = start + maxlinelen1
            if line[stop - 2] == "=":
                append(line[start:stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + "=")
                start = stop
        if line and line[-1] in " \t":
            room = start - laststart
            if room >= 3:
                q = f"={ord(line[-1]):02X}"
            elif room == 2:
                q = line[-1] + "=\n"
            else:
                q = f"=\n={ord(line[-1]):02X}"
            append(line[start:-1] + q)
        else:
            append(line[start:])
    if text[-1] in "\r\n":
        append("")
    return "\n".join(encoded)


def _base64(data: bytes, max_line_length: int) -> str:
    # contentmanager._encode_base64: max_line_length // 4 * 3 bytes a line, each line in one
    # b2a_base64 call; encoding it all at once and cutting the lines is the same text.
    width = max_line_length // 4 * 4
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(encoded[i:i + width] + "\n" for i in range(0, len(encoded), width))


def encode_text(string: str, policy: EmailPolicy) -> tuple[str, str]:
    """(Content-Transfer-Encoding, body with LF line ends) of a UTF-8 text part: what
    contentmanager's set_text_content chooses and writes, for policy.cte_type "7bit"."""
    lines = string.encode("utf-8").splitlines()
    width = policy.max_line_length
    if max((len(x) for x in lines), default=0) <= width:
        normal = b"\n".join(lines) + b"\n"
        if normal.isascii():
            return "7bit", normal.decode("ascii")
    linesep = policy.linesep.encode("ascii")
    sniff = linesep.join(lines[:10]) + linesep
    sniff_qp = quoted_printable(sniff, width)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", _base64(linesep.join(lines) + linesep, width)
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    return "quoted-printable", quoted_printable(b"\n".join(lines) + b"\n", width)


def _part(policy: EmailPolicy, subtype: str, string: str, extra: list[Header]) -> bytes:
    cte, body = encode_text(string, policy)
    head = header_lines(policy, [("Content-Type", f'text/{subtype}; charset="utf-8"'),
                                 ("Content-Transfer-Encoding", cte), *extra])
    return head + b"\r\n" + body.replace("\n", CRLF).encode("ascii")


_PLACEHOLDER = "=" * 15 + "0" * len(generator._fmt % 0) + "=="
_frames: dict[int, tuple[EmailPolicy, bytes]] = {}


def _multipart_header(policy: EmailPolicy, boundary: str) -> bytes:
    """The folded Content-Type of the mail: folded once per policy with a boundary of the
    generator's shape (only its digits differ from mail to mail, and folding goes by length),
    then given this mail's digits. Any other boundary is folded for itself."""
    value = 'multipart/alternative; boundary="{}"'
    if len(boundary) != len(_PLACEHOLDER) or not boundary[15:-2].isdigit():
        return header_lines(policy, [("Content-Type", value.format(boundary))])
    cached = _frames.get(id(policy))
    if cached is None or cached[0] is not policy:
        cached = _frames[id(policy)] = (policy, header_lines(
            policy, [("Content-Type", value.format(_PLACEHOLDER))]))
    return cached[1].replace(_PLACEHOLDER.encode("ascii"), boundary.encode("ascii"))


def _boundary(text: bytes) -> str:
    """The generator's _make_boundary: the same random draw and format, and another one
    (".0", ".1", ...) when a line of the parts is the boundary. Unlike the generator (whose
    "$" never matches before a CRLF line end) the clash is found; the regex is compiled only
    when the parts hold the boundary at all."""
    boundary = "=" * 15 + (generator._fmt % random.randrange(sys.maxsize)) + "=="
    if f"--{boundary}".encode("ascii") not in text:
        return boundary
    chosen, counter = boundary, 0
    while re.search(b"^--" + re.escape(chosen.encode("ascii")) + b"(--)?\r?$", text,
                    re.MULTILINE):
        chosen = f"{boundary}.{counter}"
        counter += 1
    return chosen


def write_alternative(policy: EmailPolicy, top: list[Header], after: list[Header], text: str,
                      html: str) -> bytes:
    """A multipart/alternative mail: `top` headers, MIME-Version, the Content-Type with its
    boundary, `after` headers (Content-Language), then the text and the HTML part."""
    parts = [_part(policy, "plain", text, []),
             # add_alternative makes the HTML part a message of its own: it has MIME-Version.
             _part(policy, "html", html, [("MIME-Version", "1.0")])]
    boundary = _boundary(b"\r\n".join(parts))
    head = b"".join((header_lines(policy, [*top, ("MIME-Version", "1.0")]),
                     _multipart_header(policy, boundary), header_lines(policy, after)))
    dash = f"--{boundary}".encode("ascii")
    return b"".join((head, b"\r\n", dash, b"\r\n", parts[0], b"\r\n", dash, b"\r\n", parts[1],
                     b"\r\n", dash, b"--\r\n"))
