"""Sentences of an abstract that say where the artefacts are, not what the paper is about.

About one abstract in five among the sample dumps ends with "Our code is
available at https://github.com/…". Indexed, that sentence makes every such
paper match a `code generation` topic (and "data", "models", "release"
topics) on its last line. Blanking those sentences before indexing raised
set precision on the relevance set (bench/relevance.py: F1 0.736 → 0.743)
without losing a relevant paper.

A sentence counts as an availability note when it holds a link (http, www.,
GitHub), says that code, data, models or weights "are available / released /
open-sourced / found", or that "we (will) release / open-source / publish"
something. Such sentences are replaced by spaces of the same length, so the
character offsets of every other match (used for highlighting) stay true.
"""

from __future__ import annotations

import re

__all__ = ["blank_availability_notes"]

# A sentence ends at . ! or ? followed by a capital, a bracket or the end of the text;
# dots inside links ("github.com/x") do not end one.
_SENTENCE = re.compile(r".+?(?:[.!?](?=\s+[A-Z(\[]|\s*$)|$)", re.DOTALL)
_ARTEFACT = (
    r"(?:code|codes|codebase|implementation|data|dataset|models?|weights|checkpoints|benchmark)"
)
_NOTE = re.compile(
    r"https?://|\bwww\.|\bgithub\b"
    rf"|\b(?:our|the|all)\s+(?:\w+\s+){{0,3}}?(?:source\s+)?{_ARTEFACT}\b[^.]{{0,40}}?"
    r"\b(?:is|are|be|been)\s+(?:\w+\s+){0,2}?"
    r"(?:available|released|open[- ]?sourced|found|accessible|provided)\b"
    r"|\bwe\s+(?:will\s+)?(?:publicly\s+|progressively\s+)?(?:release|open[- ]source|publish)\b",
    re.IGNORECASE,
)


def blank_availability_notes(abstract: str) -> str:
    """The abstract with its availability notes replaced by spaces (same length)."""
    if not _NOTE.search(abstract):
        return abstract
    parts = []
    for match in _SENTENCE.finditer(abstract):
        sentence = match.group(0)
        parts.append(" " * len(sentence) if _NOTE.search(sentence) else sentence)
    blanked = "".join(parts)
    return blanked if len(blanked) == len(abstract) else abstract
