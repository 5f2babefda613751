"""Stored embeddings: paper vectors and filter-text vectors, as float32 bytes.

The store hands vectors out as bytes and takes them back as bytes: only the
encoder and the scorer turn them into arrays, so the store (and a lexical-only
install) needs no numpy. Every read names the model, so a vector made by
another encoder is never mixed with this one's: it is as good as missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.store.reads import chunks
from digest.store.schema import Paper, PaperVector, TextVector


def text_key(text: str) -> str:
    """How a filter text is keyed: the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def paper_vectors(session: Session, paper_ids: Iterable[int], model: str) -> dict[int, bytes]:
    """The stored vectors of these papers made by `model` (papers without one are left out)."""
    found: dict[int, bytes] = {}
    for chunk in chunks(sorted(set(paper_ids))):
        rows = session.execute(
            select(PaperVector.paper_id, PaperVector.vector).where(
                PaperVector.paper_id.in_(chunk), PaperVector.model == model
            )
        )
        found.update({paper_id: vector for paper_id, vector in rows})
    return found


def papers_to_embed(
    session: Session, model: str, *, after_id: int = 0, limit: int = 256
) -> list[tuple[int, str, str]]:
    """(id, title, abstract) of papers with no vector by `model`, in id order after `after_id`."""
    current = select(PaperVector.paper_id).where(PaperVector.model == model)
    rows = session.execute(
        select(Paper.id, Paper.title, Paper.abstract)
        .where(Paper.id > after_id, Paper.id.not_in(current))
        .order_by(Paper.id)
        .limit(limit)
    )
    return [(paper_id, title, abstract) for paper_id, title, abstract in rows]


def count_papers_to_embed(session: Session, model: str) -> int:
    """How many papers have no vector by `model`."""
    current = select(PaperVector.paper_id).where(PaperVector.model == model)
    total = session.scalar(select(func.count()).select_from(Paper).where(Paper.id.not_in(current)))
    return int(total or 0)


def save_paper_vectors(session: Session, model: str, vectors: Mapping[int, bytes]) -> None:
    """Store (or replace) these papers' vectors; safe when another writer stores them too."""
    rows = [{"paper_id": i, "model": model, "vector": v} for i, v in sorted(vectors.items())]
    _upsert(session, PaperVector, rows, keys=["paper_id"], replace=["model", "vector"])


def text_vectors(session: Session, texts: Iterable[str], model: str) -> dict[str, bytes]:
    """The stored vectors of these filter texts made by `model` (missing ones left out)."""
    by_key = {text_key(text): text for text in texts}
    found: dict[str, bytes] = {}
    for chunk in chunks(sorted(by_key)):
        rows = session.execute(
            select(TextVector.sha256, TextVector.vector).where(
                TextVector.sha256.in_(chunk), TextVector.model == model
            )
        )
        found.update({by_key[key]: vector for key, vector in rows})
    return found


def save_text_vectors(session: Session, model: str, vectors: Mapping[str, bytes]) -> None:
    """Store these filter texts' vectors (one already stored for `model` is kept as it is)."""
    rows = [
        {"sha256": text_key(text), "model": model, "text": text, "vector": vector}
        for text, vector in vectors.items()
    ]
    _upsert(session, TextVector, rows, keys=["sha256", "model"], replace=[])


def _upsert(
    session: Session, table: Any, rows: list[dict[str, Any]], *, keys: list[str], replace: list[str]
) -> None:
    """INSERT … ON CONFLICT: two embedders (the daemon, `digest embed`) may write the same
    rows at once, and a delete-then-insert or a check-then-insert would collide."""
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    for chunk in chunks(rows):
        statement = insert(table).values(list(chunk))
        if replace:
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in replace}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        session.execute(statement)
