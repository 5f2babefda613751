"""Read queries that more than one stage asks the same way: a paper as the scorer sees it.

A paper's popularity is its upvotes in the *latest* dump that listed it: what
the planner scores with, what `digest match` previews and what the email shows.
`as_of` bounds "latest" by ingest time, so a digest rendered again later (a
retry, view-in-browser) shows the upvotes it was planned with, even if newer
dumps arrived in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import BadInput
from digest.keys import normalise_arxiv_id, paper_key, title_key
from digest.store.schema import Dump, DumpPaper, Paper
from digest.values import PaperText

__all__ = [
    "CHUNK",
    "chunks",
    "find_paper",
    "latest_upvotes",
    "paper_text",
    "paper_texts",
    "papers_titled",
    "resolve_paper",
]

CHUNK = 500
"""Ids per `IN (...)` list: well below the bound-parameter limits of SQLite and psycopg."""


T = TypeVar("T")


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most CHUNK, for `IN (...)` queries and multi-row inserts."""
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def latest_upvotes(
    session: Session, paper_ids: Iterable[int], *, as_of: datetime | None = None
) -> dict[int, int | None]:
    """Per paper: its upvotes in the latest dump listing it (ingested by `as_of`, if given).

    A paper no dump lists (by `as_of`) is absent; one whose latest listing had
    no count maps to None.
    """
    latest: dict[int, int | None] = {}
    for chunk in chunks(sorted(set(paper_ids))):
        query = (
            select(DumpPaper.paper_id, DumpPaper.upvotes)
            .join(Dump, Dump.id == DumpPaper.dump_id)
            .where(DumpPaper.paper_id.in_(chunk))
            .order_by(Dump.ingested_at, Dump.id)
        )
        if as_of is not None:
            query = query.where(Dump.ingested_at <= as_of)
        for paper_id, upvotes in session.execute(query):  # ascending: later dumps overwrite
            latest[paper_id] = upvotes
    return latest


def paper_text(row: Paper, upvotes: int | None) -> PaperText:
    """What the scorer sees of a stored paper."""
    authors = tuple(str(a) for a in row.authors or ())
    listed = (row.extra or {}).get("categories")
    # only the arXiv source writes them, as a list of names; anything else is ignored
    categories = tuple(c for c in listed if isinstance(c, str)) if isinstance(listed, list) else ()
    return PaperText(row.id, row.title, row.abstract or "", authors, upvotes, categories)


def paper_texts(
    session: Session, paper_ids: Iterable[int], *, as_of: datetime | None = None
) -> list[PaperText]:
    """The papers `paper_ids` as the scorer sees them, by id, with `latest_upvotes`."""
    ids = sorted(set(paper_ids))
    upvotes = latest_upvotes(session, ids, as_of=as_of)
    texts: list[PaperText] = []
    for chunk in chunks(ids):
        for row in session.scalars(select(Paper).where(Paper.id.in_(chunk)).order_by(Paper.id)):
            texts.append(paper_text(row, upvotes.get(row.id)))
    return texts


def find_paper(session: Session, ref: str) -> Paper | None:
    """A stored paper by its key, its arXiv id (any version, any spelling the keys accept)
    or its exact title: what a person can copy from a digest or `digest match`."""
    arxiv_id = normalise_arxiv_id(ref)
    candidates = [ref, paper_key(arxiv_id, ref) if arxiv_id else None, paper_key(None, ref)]
    for candidate in candidates:
        if candidate is None:
            continue
        row = session.scalar(select(Paper).where(Paper.key == candidate))
        if row is not None:
            return row
    # a paper keyed by its arXiv id, named by its title
    return session.scalar(
        select(Paper).where(Paper.title_key == title_key(ref)).order_by(Paper.id).limit(1)
    )


def papers_titled(session: Session, start: str, *, limit: int) -> list[Paper]:
    """Papers whose title begins with `start` (as titles are compared: case, accents and
    punctuation aside), at most `limit`: so "GEAR" finds "GEAR: An Efficient KV Cache…"."""
    key = title_key(start)
    if not key:
        return []
    return list(
        session.scalars(
            select(Paper)
            .where(Paper.title_key.startswith(key, autoescape=True))
            .order_by(Paper.first_seen.desc(), Paper.id)
            .limit(limit)
        )
    )


def resolve_paper(session: Session, ref: str, *, option: str = "") -> Paper:
    """A stored paper by key, arXiv id, title, or the start of one title (BadInput naming
    `ref` if none, and listing the candidates if the start fits several)."""
    prefix = f"{option}: " if option else ""
    paper = find_paper(session, ref)
    if paper is not None:
        return paper
    found = papers_titled(session, ref, limit=MAX_LISTED + 1)
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInput(f"{prefix}no stored paper with key, arXiv id or title {ref!r}")
    listed = "; ".join(repr(p.title) for p in found[:MAX_LISTED])
    more = " …" if len(found) > MAX_LISTED else ""
    raise BadInput(
        f"{prefix}{ref!r} begins several titles: {listed}{more} (give more of the title, "
        "or the arXiv id)"
    )


MAX_LISTED = 5
"""Titles listed when a title start fits several papers."""
