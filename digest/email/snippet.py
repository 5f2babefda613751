"""Short texts for a paper card: the abstract snippet around the matched words, the author line.

A reader decides in a few seconds whether a paper is for them, so the snippet
shows the part of the abstract where their topic's words occur (the scorer
records the character offsets as `MatchedTerm`s), with those words marked,
rather than the abstract's first sentences. Pure functions on plain strings;
the templates decide how "marked" looks (bold in HTML, nothing in text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from digest.values import MatchedTerm

SNIPPET_CHARS = 300
ELLIPSIS = "…"
# Whitespace of any kind becomes one space, keeping offsets (one char for one char).
_RUNS = re.compile(" {2,}")
_SPACES = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\f": " ", "\v": " "})

Segment = tuple[str, bool]  # (text, is a matched word)


def abstract_spans(text: str, matched: Sequence[MatchedTerm]) -> list[tuple[int, int]]:
    """The valid abstract match spans, sorted and merged where they touch or overlap."""
    spans = sorted(
        (m.start, m.end)
        for m in matched
        if m.field == "abstract" and 0 <= m.start < m.end <= len(text)
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def snippet(
    abstract: str, matched: Sequence[MatchedTerm], width: int = SNIPPET_CHARS
) -> list[Segment]:
    """About `width` characters of the abstract, centred on the densest run of matches.

    Returns segments to render in order; the matched words are the `True` ones.
    Cuts fall on word boundaries and are marked with an ellipsis.
    """
    text = abstract.translate(_SPACES)
    spans = abstract_spans(text, matched)
    if len(text) <= width + width // 5:
        start, end = 0, len(text)
    else:
        start, end = _window(text, spans, width)
    shown = [(max(s, start), min(e, end)) for s, e in spans if e > start and s < end]
    segments: list[Segment] = []
    position = start
    for s, e in shown:
        if s > position:
            segments.append((text[position:s], False))
        segments.append((text[s:e], True))
        position = e
    if position < end:
        segments.append((text[position:end], False))
    segments = [(_RUNS.sub(" ", part), hit) for part, hit in segments]
    if segments:
        segments[0] = (segments[0][0].lstrip(), segments[0][1])
        segments[-1] = (segments[-1][0].rstrip(), segments[-1][1])
    if start > 0:
        segments.insert(0, (ELLIPSIS, False))
    if end < len(text):
        segments.append((ELLIPSIS, False))
    return [seg for seg in segments if seg[0]]


def _window(text: str, spans: list[tuple[int, int]], width: int) -> tuple[int, int]:
    """[start, end) of about `width` chars, on word boundaries, covering the most matches."""
    if spans:
        best_first, best_last = 0, 0
        for i, (first_start, _) in enumerate(spans):
            last = i
            while last + 1 < len(spans) and spans[last + 1][1] - first_start <= width:
                last += 1
            if last - i > best_last - best_first:
                best_first, best_last = i, last
        covered_start, covered_end = spans[best_first][0], spans[best_last][1]
        slack = max(0, width - (covered_end - covered_start))
        start = max(0, min(covered_start - slack // 2, len(text) - width))
    else:
        covered_start = covered_end = 0
        start = 0
    end = min(len(text), start + width)
    if start > 0:
        space = text.find(" ", start, covered_start if spans else start + 40)
        if space != -1:
            start = space + 1
    if end < len(text):
        space = text.rfind(" ", max(start, covered_end), end)
        if space > start:
            end = space
    return start, end


def author_line(authors: Sequence[str], shown: int = 3) -> str:
    """ "A, B, C et al." — the first `shown` authors, and "et al." when there are more."""
    names = [" ".join(name.split()) for name in authors if name.strip()]
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + " et al."


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters on a word boundary, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut < limit // 2:
        cut = limit - 1
    return text[:cut].rstrip(" ,;:—-") + ELLIPSIS


def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Greedy word wrap for the text part; a word longer than the line (a URL) is never split.

    `first` prefixes the first line (e.g. " 1. "), `indent` the others. Faster
    than `textwrap.fill`, which matters when thousands of digests render.
    """
    head = indent if first is None else first
    if len(head) + len(text) <= width and "  " not in text and text.isprintable():
        stripped = text.strip()
        return head + stripped if stripped else ""
    lines: list[str] = []
    words: list[str] = []
    used = len(head)
    for word in text.split():
        if not words:
            words.append(word)
            used += len(word)
        elif used + 1 + len(word) > width:
            lines.append(" ".join(words))
            words = [word]
            used = len(indent) + len(word)
        else:
            words.append(word)
            used += 1 + len(word)
    if words:
        lines.append(" ".join(words))
    if not lines:
        return ""
    return head + ("\n" + indent).join(lines)
