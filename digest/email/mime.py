"""The wire format of a digest: header values that cannot inject, and a fast MIME writer.

Two jobs, both about bytes on the wire:

- **Safe header values.** Every value that reaches a header (subject built from
  topic labels and paper titles, sender name and address, recipient,
  Message-ID, link URLs) goes through `header_text` / `address` / `url` here,
  which refuse line breaks and control characters with `BadInput`. A Python
  without the fix for CVE-2024-6923 has a header folder that can let a newline
  inside an encoded word start a new header. We never hand the folder a value
  that could carry one.
- **A fixed multipart/alternative writer.** `email.message.EmailMessage`
  serialisation is general, and costs more than rendering the templates
  (bench/render.py prints both). Our messages always have the same shape (a
  quoted-printable text part, an HTML part, UTF-8), so
  `build_message_bytes` writes that shape directly:
  headers folded at 78 columns, RFC 2047 Q-encoded words for non-ASCII text,
  `binascii` (C) for the bodies, CRLF line endings. The tests compare its
  output with the same message built by the stdlib (tests/stdlib_message.py).
- **A 7bit HTML part where it can be.** Base64 makes the HTML part a third
  larger, and every byte is paid again by the socket, the relay and the
  mailbox. Like the stdlib's own choice of transfer encoding (7bit when the
  text is ASCII in short lines), the HTML goes as 7bit once it is made so:
  every character outside ASCII becomes a character reference (which a
  browser reads as the character), and a line over 998 octets is broken
  between two attributes of a tag, where a line break is just space. When
  that cannot be done (a reference would land in a style or script element,
  where references are not read, or stand for a C1 control, which HTML reads
  as another character; a NUL, which 7bit data may not hold; a long line with
  no such place; the boundary in the text) the part goes in base64, as before.

`List-Unsubscribe` is always written on one unfolded line: CPython's folder may
RFC 2047-encode a long one (gh-85725), which mail clients then cannot use.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from itertools import chain

from digest.errors import BadInput
from digest.values import CrlfBytes

CRLF = "\r\n"
FOLD_AT = 78  # RFC 5322 "SHOULD" line length
MAX_LINE = 998  # RFC 5322 "MUST" line length
ENCODED_WORD_MAX = 75  # RFC 2047; with the leading space of a folded line, 76 < 78

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: anything a
# header parser (or str.splitlines) could take for the end of a line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
# ASCII only, spelt out: with IGNORECASE, [a-z] would also take the long s (U+017F)
# and the Kelvin sign (U+212A), which fold to s and k; the classes already hold A-Z
# (in ?-\[), and a pattern without the flag runs several times faster, once per link.
_URL = re.compile(r"[hH][tT][tT][pP][sS]?://[!#-;=?-\[\]_a-z~]+")
_MAILTO = re.compile(r"[mM][aA][iI][lL][tT][oO]:[!#-;=?-\[\]_a-z~]+")
_MESSAGE_ID = re.compile(r"<[!#-;=?-~]+@[!#-;=?-~]+>")
# Characters that stand for themselves in a Q-encoded word in any header
# position (RFC 2047 section 5, rule 3: the strictest, valid inside phrases too).
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def header_text(value: str, what: str) -> str:
    """`value` unchanged if it is safe to put in a header, else BadInput naming `what`."""
    if _UNSAFE.search(value):
        raise BadInput(f"{what} must not contain line breaks or control characters: {value!r}")
    return value


def address(value: str, what: str) -> str:
    """An addr-spec safe for headers and SMTP: ASCII local part, IDNA domain."""
    header_text(value, what)
    local, sep, domain = value.strip().rpartition("@")
    if not sep or not local or not domain:
        raise BadInput(f"{what} is not an email address: {value!r}")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise BadInput(f"{what} has an invalid domain: {value!r}") from None
    if not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise BadInput(f"{what} is not an email address this mailer can send to: {value!r}")
    return f"{local}@{domain}"


def url(value: str, what: str) -> str:
    """An absolute http(s) URL with nothing that needs quoting (no spaces, quotes, <>)."""
    if not _URL.fullmatch(value):
        raise BadInput(f"{what} must be an absolute http(s) URL without spaces: {value!r}")
    return value


def mailto(value: str, what: str) -> str:
    if not _MAILTO.fullmatch(value):
        raise BadInput(f"{what} must be a mailto: URL without spaces: {value!r}")
    return value


def message_id(value: str, what: str = "Message-ID") -> str:
    """`<left@right>`; brackets are added when missing."""
    header_text(value, what)
    bracketed = value if value.startswith("<") else f"<{value}>"
    if not _MESSAGE_ID.fullmatch(bracketed) or bracketed.count("@") != 1:
        raise BadInput(f"{what} must look like <id@domain>: {value!r}")
    return bracketed


def date_header(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadInput(f"the digest's issue time must be timezone-aware: {moment!r}")
    return format_datetime(moment.astimezone(UTC))


# --- encoding header values into folding units ---


def encoded_words(text: str, first_max: int = ENCODED_WORD_MAX) -> list[str]:
    """`text` as RFC 2047 Q-encoded words, each at most ENCODED_WORD_MAX characters.

    Splits only between characters, so no word ends inside a UTF-8 sequence;
    whitespace between adjacent encoded words is ignored by decoders, so the
    words may be folded onto separate lines.
    """
    overhead = len("=?utf-8?q??=")
    room = min(first_max, ENCODED_WORD_MAX) - overhead
    pieces = [_Q_PIECES[char] for char in text]
    words: list[str] = []
    start = 0
    used = 0
    for i, piece in enumerate(pieces):
        if used + len(piece) > room and i > start:
            words.append("=?utf-8?q?" + "".join(pieces[start:i]) + "?=")
            start, used = i, 0
            room = ENCODED_WORD_MAX - overhead
        used += len(piece)
    if start < len(pieces):
        words.append("=?utf-8?q?" + "".join(pieces[start:]) + "?=")
    return words


class _QPieces(dict[str, str]):
    """char -> its Q encoding, computed once per distinct character."""

    def __missing__(self, char: str) -> str:
        if char in _Q_SAFE:
            piece = char
        elif char == " ":
            piece = "_"
        else:
            piece = "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
        if len(self) < 20_000:  # bounded: any text can reach a subject
            self[char] = piece
        return piece


_Q_PIECES = _QPieces()


def unstructured(text: str, first_max: int = ENCODED_WORD_MAX) -> list[str]:
    """Folding units of an unstructured header value (Subject)."""
    text = " ".join(text.split())
    if text.isascii() and "=?" not in text:  # "=?" could be taken for an encoded word
        return text.split(" ") if text else []
    return encoded_words(text, first_max)


def phrase(name: str, first_max: int = ENCODED_WORD_MAX) -> list[str]:
    """Folding units of a display name (From, List-Id): atoms, a quoted string, or encoded words."""
    name = " ".join(name.split())
    if not name.isascii() or "=?" in name:
        return encoded_words(name, first_max)
    if _ATEXT.fullmatch(name):
        return name.split(" ")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return [f'"{quoted}"']


def mailbox(name: str, addr: str, first_max: int = ENCODED_WORD_MAX) -> list[str]:
    if not name.strip():
        return [addr]
    return [*phrase(name, first_max), f"<{addr}>"]


def _room(name: str) -> int:
    """Room for the first unit on a header's first line ("Name: " takes the rest)."""
    return FOLD_AT - len(name) - 2


