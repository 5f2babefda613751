"""A digest built by the stdlib `EmailMessage`: the reference `digest.email.mime` must match.

`digest.email.mime.build_message_bytes` writes our one message shape by hand
for speed; the render tests parse its output and compare it with the same
message built here by the standard library, and bench/render.py uses this as
the "stdlib serialisation" it measures against. Nothing in `digest` sends it.
"""

from __future__ import annotations

import re
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from html.parser import HTMLParser
from typing import Any

from digest.email import mime
from digest.email.render import Renderer
from digest.values import DigestView

_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


class _DigestPolicy(EmailPolicy):
    """The SMTP policy, except that List-Unsubscribe is folded with a 998 limit (gh-85725)."""

    def fold(self, name: str, value: Any) -> str:
        if name.lower() == "list-unsubscribe":
            return str(_WIDE.fold(name, value))
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() == "list-unsubscribe":
            return _WIDE.fold_binary(name, value)
        return super().fold_binary(name, value)


_WIDE = email_policy.SMTP.clone(max_line_length=mime.MAX_LINE)
POLICY = _DigestPolicy(linesep=mime.CRLF)


def build_email_message(envelope: mime.Envelope, text: str, html: str) -> EmailMessage:
    """The message `mime.build_message_bytes` writes, built with the stdlib."""
    msg = EmailMessage(policy=POLICY)
    local, _, domain = envelope.from_addr.rpartition("@")
    msg["From"] = Address(envelope.from_name, local, domain)
    msg["To"] = envelope.to_addr
    msg["Subject"] = envelope.subject
    msg["Date"] = envelope.date
    msg["Message-ID"] = envelope.message_id
    msg["List-Id"] = f"{_stdlib_phrase(envelope.list_id_name)} <{envelope.list_id}>"
    msg["List-Unsubscribe"] = envelope.list_unsubscribe
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    seven = mime._html_7bit(html, envelope.boundary())
    if seven is None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    else:  # the 7bit form is ours; tests compare what it reads as with html_tokens
        body = seven.decode("ascii").replace("\r\n", "\n")
        msg.add_alternative(body, subtype="html", charset="utf-8", cte="7bit")
    msg.set_boundary(envelope.boundary())
    return msg


def stdlib_message(renderer: Renderer, view: DigestView) -> EmailMessage:
    """What `renderer.message_bytes(view)` should parse to, built with the stdlib."""
    return build_email_message(renderer.envelope(view), renderer.text(view), renderer.html(view))


def _stdlib_phrase(name: str) -> str:
    if name.isascii() and not _ATEXT.fullmatch(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def html_tokens(markup: str) -> list[tuple[Any, ...]]:
    """What a browser reads in `markup`: tags with their attributes, text with character
    references resolved, comments. A line break and a space read alike in the digest's
    HTML (it has no <pre>), so every ASCII whitespace character in text counts as a space."""
    tokens: list[tuple[Any, ...]] = []

    class _Reader(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tokens.append(("start", tag, attrs))

        def handle_endtag(self, tag: str) -> None:
            tokens.append(("end", tag))

        def handle_data(self, data: str) -> None:
            text = re.sub(r"[ \t\n\r\f]", " ", data)
            if tokens and tokens[-1][0] == "text":  # the parser may split a text run
                tokens[-1] = ("text", tokens[-1][1] + text)
            else:
                tokens.append(("text", text))

        def handle_comment(self, data: str) -> None:
            tokens.append(("comment", data))

        def handle_decl(self, decl: str) -> None:
            tokens.append(("decl", decl))

    reader = _Reader(convert_charrefs=True)
    reader.feed(markup)
    reader.close()
    return tokens
