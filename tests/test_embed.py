"""Embedding stored papers and filter texts: once each, resumable, per model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from digest.config import SemanticSettings
from digest.embed import as_bytes, embed_papers, encoder_for, vectors_for_texts
from digest.semantic import SemanticUnavailable, load_encoder, paper_text
from digest.store.database import Store
from digest.store.schema import Paper, PaperVector, TextVector
from tests.plan_factories import add_dump
from tests.tiny_encoder import make_tiny_model

T0 = datetime(2026, 11, 22, 6, tzinfo=UTC)
TITLES = [f"graph neural network {i}" for i in range(7)] + ["speech audio token"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("enc") / "model")


def stored(store: Store) -> int:
    with store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(PaperVector)) or 0)


def test_every_paper_is_embedded_once_with_progress(store: Store, tiny: Path) -> None:
    add_dump(store, T0, TITLES)
    encoder = load_encoder(tiny)
    seen: list[tuple[int, int]] = []
    assert embed_papers(store, encoder, batch=3, on_progress=lambda d, t: seen.append((d, t))) == 8
    assert seen == [(3, 8), (6, 8), (8, 8)]
    assert stored(store) == 8
    assert embed_papers(store, encoder) == 0  # nothing left to do
    add_dump(store, T0, ["speech audio token 2"])
    assert embed_papers(store, encoder) == 1  # only the new paper


def test_vectors_are_the_encoders_float32_rows(store: Store, tiny: Path) -> None:
    ids = add_dump(store, T0, ["speech audio token"])
    encoder = load_encoder(tiny)
    embed_papers(store, encoder)
    with store.sessions() as session:
        row = session.get(PaperVector, ids["speech audio token"])
        paper = session.get(Paper, ids["speech audio token"])
    assert row is not None and paper is not None and row.model == encoder.name
    got = np.frombuffer(row.vector, dtype="<f4")
    want = encoder.encode([paper_text(paper.title, paper.abstract)])[0]
    assert np.abs(got - want).max() < 1e-6


def test_another_model_embeds_again(store: Store, tmp_path: Path) -> None:
    add_dump(store, T0, TITLES[:2])
    first = load_encoder(make_tiny_model(tmp_path / "one", seed=1))
    second = load_encoder(make_tiny_model(tmp_path / "two", seed=2))
    assert embed_papers(store, first) == 2
    assert embed_papers(store, second) == 2  # the first model's vectors do not count
    assert embed_papers(store, first) == 2  # and the second replaced them
    assert stored(store) == 2


def test_an_interrupted_run_keeps_its_batches(store: Store, tiny: Path) -> None:
    add_dump(store, T0, TITLES)
    encoder = load_encoder(tiny)

    def stop_after_first(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_papers(store, encoder, batch=5, on_progress=stop_after_first)
    assert stored(store) == 5
    assert embed_papers(store, encoder, batch=5) == 3


def test_text_vectors_are_made_once_and_reused(store: Store, tiny: Path) -> None:
    encoder = load_encoder(tiny)
    first, made = vectors_for_texts(store, encoder, ["kv cache", "speech"])
    again, made_again = vectors_for_texts(store, encoder, ["speech", "kv cache", "graph"])
    assert made == ["kv cache", "speech"] and made_again == ["graph"]
    assert first["kv cache"] == again["kv cache"] == as_bytes(encoder.encode(["kv cache"])[0])
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(TextVector)) == 3


def test_after_embed_topics_a_planning_pass_encodes_nothing(
    store: Store, database_url: str, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from digest.embed import embed_topics
    from digest.planner import plan_due
    from tests.plan_factories import T0 as PLAN_T0
    from tests.plan_factories import add_subscriber, days, settings_for

    add_subscriber(store, "ada@example.org", ["graph neural network", "(speech OR audio) token"])
    add_dump(store, PLAN_T0 - days(1), TITLES)
    semantic = SemanticSettings(enabled="on", model_dir=str(tiny))
    encoder = encoder_for(semantic)
    assert encoder is not None
    embed_papers(store, encoder)
    assert embed_topics(store, encoder) == 3  # one text per alternative
    assert embed_topics(store, encoder) == 0
    calls: list[object] = []
    monkeypatch.setattr(encoder, "encode", lambda texts, **kw: calls.append(texts))
    settings = replace(settings_for(database_url), semantic=semantic)
    with store.sessions() as session:
        report = plan_due(session, settings, now=PLAN_T0)
    assert report.planned and calls == []


def test_off_means_words_alone_and_on_insists(tmp_path: Path, tiny: Path) -> None:
    assert encoder_for(SemanticSettings(enabled="off", model_dir=str(tiny))) is None
    assert encoder_for(SemanticSettings(enabled="auto", model_dir=str(tmp_path))) is None
    with pytest.raises(SemanticUnavailable, match="missing"):
        encoder_for(SemanticSettings(enabled="on", model_dir=str(tmp_path)))
    found = encoder_for(SemanticSettings(enabled="auto", model_dir=str(tiny)))
    assert found is not None and found.name.startswith(f"{tiny.parent.name}@")


def test_the_planner_ranks_with_meaning_once_papers_have_vectors(
    store: Store, database_url: str, tiny: Path
) -> None:
    from dataclasses import replace

    from digest.planner import plan_due
    from tests.plan_factories import T0 as PLAN_T0
    from tests.plan_factories import add_subscriber, days, settings_for

    add_subscriber(store, "ada@example.org", ["graph neural network"])
    add_dump(store, PLAN_T0 - days(1), TITLES)
    base = settings_for(database_url)
    settings = replace(base, semantic=SemanticSettings(enabled="on", model_dir=str(tiny)))

    def parts() -> list[dict[str, float]]:
        with store.sessions() as session:
            report = plan_due(session, settings, now=PLAN_T0, dry_run=True)
        return [dict(pick.parts) for plan in report.planned for pick in plan.picks]

    assert parts() and not any("meaning" in p for p in parts())  # nothing embedded yet
    embed_papers(store, load_encoder(tiny))
    assert parts() and all("meaning" in p for p in parts())


def test_a_paper_whose_abstract_arrives_later_is_embedded_again(store: Store, tiny: Path) -> None:
    from digest.store.dumps import store_dump
    from digest.values import ParsedDump, ParsedPaper

    def listing(abstract: str, sha: str) -> None:
        parsed = ParsedDump("text", (ParsedPaper("speech audio token", abstract),))
        store_dump(store, parsed, sha256=sha, source_ref=sha, now=T0)

    listing("", "a" * 64)  # a title without its abstract (the last line of a page dump)
    encoder = load_encoder(tiny)
    assert embed_papers(store, encoder) == 1
    listing("speech audio token audio speech", "b" * 64)  # the abstract comes later
    assert embed_papers(store, encoder) == 1  # its title-only vector was dropped
