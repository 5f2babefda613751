"""Sentences of an abstract that say where the artefacts are, not what the paper is about.

Many abstracts end with "Our code is available at https://github.com/…".
Indexed, that sentence makes every such paper match a `code generation`
topic (and "data", "models", "release" topics) on its last line. Blanking
those sentences before indexing raises set precision on the relevance set
(bench/relevance.py prints it) without losing a relevant paper.

A sentence counts as an availability note when it says that code, data,
models or weights "are (publicly) available / open-sourced / released at…",
that "we (will) release / open-source / make our code …", or that something
"can be found / is hosted at" a link. Notes are replaced by spaces of the
same length, and so are links elsewhere, so the character offsets of every
other match (used for highlighting) stay true.
"""

from __future__ import annotations

import re

__all__ = ["blank_availability_notes"]

# A sentence ends at . ! or ? followed by white space or the end of the text;
# dots inside links ("github.com/x") do not end one.
_SENTENCE = re.compile(r".+?(?:[.!?](?=\s|$)|$)", re.DOTALL)
_LINK = re.compile(r"\b(?:https?://|www\.|[\w.-]+\.(?:com|org|io|ai|net|co)/)[^\s)\]>]*")
_ARTEFACT = (
    r"(?:source\s+)?(?:code|codes|codebase|implementation|data|dataset|datasets|models?"
    r"|weights|checkpoints|benchmark|library|package)"
)
_WHERE = r"(?:https?://|www\.|github|gitlab|huggingface|our\s|the\s+project)"
_PUBLISHED = (
    r"(?:(?:made\s+)?(?:publicly|freely|openly)\s+available|made\s+(?:\w+\s+)?available"
    rf"|available(?=\s+(?:at|on|from|via|in)\W+{_WHERE}|\W*$)"
    r"|open[- ]?sourced"
    rf"|(?:publicly\s+)?released(?=\s+(?:at|on|under|via|through|in)\W+{_WHERE}|\W*$))"
)
_HINT = re.compile(r"availab|release|open[- ]?source|https?://|www\.|\.(?:com|org|io)/", re.I)
_NOTE = re.compile(
    # "Our code and data will be made publicly available", "The code is open-sourced"
    rf"\b(?:our|the|all)\s+(?:\w+\s+){{0,3}}?{_ARTEFACT}\b[^.]{{0,40}}?"
    rf"\b(?:is|are|be|been)\s+{_PUBLISHED}"
    # "Code is available at", "Code and data available at", "Code open-sourced at:"
    rf"|^\W*{_ARTEFACT}\b[^.]{{0,30}}?\b{_PUBLISHED}"
    # "We release our code", "we will open-source the benchmark", "We make our code ..."
    rf"|\bwe\s+(?:will\s+)?(?:publicly\s+)?(?:release|open[- ]source|make)\s+"
    rf"(?:(?:our|the|all)\s+)?(?:\w+\s+){{0,2}}?{_ARTEFACT}\b"
    # "... can be found at https://...", "Code is available: https://..."
    r"|\b(?:found|accessible|hosted|provided|released|available)\b[^.]{0,30}?"
    r"(?:https?://|www\.|[\w.-]+\.(?:com|org|io|ai|net|co)/)",
    re.IGNORECASE,
)


def blank_availability_notes(abstract: str) -> str:
    """The abstract with availability notes and links replaced by spaces (same length).

    A note is blanked whole; elsewhere only the link itself is ("We propose X
    (code: https://github.com/x/y) and show ..." keeps every word but the link).
    """
    if not _HINT.search(abstract):
        return abstract
    parts = []
    for match in _SENTENCE.finditer(abstract):
        sentence = match.group(0)
        if _NOTE.search(sentence.strip()):
            parts.append(" " * len(sentence))
        else:
            parts.append(_LINK.sub(lambda link: " " * len(link.group(0)), sentence))
    blanked = "".join(parts)
    return blanked if len(blanked) == len(abstract) and blanked != abstract else abstract
