"""How far can any cut-off go? An upper bound from digest's rankings on the relevance set.

    PYTHONPATH=. python bench/cutoff_bound.py

bench/relevance.py compares digest's thresholded result sets with two baselines
that sit at opposite ends: keyword-AND (few papers, high set precision) and
BM25 with every score > 0 (many papers, high set recall). This asks whether
*any* cut-off over digest's rankings could beat both at once. It ranks every
topic with no cut-off, then lets an oracle that knows the judgments choose the
cut-off of each topic separately, and reports the exact frontier of macro set
precision against macro set recall such oracles reach: no rule that sees only
scores can do better than an oracle that sees the answers.

Two rankings: digest's own eligibility (the bare-word rule) and any paper
sharing one word of the topic (`relax_share` ~0), which admits more of the
relevant papers that lack some of the topic's words. Prints JSON: the
baselines' numbers (measured in the same run), and per ranking the highest
recall any cut-off reaches, the best precision at a recall above BM25's, the
best recall at a precision above keyword-AND's, and whether any point beats both.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relevance import Topic, bm25, evaluate, keyword_and, load_papers, load_topics

from digest.config import ScoringSettings
from digest.domain import PaperText
from digest.query import parse
from digest.scoring import PaperIndex

# (sum of per-topic recalls, sum of per-topic precisions) over the topics so far
Point = tuple[float, float]


def choices(ranked: Sequence[str], topic: Topic) -> list[Point]:
    """Each cut-off worth considering for one topic, as (recall, precision).

    For h relevant papers kept, the shortest list holding them (cut just after
    the h-th) has the best precision; h = 0 is the empty list (precision 0, as
    bench/relevance.py counts it)."""
    relevant = {key for key, grade in topic.grades.items() if grade >= 1}
    points = [(0.0, 0.0)]
    hits = 0
    for position, key in enumerate(ranked, 1):
        if key in relevant:
            hits += 1
            points.append((hits / len(relevant), hits / position))
    return points


def pareto(points: list[Point]) -> list[Point]:
    """Points no other point beats on both sums, by recall ascending."""
    front: list[Point] = []
    for recall, precision in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or precision > front[-1][1] + 1e-12:
            front.append((recall, precision))
    return front[::-1]


def frontier(per_topic: list[list[Point]]) -> list[Point]:
    """Exact macro (recall, precision) frontier over every combination of per-topic
    cut-offs: sums combined topic by topic, dominated combinations dropped."""
    sums: list[Point] = [(0.0, 0.0)]
    for options in per_topic:
        sums = pareto([(r + r2, p + p2) for r, p in sums for r2, p2 in options])
    n = len(per_topic)
    return [(r / n, p / n) for r, p in sums]


def bound(front: list[Point], precision_to_beat: float, recall_to_beat: float) -> dict[str, Any]:
    above_recall = [p for r, p in front if r > recall_to_beat]
    above_precision = [r for r, p in front if p > precision_to_beat]
    return {
        "max_recall": round(max(r for r, _ in front), 3),
        "best_precision_with_recall_above_bm25": (
            round(max(above_recall), 3) if above_recall else None
        ),
        "best_recall_with_precision_above_keyword_and": (
            round(max(above_precision), 3) if above_precision else None
        ),
        "both_beaten": any(r > recall_to_beat and p > precision_to_beat for r, p in front),
    }


def main() -> None:
    papers = load_papers()
    topics = load_topics()
    texts = [PaperText(i, p.title, p.abstract) for i, p in enumerate(papers)]
    keyword, _ = evaluate(keyword_and(papers), topics)
    ranked_bm25, _ = evaluate(bm25(papers), topics)
    to_beat = (keyword["set_precision"], ranked_bm25["set_recall"])
    uncut = replace(ScoringSettings(), min_relevance=0.0, relative_cutoff=0.0)
    rankings = {
        "digest_eligibility": uncut,
        "any_topic_word": replace(uncut, relax_share=1e-9),
    }
    report: dict[str, Any] = {
        "keyword_and_set_precision": to_beat[0],
        "bm25_set_recall": to_beat[1],
        "rankings": {},
    }
    for name, settings in rankings.items():
        index = PaperIndex(texts, settings)
        per_topic = [
            choices([papers[hit.paper_id].key for hit in index.search(parse(t.query))], t)
            for t in topics
        ]
        report["rankings"][name] = bound(frontier(per_topic), *to_beat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
