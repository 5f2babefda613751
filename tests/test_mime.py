"""The hand-written MIME writer against the stdlib parser, on arbitrary header text."""

from __future__ import annotations

import base64
import email
from email import policy
from email.message import EmailMessage
from html import escape as html_escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.email import mime
from digest.errors import BadInput
from digest.values import CrlfBytes
from tests.stdlib_message import html_tokens

# Header text as people type it: any printable character, including non-ASCII,
# quotes, "=?" and header look-alikes, but no line breaks or control characters.
SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200
).filter(lambda s: s.strip() != "")


def envelope(subject: str = "3 papers", from_name: str = "Paper digest") -> mime.Envelope:
    return mime.Envelope(
        from_name=from_name,
        from_addr="digest@example.org",
        to_addr="reader@example.org",
        subject=subject,
        date="Sun, 22 Nov 2026 08:00:05 +0000",
        message_id="<1.2026-11-22@example.org>",
        list_id_name=from_name,
        list_id="digest.example.org",
        list_unsubscribe=(
            "<https://example.org/u/1.abc>, <mailto:u@example.org?subject=unsubscribe>"
        ),
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@settings(max_examples=150, deadline=None)
@given(subject=SAFE_TEXT, name=SAFE_TEXT, body=st.text(max_size=300))
def test_any_safe_text_round_trips_and_adds_no_header(subject: str, name: str, body: str) -> None:
    # the HTML as the templates write it: text escaped (no tag can come from the text)
    markup = f"<p>{html_escape(body)}</p>"
    data = mime.build_message_bytes(envelope(subject, name), body, markup)
    # what CrlfBytes vouches for, so the SMTP mailer may skip its own checks
    assert isinstance(data, CrlfBytes)
    assert data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    lines = head.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines if not line.startswith(b"List-Unsubscribe:"))
    message = parse(data)
    assert list(message.keys()) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
        "Content-Type",
    ]
    assert str(message["Subject"]) == " ".join(subject.split())
    # The stdlib's address parser puts a space between adjacent encoded words of
    # a display name (RFC 2047 says to drop it); compare without spaces.
    shown = message["From"].addresses[0].display_name
    assert shown.replace(" ", "") == "".join(name.split())
    assert message["From"].addresses[0].addr_spec == "digest@example.org"
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    expected = expected if expected.endswith("\n") else expected + "\n"
    text, html = message.iter_parts()
    html_body = markup.replace("\r\n", "\n").replace("\r", "\n") + "\n"
    shown = html.get_content().replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert html_tokens(shown) == html_tokens(html_body)
    assert text.get_content().replace("\r\n", "\n") == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
def test_every_control_character_is_refused(bad: str) -> None:
    with pytest.raises(BadInput, match="the subject"):
        mime.header_text(f"before{bad}after", "the subject")


def test_encoded_words_split_between_characters() -> None:
    words = mime.encoded_words("日本語" * 40)
    assert all(len(word) <= mime.ENCODED_WORD_MAX for word in words)
    for word in words:  # each word decodes on its own: no UTF-8 sequence is cut
        assert email.header.decode_header(word)[0][0].decode("utf-8")


@pytest.mark.parametrize(
    "value",
    ["reader", "reader@", "@example.org", "a b@example.org", "a@exa mple.org", "<a@b.org>"],
)
def test_addresses_that_cannot_be_sent_to_are_refused(value: str) -> None:
    with pytest.raises(BadInput):
        mime.address(value, "the recipient")


def test_international_domains_are_idna_encoded() -> None:
    assert mime.address("leser@bücher.example", "to") == "leser@xn--bcher-kva.example"


@settings(max_examples=150, deadline=None)
@given(body=st.text(max_size=5000) | st.text(alphabet="a\r\né😀", min_size=900, max_size=5000))
def test_the_html_parts_base64_lines_are_the_plain_76_column_cut(body: str) -> None:
    """The HTML part's base64 is cut into lines in blocks (in C) for speed: whatever the
    length, the lines must be those of cutting the encoded body every 76 columns."""
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode()
    if not data.endswith(b"\n"):
        data += b"\n"
    encoded = base64.b64encode(data.replace(b"\n", b"\r\n"))
    expected = b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))
    assert mime._base64(body) == expected


