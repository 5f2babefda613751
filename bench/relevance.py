"""Relevance benchmark: how well do topic filters find the papers a reader wants?

Scores five systems on the graded set in `bench/relevance/` (298 papers, 80
topics judged by reading, see its README), on its training and its frozen
test split, and prints JSON:

  (a) keyword_and — every query word present in title+abstract (case-insensitive,
      on word boundaries, no stemming), unranked: corpus order;
  (b) bm25 — plain `rank_bm25.BM25Okapi` over title+abstract (lower-cased
      word tokens, no stemming, no stop words); result set = score > 0;
  (c) cosine — the query's all-MiniLM-L6-v2 embedding against each paper's,
      the ten closest papers (what a plain embedding alert sends);
  (d) digest_words — digest's ranker on words alone (`[semantic] enabled = "off"`);
  (e) digest — digest's ranker with the semantic signal (stored paper vectors,
      the filter's meaning texts), as the planner runs it when the encoder is
      installed.

Metrics, macro-averaged over topics: nDCG@10 (gain 2^grade - 1, log2 discount,
ideal ranking from all judged papers), P@10 (relevant in the top 10 / 10), and
precision / recall / F1 of the whole returned set. "Relevant" for the binary
metrics means grade >= --relevant-grade (default 1).

Paper vectors take about a minute to compute; they are kept in
`bench/relevance/vectors/<model>.npy` and recomputed when the model changes.

    PYTHONPATH=. python bench/relevance.py [--per-topic] [--split train|test|both]

The training split is the default: tuning looks at nothing else. The test
split is reported with its subset `test_unseen`, the 20 topics written by the
independent assessors (the other 7 are team topics, on which digest's word
constants were once tuned); the README quotes `test_unseen`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAPERS = HERE / "relevance" / "papers.jsonl"
JUDGMENTS = HERE / "relevance" / "judgments.toml"
SPLIT = HERE / "relevance" / "split.toml"
VECTORS = HERE / "relevance" / "vectors"
SPLITS = ("train", "test")
UNSEEN = "test_unseen"
"""The test topics written by the independent assessors: the team topics of the
test split were among those digest's word constants were once tuned on."""
GRADES = frozenset({0, 1, 2})
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Paper:
    key: str
    title: str
    abstract: str


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    query: str
    grades: Mapping[str, int]  # paper key -> 0/1/2; unlisted papers are 0
    style: str = ""  # short, acronym, phrase, boolean, sentence
    origin: str = ""  # "team" (the first 20 topics) or the independent assessor


# A system takes a query and returns paper keys, best first; the list is its result set.
System = Callable[[str], list[str]]


# --- data -------------------------------------------------------------------


def load_papers(path: Path = PAPERS) -> list[Paper]:
    """The corpus, in file order (which is also the keyword baseline's order)."""
    papers = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            papers.append(Paper(row["key"], row["title"], row["abstract"]))
    return papers


def test_ids(path: Path = SPLIT) -> frozenset[str]:
    """The frozen test split: topic ids nothing is tuned on."""
    with path.open("rb") as handle:
        return frozenset(str(t) for t in tomllib.load(handle)["test"])


