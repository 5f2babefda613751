"""Paper identity: the dedup key shared by ingest, the relevance set and the store.

A paper is the same paper across dumps and sources when its arXiv id matches
(versions stripped), else when its normalised title matches. Normalising folds
case, Unicode compatibility forms, punctuation and whitespace, so "GEAR: An
Efficient KV Cache ..." and "gear an efficient kv-cache ..." are one paper.
"""

from __future__ import annotations

import re
import unicodedata

_ARXIV_ID = re.compile(
    r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.I
)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_arxiv_id(raw: str) -> str | None:
    """`2310.01234v2`, `arXiv:2310.01234` → `2310.01234`; None if it is not an arXiv id."""
    match = _ARXIV_ID.match(raw.strip())
    return match[1].lower() if match else None


def title_key(title: str) -> str:
    """The normalised form of a title used to recognise the same paper."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _NOT_WORD.sub(" ", folded).strip()


def paper_key(arxiv_id: str | None, title: str) -> str:
    """The papers.key value: `arxiv:<id>` when the id is known, else `title:<normalised>`."""
    if arxiv_id:
        return f"arxiv:{arxiv_id}"
    return f"title:{title_key(title)}"
