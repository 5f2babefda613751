"""How far can any cut-off go? An upper bound from digest's rankings on the relevance set.

    PYTHONPATH=. python bench/cutoff_bound.py

bench/relevance.py compares digest's thresholded result sets with two baselines
that sit at opposite ends: keyword-AND (few papers, high set precision) and
BM25 with every score > 0 (many papers, high set recall). This asks whether
*any* threshold on digest's relevance could beat both at once. It scores every
topic with no cut-off, then lets an oracle that knows the judgments choose the
cut-off of each topic separately, and reports the exact frontier of macro set
precision against macro set recall such oracles reach: no rule that thresholds
these scores can do better than an oracle that sees the answers.

Two rankings: digest's own eligibility (the bare-word rule) and any paper
sharing one word of the topic (`relax_share` ~0), which admits more of the
relevant papers that lack some of the topic's words. Prints JSON: the
baselines' numbers (measured in the same run), and per ranking the highest
recall any cut-off reaches, the best precision at a recall above BM25's, the
best recall at a precision above keyword-AND's, whether any point beats both,
and the macro F1 of the best cut-off of each topic chosen in hindsight.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cutoff_rules import rankings
from relevance import (
    System,
    Topic,
    bm25,
    evaluate,
    keyword_and,
    load_papers,
    load_topics,
    set_scores,
)

from digest.config import ScoringSettings

# (sum of per-topic recalls, sum of per-topic precisions) over the topics so far
Point = tuple[float, float]


def cuts(ranked: Sequence[str], topic: Topic) -> list[tuple[float, float, float]]:
    """(precision, recall, F1) of every cut-off of one topic's ranking, the empty list
    included, scored as bench/relevance.py scores a result set."""
    return [set_scores(ranked[:size], topic.grades) for size in range(len(ranked) + 1)]


def choices(scored: list[tuple[float, float, float]]) -> list[Point]:
    """A topic's cut-offs (from `cuts`) as (recall, precision), dominated ones dropped."""
    return pareto([(recall, precision) for precision, recall, _ in scored])


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


def macro(system: System, topics: Sequence[Topic], metric: str) -> float:
    """A baseline's macro average, unrounded (the comparison can be that close)."""
    _, rows = evaluate(system, topics)
    return sum(row[metric] for row in rows) / len(rows)


def main() -> None:
    papers = load_papers()
    topics = load_topics(split="train")  # never the test split: see relevance.load_topics
    precision_to_beat = macro(keyword_and(papers), topics, "set_precision")
    recall_to_beat = macro(bm25(papers), topics, "set_recall")
    report: dict[str, Any] = {
        "keyword_and_set_precision": round(precision_to_beat, 4),
        "bm25_set_recall": round(recall_to_beat, 4),
        "rankings": {},
    }
    ranked_by = {
        "digest_eligibility": ScoringSettings(),
        "any_topic_word": replace(ScoringSettings(), relax_share=1e-9),
    }
    for name, settings in ranked_by.items():
        per_topic, f1s = [], []
        for ranking in rankings(settings):
            # by relevance itself, which the cut-off compares (digest's order is by
            # rounded scores, popularity included)
            ordered = sorted(ranking.papers, key=lambda p: -p.relevance)
            scored = cuts([p.key for p in ordered], ranking.topic)
            per_topic.append(choices(scored))
            f1s.append(max(f1 for _, _, f1 in scored))  # the best cut-off, in hindsight
        report["rankings"][name] = {
            **bound(frontier(per_topic), precision_to_beat, recall_to_beat),
            "hindsight_macro_f1": round(sum(f1s) / len(f1s), 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