def fold(name: str, units: Sequence[str]) -> str:
    """One header, folded before a unit whenever the line would pass 78 columns."""
    lines: list[str] = []
    line = name + ":"
    fresh = True
    for unit in units:
        if not fresh and len(line) + 1 + len(unit) > FOLD_AT:
            lines.append(line)
            line = " " + unit
        else:
            line += " " + unit
        fresh = False
    lines.append(line)
    if any(len(each) > MAX_LINE for each in lines):
        raise BadInput(f"the {name} header would have a line longer than {MAX_LINE} characters")
    return CRLF.join(lines) + CRLF


def one_line(name: str, value: str) -> str:
    """A header kept on one line, never folded or encoded (List-Unsubscribe)."""
    line = f"{name}: {value}"
    if len(line) > MAX_LINE:
        raise BadInput(f"the {name} header is longer than {MAX_LINE} characters: shorten the URLs")
    return line + CRLF


# --- the message ---


@dataclass(frozen=True, slots=True)
class Envelope:
    """The headers of one digest, every value already checked by the functions above."""

    from_name: str
    from_addr: str
    to_addr: str
    subject: str
    date: str
    message_id: str
    list_id_name: str
    list_id: str
    list_unsubscribe: str  # "<https://...>, <mailto:...>"

    def boundary(self) -> str:
        """A deterministic boundary (same view, same bytes) that cannot occur in QP or base64."""
        return "=_digest_" + hashlib.sha256(self.message_id.encode()).hexdigest()[:24]


