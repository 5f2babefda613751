"""What a file that is not a dump looks like, told from its first bytes.

The text-dump parser reads any text: given an RSS feed it stored
`<channel>` and `<pubDate>…` lines as papers. Ingest asks here first and
refuses such a file with one line that names what it looks like, so the
user learns they picked the wrong file (or the wrong command) and nothing
is written.
"""

from __future__ import annotations

import re

__all__ = ["FEEDS", "not_a_dump", "xml_root"]

_HEAD_BYTES = 4096
RSS, ATOM = "an RSS feed", "an Atom feed"
FEEDS = (RSS, ATOM)
"""What `not_a_dump` says of a feed: ingest reads a saved arXiv feed when it is named .xml."""
_XML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s>/]")


def not_a_dump(data: bytes) -> str | None:
    """What `data` looks like when it is plainly not a page dump or JSON, else None."""
    head = data[:_HEAD_BYTES].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"%PDF-"):
        return "a PDF"
    if b"\x00" in head:
        return "a binary file"
    lower = head.lower()
    if lower.startswith((b"<!doctype html", b"<html")):
        return "an HTML page (save the page's text, not its source)"
    if lower.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
        root = xml_root(head)
        if root == "rss":
            return RSS
        if root == "feed":
            return ATOM
        if root == "html":
            return "an HTML page (save the page's text, not its source)"
        return "an XML document"
    return None


def xml_root(head: bytes) -> str | None:
    """The name of the first element after the XML declaration, comments and doctype."""
    for match in _XML_ROOT.finditer(head):
        start = match.start()
        if head[start + 1 : start + 2] in (b"?", b"!"):
            continue
        return match.group(1).decode("ascii", "replace").lower()
    return None
