"""The semantic signal in scoring: meaning reorders and cuts what the words make eligible."""

from __future__ import annotations

import numpy as np
import pytest

from digest.config import ScoringSettings
from digest.filters import meaning_texts, parse
from digest.scoring import PaperIndex, Selector
from digest.values import PaperText, TopicQuery

FILLER = " ".join(f"filler{i}" for i in range(40))
PAPERS = [
    PaperText(1, "Cache eviction for serving", f"We evict key value cache entries. {FILLER}"),
    PaperText(2, "Cache coherence in CPUs", f"Hardware cache coherence protocols. {FILLER}"),
    PaperText(3, "Memory for long prompts", f"Compressing what attention keeps. {FILLER}"),
    PaperText(4, "Cache-friendly sorting", f"Sorting with cache misses in mind. {FILLER}"),
]


def unit(*values: float) -> bytes:
    vector = np.array(values, dtype="<f4")
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


# papers 1 and 3 mean what the topic means; 2 and 4 use its word for something else
PAPER_VECTORS = {1: unit(1, 0.1, 0), 2: unit(-0.2, 1, 0), 3: unit(1, 0, 0.1), 4: unit(-0.3, 0, 1)}
TOPIC = "cache"
TEXT_VECTORS = {"cache": unit(1, 0, 0)}


def ids(hits: list) -> list[int]:
    return [hit.paper_id for hit in hits]


def test_without_vectors_ranking_is_by_words_alone() -> None:
    words = PaperIndex(PAPERS, ScoringSettings())
    with_vectors = PaperIndex(PAPERS, ScoringSettings(), paper_vectors=PAPER_VECTORS)
    node = parse(TOPIC)
    assert ids(with_vectors.search(node)) == ids(words.search(node))  # no meaning texts given
    assert ids(words.search(node, meaning_texts(TOPIC))) == ids(words.search(node))


def test_meaning_keeps_the_paper_that_means_it_and_cuts_the_others() -> None:
    index = PaperIndex(
        PAPERS, ScoringSettings(), paper_vectors=PAPER_VECTORS, text_vectors=TEXT_VECTORS
    )
    hits = index.search(parse(TOPIC), meaning_texts(TOPIC))
    assert ids(hits)[0] == 1
    assert 2 not in ids(hits) and 4 not in ids(hits)  # same word, other meaning
    assert hits[0].parts["meaning"] == pytest.approx(1.25 * float(np.dot(
        np.frombuffer(PAPER_VECTORS[1], "<f4"), np.frombuffer(TEXT_VECTORS["cache"], "<f4")
    )), abs=1e-4)  # fmt: skip


def test_meaning_never_admits_a_paper_without_the_topics_words() -> None:
    index = PaperIndex(
        PAPERS, ScoringSettings(), paper_vectors=PAPER_VECTORS, text_vectors=TEXT_VECTORS
    )
    assert 3 not in ids(index.search(parse(TOPIC), meaning_texts(TOPIC)))  # closest, no "cache"


def test_explain_agrees_with_search_and_names_the_meaning_part() -> None:
    index = PaperIndex(
        PAPERS, ScoringSettings(), paper_vectors=PAPER_VECTORS, text_vectors=TEXT_VECTORS
    )
    node, meaning = parse(TOPIC), meaning_texts(TOPIC)
    chosen = index.explain(1, node, meaning)
    assert chosen.selected and chosen.rank == 1 and "meaning" in chosen.parts
    cut = index.explain(2, node, meaning)
    assert cut.eligible and not cut.selected
    assert cut.relevance < cut.cutoff
    absent = index.explain(3, node, meaning)
    assert not absent.eligible


def cosine(a: bytes, b: bytes) -> float:
    return float(np.dot(np.frombuffer(a, "<f4"), np.frombuffer(b, "<f4")))


def test_a_paper_without_a_stored_vector_takes_the_median_meaning_of_the_others() -> None:
    vectors = {k: v for k, v in PAPER_VECTORS.items() if k != 1}
    index = PaperIndex(PAPERS, ScoringSettings(), paper_vectors=vectors, text_vectors=TEXT_VECTORS)
    assert index.meaning is not None and index.meaning.missing == 1
    why = index.explain(1, parse(TOPIC), meaning_texts(TOPIC))
    others = [cosine(PAPER_VECTORS[k], TEXT_VECTORS["cache"]) for k in (2, 4)]  # eligible ones
    assert why.parts["meaning"] == pytest.approx(1.25 * float(np.median(others)), abs=1e-4)


def test_a_vector_of_another_width_counts_as_missing() -> None:
    vectors = {**PAPER_VECTORS, 2: unit(1, 0, 0, 0)}  # another model's length
    index = PaperIndex(PAPERS, ScoringSettings(), paper_vectors=vectors, text_vectors=TEXT_VECTORS)
    assert index.meaning is not None and index.meaning.missing == 1
    assert index.search(parse(TOPIC), meaning_texts(TOPIC))  # no error, still ranked


def test_the_selector_keeps_one_selection_per_meaning() -> None:
    texts = {"cache": unit(1, 0, 0), "cpu cache": unit(0, 1, 0)}
    index = PaperIndex(PAPERS, ScoringSettings(), paper_vectors=PAPER_VECTORS, text_vectors=texts)
    selector = Selector(index)
    node = parse(TOPIC)
    first = selector.select([TopicQuery(1, "t", node, ("cache",))], max_papers=5)
    second = selector.select([TopicQuery(1, "t", node, ("cpu cache",))], max_papers=5)
    assert [p.paper_id for p in first] != [p.paper_id for p in second]
    assert second[0].paper_id == 2  # the CPU cache paper, for that meaning


def test_meaning_texts_follow_the_filter() -> None:
    assert meaning_texts('"kv cache" OR "key value cache" -survey') == (
        "kv cache",
        "key value cache",
    )
    assert meaning_texts("title:(llm OR vlm) agent*") == ("llm agent", "vlm agent")
    assert meaning_texts("papers about annotation errors in image datasets") == (
        "annotation errors in image datasets",
    )
    assert meaning_texts("NOT video") == ()
    assert meaning_texts('unclosed "quote') == ()
    assert len(meaning_texts(" ".join(f"(a{i} OR b{i})" for i in range(3)))) == 8
    assert meaning_texts(" ".join(f"(a{i} OR b{i})" for i in range(4))) == ()  # 16: none
    assert meaning_texts('robots author:"yann lecun"') == ("robots",)
    assert meaning_texts("author:hinton") == ()
