"""The semantic signal in scoring: meaning reorders and cuts what the words make eligible."""

from __future__ import annotations

import numpy as np
import pytest

from digest.config import ScoringSettings
from digest.filters import meaning_texts, parse
from digest.outbox.build import why_line
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


# --- meaning admits a paper with some of a long topic's words (semantic.admit) ---

LONG_TOPIC = "compressing prompts into fewer tokens for language models"
SAID_OTHERWISE = 100  # says the topic in other words: only "tokens" of the topic's words


def _admission_corpus() -> tuple[list[PaperText], dict[int, bytes], dict[str, bytes]]:
    """Two papers with every word of LONG_TOPIC, one that says it otherwise, and sixty
    unrelated papers (their meanings far from the topic's, so the one standing out
    stands out from a distribution, as in a real run)."""
    rng = np.random.default_rng(7)
    papers = [
        PaperText(1, "Compressing prompts for language models", "Fewer tokens, same answers."),
        PaperText(2, "Language models with compressed prompts", "Compressing into fewer tokens."),
        PaperText(SAID_OTHERWISE, "Shorter inputs for chatbots", "We cut the tokens a bot reads."),
    ]
    vectors = {1: unit(1, 0.2, 0, 0, 0, 0), 2: unit(1, 0, 0.2, 0, 0, 0)}
    vectors[SAID_OTHERWISE] = unit(1, 0.1, 0.1, 0, 0, 0)
    for i in range(60):
        papers.append(PaperText(200 + i, f"Unrelated study {i}", f"About topic{i} and tokens."))
        vectors[200 + i] = unit(0.1, *rng.normal(size=5))
    texts = {text: unit(1, 0, 0, 0, 0, 0) for text in meaning_texts(LONG_TOPIC)}
    return papers, vectors, texts


def _admission_search(topic: str, **settings: float) -> list[int]:
    papers, vectors, texts = _admission_corpus()
    texts.update({text: unit(1, 0, 0, 0, 0, 0) for text in meaning_texts(topic)})
    index = PaperIndex(
        papers,
        ScoringSettings(**settings),  # type: ignore[arg-type]
        paper_vectors=vectors,
        text_vectors=texts,
    )
    return ids(index.search(parse(topic), meaning_texts(topic)))


def test_a_paper_saying_a_long_topic_in_other_words_is_sent() -> None:
    found = _admission_search(LONG_TOPIC)
    assert found[:2] == [1, 2] or found[:2] == [2, 1]
    assert SAID_OTHERWISE in found
    assert not any(paper_id >= 200 for paper_id in found)  # "tokens" alone is not enough
    assert SAID_OTHERWISE not in _admission_search(LONG_TOPIC, semantic_admit_z=0.0)


def test_an_admitted_paper_is_explained_with_its_meaning() -> None:
    papers, vectors, texts = _admission_corpus()
    index = PaperIndex(papers, ScoringSettings(), paper_vectors=vectors, text_vectors=texts)
    why = index.explain(SAID_OTHERWISE, parse(LONG_TOPIC), meaning_texts(LONG_TOPIC))
    assert why.selected and "meaning" in why.parts and why.parts.get("related")


def test_the_email_says_a_paper_got_in_on_meaning() -> None:
    """Issue #19: the why line says "related in meaning" for a paper admitted by its
    meaning, and nothing for one its words made eligible."""
    papers, vectors, texts = _admission_corpus()
    index = PaperIndex(papers, ScoringSettings(), paper_vectors=vectors, text_vectors=texts)
    hits = {h.paper_id: h for h in index.search(parse(LONG_TOPIC), meaning_texts(LONG_TOPIC))}
    assert why_line(hits[SAID_OTHERWISE].parts) == "related in meaning"
    assert why_line(hits[1].parts) == ""


@pytest.mark.parametrize(
    "topic",
    [
        LONG_TOPIC + " -chatbots",  # excluded word
        LONG_TOPIC + " NOT bot",
        '"fewer tokens" OR "compressing prompts"',  # quoted phrases it lacks
        "compressing prompts into fewer +tokens for +language models",  # required word
        "compressing prompts into fewer title:tokens for language models",  # field scope
        "compressing AND prompts AND tokens",  # explicit AND: every operand is required
    ],
)
def test_the_filters_hard_rules_still_keep_an_admitted_paper_out(topic: str) -> None:
    assert SAID_OTHERWISE not in _admission_search(topic)


def test_a_paper_with_none_of_the_topics_words_is_never_admitted() -> None:
    papers, vectors, texts = _admission_corpus()
    papers[2] = PaperText(SAID_OTHERWISE, "Shorter inputs for chatbots", "We cut what a bot reads.")
    index = PaperIndex(papers, ScoringSettings(), paper_vectors=vectors, text_vectors=texts)
    assert SAID_OTHERWISE not in ids(index.search(parse(LONG_TOPIC), meaning_texts(LONG_TOPIC)))