def _crlf_bytes(body: str) -> bytes:
    """`body` in UTF-8 with CRLF line endings and a final line break. Encoded first:
    replacing in bytes is cheaper than in a str that holds a non-ASCII character (the
    HTML always does), and a line break is never part of a multi-byte sequence."""
    return _lf_lines(body.encode("utf-8")).replace(b"\n", b"\r\n")


def _lf_lines(data: bytes) -> bytes:
    """`data` with every line break (CRLF, CR, LF) an LF, ending in one."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data if data.endswith(b"\n") else data + b"\n"


# Base64 lines are cut out of the encoded body by `struct` (in C), a block of lines at
# a time, rather than sliced one by one in Python: a digest's HTML part has hundreds.
_B64_LINE = 76
_B64_BLOCK_LINES = 16
_B64_BLOCK = struct.Struct(f"{_B64_LINE}s" * _B64_BLOCK_LINES)
_B64_REST = [struct.Struct(f"{_B64_LINE}s" * n) for n in range(_B64_BLOCK_LINES)]


def _base64(body: str) -> bytes:
    """Base64 in 76-column lines (for the HTML part: quicker to encode than QP)."""
    encoded = binascii.b2a_base64(_crlf_bytes(body), newline=False)
    full = len(encoded) // _B64_LINE
    blocks, rest = divmod(full, _B64_BLOCK_LINES)
    cut = blocks * _B64_BLOCK_LINES * _B64_LINE
    lines = [
        *chain.from_iterable(_B64_BLOCK.iter_unpack(memoryview(encoded)[:cut])),
        *_B64_REST[rest].unpack_from(encoded, cut),
    ]
    if len(encoded) > full * _B64_LINE:
        lines.append(encoded[full * _B64_LINE :])
    return b"\r\n".join(lines) + b"\r\n"


# A C1 control's reference, which HTML reads as a Windows-1252 character (&#128; is €).
_C1_REFERENCE = re.compile(rb"&#(?:12[89]|1[3-5][0-9]);")
# The space between two attributes of a tag. Our HTML writes every attribute value in
# double quotes, and what an expression outputs has its double quotes escaped (&#34;),
# so a quote, a space and `name="` occur between attributes (a template's own text
# could hold them; ours does not); and were it in text, a line break there reads as
# the space it replaces (the digest has no <pre>).
_BETWEEN_ATTRIBUTES = re.compile(rb'" (?=[A-Za-z_:][-A-Za-z0-9_:.]*=")')


def _html_7bit(body: str, boundary: str) -> bytes | None:
    """`body` (HTML) as a 7bit part with CRLF line ends, or None when it cannot be
    written so and must go in base64 (see the module docstring).

    Every message's HTML passes through here whole, so the checks run on the ASCII
    bytes, in C (a search for a literal, a bytes pattern with a literal start):
    the same checks on the str, where one character outside Latin-1 makes every
    character two bytes wide, cost more than base64.
    """
    data = body.encode("ascii", "xmlcharrefreplace")
    if len(data) != len(body) and (_C1_REFERENCE.search(data) or _reference_in_raw_text(data)):
        return None
    if b"\x00" in data:  # RFC 2045: 7bit data holds no NUL (a source's text can)
        return None
    data = _lf_lines(data)
    if ("--" + boundary).encode("ascii") in data:
        return None
    lines = data.split(b"\n")
    if max(map(len, lines)) <= MAX_LINE:
        return data.replace(b"\n", b"\r\n")
    folded: list[bytes] = []
    for line in lines:
        while len(line) > MAX_LINE:
            cut = _last_cut(line)
            if cut is None:
                return None
            folded.append(line[:cut])
            line = line[cut + 1 :]
        folded.append(line)
    return b"\r\n".join(folded)


def _reference_in_raw_text(data: bytes) -> bool:
    """Whether a character reference (or what reads as one) is inside a style or
    script element, where it would be read as it is written, not as the character."""
    for start in _RAW_TEXT_START.finditer(data):
        end = _RAW_TEXT_END.search(data, start.end())
        if data.find(b"&#", start.end(), end.start() if end else len(data)) != -1:
            return True
    return False


# Tag names in any case: spelt out in classes, which keeps the literal "<" the search
# starts from (an IGNORECASE pattern tries every byte).
_RAW_TEXT_START = re.compile(rb"<(?:[sS][tT][yY][lL][eE]|[sS][cC][rR][iI][pP][tT])\b")
_RAW_TEXT_END = re.compile(rb"</(?:[sS][tT][yY][lL][eE]|[sS][cC][rR][iI][pP][tT])\b")


def _last_cut(line: bytes) -> int | None:
    """Where to break `line` so its first piece fits: the space after the last
    closing quote of an attribute (followed by another attribute) within MAX_LINE."""
    cut = None
    for between in _BETWEEN_ATTRIBUTES.finditer(line):
        if between.start() + 1 > MAX_LINE:
            break
        cut = between.start() + 1
    return cut


def quoted_printable(text: str) -> bytes:
    """`text` as a quoted-printable body: UTF-8, CRLF line ends, ending in one.

    Quoted-printable works line by line (a soft break, or an encoded space at a
    line's end, depends on its line alone), so whole lines encoded apart join to
    the bytes the whole text encodes to: the renderer encodes the lines a run's
    digests share once (`digest.email.render.TextPiece`).
    """
    # b2a_qp writes CRLF (soft breaks too) when the first line ends in CRLF
    return binascii.b2a_qp(_crlf_bytes(text), istext=True)


_TEXT_HEAD = (
    'Content-Type: text/plain; charset="utf-8"' + CRLF
    + "Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
).encode("ascii")  # fmt: skip
_HTML_HEAD = (
    'Content-Type: text/html; charset="utf-8"' + CRLF
    + "Content-Transfer-Encoding: base64" + CRLF + CRLF
).encode("ascii")  # fmt: skip
_HTML_7BIT_HEAD = (
    'Content-Type: text/html; charset="utf-8"' + CRLF
    + "Content-Transfer-Encoding: 7bit" + CRLF + CRLF
).encode("ascii")  # fmt: skip


def html_part(html: str, boundary: str) -> bytes:
    """The HTML part, its headers and body: 7bit when it can be, else base64."""
    body = _html_7bit(html, boundary)
    return _HTML_7BIT_HEAD + body if body is not None else _HTML_HEAD + _base64(html)


def build_message_bytes(envelope: Envelope, text: str, html: str) -> bytes:
    """The complete message, CRLF line endings, ready for SMTP DATA or a Maildir file
    (`write_message` with the text encoded here)."""
    return write_message(envelope, quoted_printable(text), html)


def write_message(envelope: Envelope, text_body: bytes, html: str) -> bytes:
    """The complete message, CRLF line endings, ready for SMTP DATA or a Maildir file.

    `text_body` is the text part as `quoted_printable` writes it (whole, or in pieces
    of whole lines): the message is marked all-CRLF (`CrlfBytes`) on that promise.
    `html` is markup as the templates write it: its text and attribute values
    escaped, so that anything outside ASCII is in text or in a value, where a
    character reference reads as the character.
    """
    boundary = envelope.boundary()
    head = "".join(
        (
            fold("From", mailbox(envelope.from_name, envelope.from_addr, _room("From"))),
            fold("To", [envelope.to_addr]),
            fold("Subject", unstructured(envelope.subject, _room("Subject"))),
            fold("Date", envelope.date.split(" ")),
            fold("Message-ID", [envelope.message_id]),
            fold(
                "List-Id",
                [*phrase(envelope.list_id_name, _room("List-Id")), f"<{envelope.list_id}>"],
            ),
            one_line("List-Unsubscribe", envelope.list_unsubscribe),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click" + CRLF,
            "MIME-Version: 1.0" + CRLF,
            fold("Content-Type", ["multipart/alternative;", f'boundary="{boundary}"']),
            CRLF,
        )
    )
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1), so a
    # body's own final line break needs one more.
    first = f"--{boundary}{CRLF}".encode("ascii")
    between = f"{CRLF}--{boundary}{CRLF}".encode("ascii")
    close = f"{CRLF}--{boundary}--{CRLF}".encode("ascii")
    # every piece ends its lines in CRLF: the headers by construction, the bodies
    # by quoted_printable / _html_7bit / _base64 (a test checks any text and markup)
    return CrlfBytes(
        b"".join(
            (
                head.encode("ascii"),
                first,
                _TEXT_HEAD,
                text_body,
                between,
                html_part(html, boundary),
                close,
            )
        )
    )