# --- the HTML part: 7bit where it can be ---

CARD = (
    '<p class="abstract" style="margin: 0 0 8px 0;font-size: 15px;line-height: 23px;">'
    'Schrödinger’s <strong class="hl" style="background-color: #fff3c4;color: #1a1d23;">'
    "diffusion</strong> models&nbsp;&amp; more</p>"
)


def html_of(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage) and message.defects == []
    html = list(message.iter_parts())[1]
    assert isinstance(html, EmailMessage)
    return html


def shown(part: EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n")  # type: ignore[no-any-return]


def test_html_outside_ascii_goes_as_character_references_in_7bit() -> None:
    """A third smaller than base64, and read by a browser as the same characters."""
    data = mime.build_message_bytes(envelope(), "text\n", CARD)
    html = html_of(data)
    assert html["Content-Transfer-Encoding"] == "7bit"
    assert "Schr&#246;dinger&#8217;s" in shown(html)
    assert html_tokens(shown(html)) == html_tokens(CARD + "\n")
    assert len(mime._html_7bit(CARD, envelope().boundary()) or b"") < len(mime._base64(CARD))


def test_a_long_html_line_is_broken_between_attributes_only() -> None:
    """Several cards on one line pass 998 octets (RFC 5322's limit); a line break between
    two attributes of a tag reads as the space it replaces."""
    long_line = CARD * 12
    data = mime.build_message_bytes(envelope(), "text\n", long_line)
    assert max(len(line) for line in data.split(b"\r\n")) <= mime.MAX_LINE
    html = html_of(data)
    assert html["Content-Transfer-Encoding"] == "7bit"
    assert shown(html).count("\n") > 1
    assert html_tokens(shown(html)) == html_tokens(long_line + "\n")


@pytest.mark.parametrize(
    ("why", "markup"),
    [
        ("a long line with no place to break", "<p>" + "x" * 1200 + "</p>"),
        (
            "a reference would not be read in a style element",
            "<style>p::before { content: 'é' }</style>",
        ),
        ("a C1 control's reference reads as another character", "<p>a\x85b</p>"),
        ("the boundary in the text", "<p>--" + envelope().boundary() + "</p>"),
        ("a NUL, which 7bit data may not hold", "<p>Ada\x00Lovelace</p>"),
    ],
)
def test_html_that_cannot_go_as_7bit_goes_in_base64_unchanged(why: str, markup: str) -> None:
    data = mime.build_message_bytes(envelope(), "text\n", markup)
    html = html_of(data)
    assert html["Content-Transfer-Encoding"] == "base64", why
    assert shown(html) == markup + "\n"


# --- links that reach headers and href attributes ---


@pytest.mark.parametrize(
    "value",
    ["https://example.org/\u017f", "https://\u212aeys.example.org/", "mailto:\u017f@example.org"],
)
def test_a_link_with_a_letter_that_only_folds_to_ascii_is_refused(value: str) -> None:
    """The long s and the Kelvin sign fold to s and k: a case-blind pattern let them
    through, and List-Unsubscribe then failed to encode at send time, not at input."""
    check = mime.mailto if value.startswith("mailto:") else mime.url
    with pytest.raises(BadInput):
        check(value, "the link")


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["http://", "https://", "HTTPS://", "Http://", "mailto:", "MailTo:"]),
    rest=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
def test_ascii_links_are_judged_as_by_the_case_blind_pattern(scheme: str, rest: str) -> None:
    """Spelling the scheme's cases out changed nothing for ASCII links."""
    import re

    kind = "mailto:" if scheme.lower() == "mailto:" else "https?://"
    blind = re.compile(kind + r"[!#-;=?-\[\]_a-z~]+", re.IGNORECASE)
    check = mime.mailto if kind == "mailto:" else mime.url
    value = scheme + rest
    try:
        check(value, "the link")
        accepted = True
    except BadInput:
        accepted = False
    assert accepted == bool(blind.fullmatch(value))
