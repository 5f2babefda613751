"""The hand-written MIME writer against the stdlib parser, on arbitrary header text."""

from __future__ import annotations

import base64
import email
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.email import mime
from digest.errors import BadInput

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
    data = mime.build_message_bytes(envelope(subject, name), body, f"<p>{body}</p>")
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
    html_body = f"<p>{body}</p>".replace("\r\n", "\n").replace("\r", "\n") + "\n"
    assert html.get_content().replace("\r\n", "\n") == html_body  # type: ignore[attr-defined]
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
