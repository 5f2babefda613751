"""The relevance set is well-formed, matches the sample dumps, and is scored correctly.

A broken judgment file or a wrong metric would silently mislead every tuning
decision made with `bench/relevance.py`, so both are checked here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from digest.keys import title_key

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DUMPS = Path(__file__).parent / "data" / "dumps"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


relevance = _load("bench_relevance", BENCH / "relevance.py")
build_papers = _load("bench_relevance_build_papers", BENCH / "relevance" / "build_papers.py")


# --- the data ---------------------------------------------------------------


def test_corpus_is_the_distinct_papers_of_the_bundled_data() -> None:
    """The 268 distinct papers of the four page dumps, then the 30 of the HF sample."""
    papers = relevance.load_papers()
    assert len(papers) == 298
    assert len({p.key for p in papers}) == 298
    for paper in papers:
        assert paper.key == title_key(paper.title)
        assert paper.title.strip() and len(paper.abstract) > 200

    listings = [
        pair
        for path in sorted(DUMPS.glob("*.txt"))
        for pair in build_papers.listings(path.read_text())
    ]
    assert len(listings) == 308
    assert {title_key(title) for title, _ in listings} == {p.key for p in papers[:268]}
    hf = json.loads((DUMPS.parent / "hf_daily_papers.json").read_text())
    assert [title_key(item["paper"]["title"]) for item in hf] == [p.key for p in papers[268:]]
    # No header or date line of the page was taken for a paper.
    assert not any(p.title.lower().startswith(("subscribe", "get trending")) for p in papers)


def test_judgments_are_well_formed() -> None:
    keys = {p.key for p in relevance.load_papers()}
    topics = relevance.load_topics()
    assert len(topics) >= 80
    assert {t.style for t in topics} == {"short", "acronym", "phrase", "boolean", "sentence"}
    assert len({t.id for t in topics}) == len(topics)
    assert len({t.query.casefold() for t in topics}) == len(topics)
    for topic in topics:
        assert topic.query.strip(), topic.id
        assert set(topic.grades) <= keys, f"{topic.id}: judged keys missing from papers.jsonl"
        assert set(topic.grades.values()) <= {0, 1, 2}, topic.id
        assert 2 in topic.grades.values(), f"{topic.id} has no grade-2 paper"


def test_the_test_split_is_a_third_of_each_style_and_disjoint_from_training() -> None:
    topics = relevance.load_topics()
    test = relevance.test_ids()
    assert test <= {t.id for t in topics}
    train = relevance.load_topics(split="train")
    held_out = relevance.load_topics(split="test")
    assert {t.id for t in held_out} == test
    assert not {t.id for t in train} & test
    assert len(train) + len(held_out) == len(topics)
    for style in {t.style for t in topics}:
        of_style = [t for t in topics if t.style == style]
        in_test = [t for t in held_out if t.style == style]
        assert len(in_test) == round(len(of_style) / 3), style
    with pytest.raises(ValueError, match="split must be one of"):
        relevance.load_topics(split="all")


@pytest.mark.parametrize("name", ["team_topics.toml", "new_topics.toml"])
def test_second_judgments_cover_existing_topics_and_papers(name: str) -> None:
    import tomllib

    keys = {p.key for p in relevance.load_papers()}
    ids = {t.id for t in relevance.load_topics()}
    path = BENCH / "relevance" / "second_judge" / name
    second = tomllib.loads(path.read_text())["topic"]
    assert len(second) >= 10
    for topic in second:
        assert topic["id"] in ids
        assert set(topic["grades"]) <= keys
        assert set(topic["grades"].values()) <= {1, 2}


# --- the metrics --------------------------------------------------------------


def test_dcg_discounts_by_log2_of_rank_plus_one() -> None:
    assert relevance.dcg([3, 1, 0]) == pytest.approx(3 + 1 / math.log2(3))
    assert relevance.dcg([]) == 0


def test_ndcg_uses_exponential_gains_and_all_judged_papers_for_the_ideal() -> None:
    grades = {"a": 2, "b": 1, "c": 1, "z": 0}
    # ranked gains 1, 0, 3 -> 1 + 0 + 3/2 = 2.5; ideal gains 3, 1, 1 -> 3 + 1/log2(3) + 1/2
    ideal = 3 + 1 / math.log2(3) + 0.5
    assert relevance.ndcg_at_k(["b", "x", "a"], grades) == pytest.approx(2.5 / ideal)
    assert relevance.ndcg_at_k(["a", "b", "c"], grades) == pytest.approx(1.0)
    assert relevance.ndcg_at_k(["a", "c", "b"], grades) == pytest.approx(1.0)
    assert relevance.ndcg_at_k([], grades) == 0
    assert relevance.ndcg_at_k(["x"], {"x": 0}) == 0  # nothing relevant: defined as 0


def test_ndcg_ignores_papers_below_the_cut_off() -> None:
    grades = {"a": 2}
    ranked = [f"x{i}" for i in range(10)] + ["a"]
    assert relevance.ndcg_at_k(ranked, grades, k=10) == 0
    assert relevance.ndcg_at_k(ranked, grades, k=11) == pytest.approx(1 / math.log2(12))


def test_precision_at_k_divides_by_k_even_for_short_lists() -> None:
    grades = {"a": 2, "b": 1, "c": 1}
    assert relevance.precision_at_k(["a", "x", "b", "c"], grades) == pytest.approx(0.3)
    assert relevance.precision_at_k(["a", "x", "b", "c"], grades, relevant_grade=2) == 0.1
    assert relevance.precision_at_k(["x", "a"], grades, k=1) == 0


def test_set_scores() -> None:
    grades = {"a": 2, "b": 1, "c": 1, "d": 0}
    precision, recall, f1 = relevance.set_scores(["a", "b", "d", "y"], grades)
    assert (precision, recall) == (pytest.approx(0.5), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert relevance.set_scores([], grades) == (0, 0, 0)
    assert relevance.set_scores(["a"], grades, relevant_grade=2) == (1, 1, 1)


# --- the baselines ------------------------------------------------------------

TINY = [
    ("kv cache eviction", "We evict entries from the key-value (KV) cache of an LLM."),
    ("kvass brewing", "A drink; no cache involved, and nothing about kv."),
    ("test-time adaptation", "Adapt at test time to shifted domains, cache-free."),
]


def _tiny() -> list[Any]:
    return [relevance.Paper(title_key(t), t, a) for t, a in TINY]


def test_keyword_and_needs_every_word_whole_and_keeps_corpus_order() -> None:
    search = relevance.keyword_and(_tiny())
    assert search("KV cache") == ["kv cache eviction", "kvass brewing"]
    assert search("kv eviction") == ["kv cache eviction"]
    assert search("test-time adaptation") == ["test time adaptation"]
    assert search("time test") == ["test time adaptation"]  # no phrase, no order
    assert search("cach") == []  # no stemming, no prefixes
    assert search("--") == []


def test_bm25_ranks_and_returns_only_positive_scores() -> None:
    search = relevance.bm25(_tiny())
    assert search("eviction") == ["kv cache eviction"]
    assert search("kv")[0] == "kv cache eviction"
    assert search("zebra") == []


def test_run_reports_macro_averages_per_system() -> None:
    papers = _tiny()
    topics = [
        relevance.Topic("kv", "KV cache", {"kv cache eviction": 2}),
        relevance.Topic("tta", "test-time adaptation", {"test time adaptation": 2}),
    ]
    builders = {
        "keyword_and": lambda p, t: relevance.keyword_and(p),
        "bm25": lambda p, t: relevance.bm25(p),
    }
    report = relevance.run(papers, topics, per_topic=True, builders=builders)
    kw = report["splits"]["all"]["systems"]["keyword_and"]
    # kv: returns both kv papers (P=1/2, R=1); tta: exactly right (P=R=1).
    assert kw["set_precision"] == pytest.approx(0.75)
    assert kw["set_recall"] == 1
    assert kw["ndcg@10"] == 1
    assert kw["p@10"] == pytest.approx(0.1)
    assert [row["returned"] for row in kw["per_topic"]] == [2, 1]


def test_unavailable_system_is_reported_not_fatal() -> None:
    def missing(papers: object, topics: object) -> Any:
        raise relevance.Unavailable("no ranker here")

    report = relevance.run(
        _tiny(),
        [relevance.Topic("kv", "kv", {"kv cache eviction": 2})],
        builders={"digest": missing},
    )
    assert report["splits"]["all"]["systems"]["digest"] == {
        "available": False,
        "error": "not available: no ranker here",
    }


def test_script_prints_each_split_for_the_real_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert relevance.main(["--split", "both", "--systems", "keyword_and,bm25,digest_words"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["papers"] == 298 and report["topics"] >= 80
    assert set(report["splits"]) == {"train", "test", "test_unseen"}
    assert report["splits"]["test_unseen"]["topics"] == 20
    for split in report["splits"].values():
        for name in ("keyword_and", "bm25", "digest_words"):
            system = split["systems"][name]
            assert system["available"]
            assert 0 < system["ndcg@10"] <= 1 and 0 < system["set_f1"] <= 1
    assert relevance.main(["--systems", "bm25"]) == 0  # the default: what tuning may see
    assert set(json.loads(capsys.readouterr().out)["splits"]) == {"train"}


# --- the cut-off bound (bench/cutoff_bound.py) ----------------------------------

cutoff_bound = _load("bench_cutoff_bound", BENCH / "cutoff_bound.py")


def test_cut_off_choices_are_the_cuts_no_other_cut_beats() -> None:
    topic = relevance.Topic("t", "q", {"a": 2, "b": 1, "c": 1})
    # stop after a (recall 1/3, precision 1) or after b (2/3, 2/3); the empty list and
    # the cuts after x or y are beaten by one of those; c is never reached
    assert cutoff_bound.choices(cutoff_bound.cuts(["a", "x", "b", "y"], topic)) == [
        (pytest.approx(1 / 3), 1),
        (pytest.approx(2 / 3), pytest.approx(2 / 3)),
    ]


def test_frontier_is_exactly_the_best_combinations_of_per_topic_cut_offs() -> None:
    """Checked against trying every cut of every topic's ranking, scored by
    bench/relevance.py's own set_scores, on rankings small enough to enumerate:
    nothing beats the frontier, and every point of it is a real combination."""
    import itertools
    import random

    rng = random.Random(5)
    for _ in range(30):
        topics, per_topic, every_cut = [], [], []
        for _ in range(rng.randint(1, 4)):
            relevant = rng.randint(1, 4)
            ranked = [f"r{i}" for i in range(relevant)] + ["x", "y", "z"]
            rng.shuffle(ranked)
            ranked = ranked[: rng.randint(0, len(ranked))]  # some relevant never ranked
            topic = relevance.Topic("t", "q", {f"r{i}": 1 for i in range(relevant)})
            topics.append(topic)
            per_topic.append(cutoff_bound.choices(cutoff_bound.cuts(ranked, topic)))
            every_cut.append(
                [
                    relevance.set_scores(ranked[:size], topic.grades)[:2]
                    for size in range(len(ranked) + 1)
                ]
            )
        n = len(topics)
        every = [
            (sum(r for _, r in combo) / n, sum(p for p, _ in combo) / n)
            for combo in itertools.product(*every_cut)
        ]
        front = cutoff_bound.frontier(per_topic)
        for recall, precision in every:
            assert any(r >= recall - 1e-9 and p >= precision - 1e-9 for r, p in front)
        for point in front:
            assert any(abs(point[0] - r) < 1e-9 and abs(point[1] - p) < 1e-9 for r, p in every)