def load_topics(
    path: Path = JUDGMENTS, *, split: str | None = None, split_path: Path = SPLIT
) -> list[Topic]:
    """The judged topics; `split="train"` or `"test"` keeps that split only.

    Tuning scripts must ask for `split="train"`: the test split is what the
    README quotes, and it stays honest only while nothing is chosen on it.
    """
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    topics = [
        Topic(
            str(t["id"]),
            str(t["query"]),
            {str(k): int(v) for k, v in t["grades"].items()},
            str(t.get("style", "")),
            str(t.get("origin", "")),
        )
        for t in data["topic"]
    ]
    if split is None:
        return topics
    test = test_ids(split_path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return [t for t in topics if (t.id in test) == (split == "test")]


# --- metrics ----------------------------------------------------------------


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: the gain at rank r (1-based) is divided by log2(r + 1)."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain 2^grade - 1; the ideal ranking uses every judged paper."""
    ideal = dcg([2.0**g - 1 for g in sorted(grades.values(), reverse=True)[:k]])
    if ideal == 0:
        return 0.0
    return dcg([2.0 ** grades.get(key, 0) - 1 for key in ranked[:k]]) / ideal


def precision_at_k(
    ranked: Sequence[str], grades: Mapping[str, int], k: int = 10, relevant_grade: int = 1
) -> float:
    """Relevant papers among the first k, divided by k (a short list is not rewarded)."""
    return sum(1 for key in ranked[:k] if grades.get(key, 0) >= relevant_grade) / k


def set_scores(
    returned: Sequence[str], grades: Mapping[str, int], relevant_grade: int = 1
) -> tuple[float, float, float]:
    """Precision, recall and F1 of a whole result set (empty set: precision 0)."""
    relevant = {key for key, grade in grades.items() if grade >= relevant_grade}
    got = set(returned)
    hits = len(got & relevant)
    precision = hits / len(got) if got else 0.0
    recall = hits / len(relevant) if relevant else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# --- systems ----------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """Lower-cased letter/digit runs: hyphens, punctuation and spaces all separate."""
    return _TOKEN.findall(text.casefold())


def keyword_and(papers: Sequence[Paper]) -> System:
    """Every query word as a whole word somewhere in title+abstract; corpus order."""
    texts = [f"{p.title}\n{p.abstract}" for p in papers]

    def search(query: str) -> list[str]:
        patterns = [
            re.compile(rf"(?<![^\W_]){re.escape(w)}(?![^\W_])", re.IGNORECASE)
            for w in dict.fromkeys(tokens(query))
        ]
        if not patterns:
            return []
        return [
            p.key
            for p, text in zip(papers, texts, strict=True)
            if all(pattern.search(text) for pattern in patterns)
        ]

    return search


def bm25(papers: Sequence[Paper]) -> System:
    """Plain BM25Okapi (rank_bm25 defaults) over title+abstract; every score > 0 is returned."""
    from rank_bm25 import BM25Okapi

    index = BM25Okapi([tokens(f"{p.title} {p.abstract}") for p in papers])

    def search(query: str) -> list[str]:
        scores = index.get_scores(tokens(query))
        order = sorted(range(len(papers)), key=lambda i: (-scores[i], i))
        return [papers[i].key for i in order if scores[i] > 0]

    return search


class Unavailable(Exception):
    """The system cannot run in this checkout (e.g. the encoder is not installed)."""


def digest_words(papers: Sequence[Paper]) -> System:
    """digest's ranker on words alone: `PaperIndex(...).search(parse(q))`."""
    from digest.config import ScoringSettings
    from digest.filters import parse
    from digest.scoring import PaperIndex

    index = PaperIndex(_texts(papers), ScoringSettings())

    def search(query: str) -> list[str]:
        return [papers[hit.paper_id].key for hit in index.search(parse(query))]

    return search


def digest_semantic(papers: Sequence[Paper], topics: Sequence[Topic] = ()) -> System:
    """digest's ranker with the semantic signal, as the planner runs it."""
    from digest.config import ScoringSettings
    from digest.filters import meaning_texts, parse
    from digest.scoring import Corpus, PaperIndex

    encoder, matrix = _paper_vectors(papers)
    corpus = Corpus(_texts(papers))
    paper_vectors = {i: row.astype("<f4").tobytes() for i, row in enumerate(matrix)}
    text_vectors: dict[str, bytes] = {}

    def index_for(texts: Sequence[str]) -> Any:
        missing = sorted(set(texts) - text_vectors.keys())
        if missing:  # embedded once, like the planner's stored text vectors
            text_vectors.update(_as_bytes(missing, encoder.encode(missing)))
        return PaperIndex(
            corpus, ScoringSettings(), paper_vectors=paper_vectors, text_vectors=text_vectors
        )

    indexes = [index_for([text for t in topics for text in meaning_texts(t.query)])]

    def search(query: str) -> list[str]:
        meaning = meaning_texts(query)
        if not set(meaning) <= text_vectors.keys():
            indexes[0] = index_for(meaning)
        return [papers[hit.paper_id].key for hit in indexes[0].search(parse(query), meaning)]

    return search


def cosine(papers: Sequence[Paper], topics: Sequence[Topic] = ()) -> System:
    """The ten papers whose embedding is closest to the query text's."""
    encoder, matrix = _paper_vectors(papers)

    def search(query: str) -> list[str]:
        similarity = matrix @ encoder.encode([query])[0]
        order = sorted(range(len(papers)), key=lambda i: (-float(similarity[i]), i))
        return [papers[i].key for i in order[:10]]

    return search


def _texts(papers: Sequence[Paper]) -> list[Any]:
    from digest.values import PaperText

    return [PaperText(paper_id=i, title=p.title, abstract=p.abstract) for i, p in enumerate(papers)]


def _as_bytes(texts: Sequence[str], rows: Any) -> dict[str, bytes]:
    return {text: row.astype("<f4").tobytes() for text, row in zip(texts, rows, strict=True)}


def _paper_vectors(papers: Sequence[Paper]) -> tuple[Any, Any]:
    """(the encoder, its vectors of `papers`), computed once per model and kept on disk."""
    try:
        import numpy as np

        from digest.semantic import SemanticUnavailable, load_encoder, paper_text
    except ImportError as error:
        raise Unavailable(f"{error.name} is not installed") from error
    try:
        encoder = load_encoder()
    except SemanticUnavailable as error:
        raise Unavailable(str(error)) from error
    keys = "\n".join(p.key for p in papers).encode()
    path = VECTORS / f"{encoder.name}-{hashlib.sha256(keys).hexdigest()[:12]}.npy"
    if path.exists():
        return encoder, np.load(path)
    matrix = encoder.encode([paper_text(p.title, p.abstract) for p in papers])
    path.parent.mkdir(exist_ok=True)
    np.save(path, matrix)
    return encoder, matrix


Builder = Callable[[Sequence[Paper], Sequence[Topic]], System]
SYSTEMS: dict[str, Builder] = {
    "keyword_and": lambda papers, topics: keyword_and(papers),
    "bm25": lambda papers, topics: bm25(papers),
    "cosine": cosine,
    "digest_words": lambda papers, topics: digest_words(papers),
    "digest": digest_semantic,
}


# --- evaluation -------------------------------------------------------------


def evaluate(
    system: System, topics: Sequence[Topic], *, k: int = 10, relevant_grade: int = 1
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Per-topic rows and their macro averages for one system."""
    rows: list[dict[str, Any]] = []
    for topic in topics:
        returned = system(topic.query)
        precision, recall, f1 = set_scores(returned, topic.grades, relevant_grade)
        rows.append(
            {
                "topic": topic.id,
                "query": topic.query,
                "relevant": sum(1 for g in topic.grades.values() if g >= relevant_grade),
                "returned": len(returned),
                f"ndcg@{k}": ndcg_at_k(returned, topic.grades, k),
                f"p@{k}": precision_at_k(returned, topic.grades, k, relevant_grade),
                "set_precision": precision,
                "set_recall": recall,
                "set_f1": f1,
            }
        )
    names = [f"ndcg@{k}", f"p@{k}", "set_precision", "set_recall", "set_f1", "returned"]
    means = {name: sum(row[name] for row in rows) / len(rows) for name in names}
    means["mean_returned"] = means.pop("returned")
    return {name: round(value, 4) for name, value in means.items()}, rows


def run(
    papers: Sequence[Paper],
    topics: Sequence[Topic],
    *,
    test: frozenset[str] | None = None,
    k: int = 10,
    relevant_grade: int = 1,
    per_topic: bool = False,
    builders: Mapping[str, Builder] | None = None,
) -> dict[str, Any]:
    """Evaluate every system on each split (`test` names the test topics; None: one split)."""
    if builders is None:
        builders = SYSTEMS
    splits: dict[str, list[Topic]] = (
        {"all": list(topics)}
        if test is None
        else {name: [t for t in topics if (t.id in test) == (name == "test")] for name in SPLITS}
    )
    if test is not None:
        splits[UNSEEN] = [t for t in splits["test"] if t.origin not in ("", "team")]
    report: dict[str, Any] = {
        "papers": len(papers),
        "topics": len(topics),
        "relevant_grade": relevant_grade,
        "k": k,
        "splits": {
            name: {"topics": len(chosen), "systems": {}}
            for name, chosen in splits.items()
            if chosen
        },
    }
    for name, build in builders.items():
        try:
            system = build(papers, topics)
        except Unavailable as error:
            for split in report["splits"].values():
                split["systems"][name] = {"available": False, "error": f"not available: {error}"}
            continue
        for split_name, chosen in splits.items():
            if not chosen:
                continue
            means, rows = evaluate(system, chosen, k=k, relevant_grade=relevant_grade)
            entry: dict[str, Any] = {"available": True, **means}
            if per_topic:
                entry["per_topic"] = [
                    {n: round(v, 4) if isinstance(v, float) else v for n, v in row.items()}
                    for row in rows
                ]
            report["splits"][split_name]["systems"][name] = entry
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--papers", type=Path, default=PAPERS)
    parser.add_argument("--judgments", type=Path, default=JUDGMENTS)
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "both"),
        default="train",
        help="the topics to report: train (the default: what tuning may look at), test "
        "(with test_unseen, its topics by the independent assessors), or both",
    )
    parser.add_argument(
        "--systems",
        help="comma-separated systems to run (default: all of " + ", ".join(SYSTEMS) + ")",
    )
    parser.add_argument("--per-topic", action="store_true", help="add one row per topic")
    parser.add_argument("--k", type=int, default=10, help="cut-off for nDCG@k and P@k")
    parser.add_argument(
        "--relevant-grade",
        type=int,
        choices=(1, 2),
        default=1,
        help="lowest grade that counts as relevant for P@k and set metrics",
    )
    args = parser.parse_args(argv)
    builders = SYSTEMS
    if args.systems:
        unknown = set(args.systems.split(",")) - SYSTEMS.keys()
        if unknown:
            parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
        builders = {n: b for n, b in SYSTEMS.items() if n in args.systems.split(",")}
    topics = load_topics(args.judgments, split=None if args.split == "both" else args.split)
    report = run(
        load_papers(args.papers),
        topics,
        test=test_ids(),
        k=args.k,
        relevant_grade=args.relevant_grade,
        per_topic=args.per_topic,
        builders=builders,
    )
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
