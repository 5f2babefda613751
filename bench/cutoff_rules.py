"""Compare cut-off rules on the relevance set: which papers of a ranking to send.

    PYTHONPATH=. python bench/cutoff_rules.py [--markdown]

digest ranks every paper a filter matches, then sends those whose relevance
clears a cut-off (`Ranking.cutoff`: relevance >= max(min_relevance,
relative_cutoff x the best paper's)). This scores each topic of
bench/relevance once with no cut-off, then applies alternative rules to the
same rankings and prints, per rule, JSON with:

- its constant(s) chosen for the best set F1 among those that keep nDCG@10 at
  the current rule's (within 0.002): the cut-off can only remove papers, so a
  stricter rule pays in nDCG@10 and P@10 whenever it removes a relevant one;
- F1, precision, recall, nDCG@10, P@10 and papers returned at those constants;
- sensitivity: the range of F1 (and the lowest nDCG@10) when each constant
  moves by up to +-20%;
- split-half: constants chosen on the odd topics, F1 on the even ones, and
  the reverse; leave-one-topic-out: mean F1 and nDCG@10 of each topic scored
  with constants chosen on the other 19;
- a paired bootstrap (2,000 resamples of topics) 95% interval of its F1 minus
  the current rule's.

Uses the index's ranking part (`digest.scoring.ranking`: `plan`, `score`, `finish`)
directly, below the public API.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relevance import Topic, load_papers, load_topics, ndcg_at_k, precision_at_k, set_scores

from digest.config import ScoringSettings
from digest.filters import parse
from digest.scoring import PaperIndex
from digest.values import PaperText

MIN_RELEVANCE = ScoringSettings().min_relevance
NDCG_SLACK = 0.002


@dataclass(frozen=True, slots=True)
class Scored:
    """One matching paper of one topic, before any cut-off."""

    key: str
    relevance: float  # what _cutoff compares (bonuses included, popularity not)
    base: float  # title + abstract part only (no proximity or feedback bonus)
    full_coverage: bool  # every word of the topic is in the paper
    in_title: bool  # some word of the topic is in the title


@dataclass(frozen=True, slots=True)
class Ranking:
    topic: Topic
    papers: tuple[Scored, ...]  # in digest's order (score, popularity included)
    relevances: tuple[float, ...]  # sorted, best first


def rankings(settings: ScoringSettings | None = None) -> list[Ranking]:
    """Every topic's matching papers with no cut-off (`settings`' own are ignored)."""
    papers = load_papers()
    settings = replace(settings or ScoringSettings(), min_relevance=0.0, relative_cutoff=0.0)
    index = PaperIndex([PaperText(i, p.title, p.abstract) for i, p in enumerate(papers)], settings)
    out = []
    for topic in load_topics(split="train"):
        query = parse(topic.query)
        plan = index.ranking.plan(query)
        rows = []
        for doc, entry in index.ranking.score(query).items():
            score, _ = index.ranking.finish(doc, entry)
            units = [u for u in plan.units if doc in u.docs]
            covered = sum(u.idf for u in units) / plan.attainable
            in_title = any(occ[0] == "title" for u in units for occ in u.occurrences[doc])
            scored = Scored(
                papers[doc].key, entry[0], min(1.0, sum(entry[1:4])), covered > 0.999, in_title
            )
            rows.append((-score, doc, scored))
        ordered = tuple(row[2] for row in sorted(rows))
        relevances = tuple(sorted((p.relevance for p in ordered), reverse=True))
        out.append(Ranking(topic, ordered, relevances))
    return out


# --- rules: (ranking, constants) -> the papers sent --------------------------

Rule = Callable[[Ranking, tuple[float, ...]], list[Scored]]


def above(ranking: Ranking, cutoff: float) -> list[Scored]:
    return [p for p in ranking.papers if p.relevance >= cutoff]


def relative_to_best(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
    best = ranking.relevances[0] if ranking.relevances else 0.0
    return above(ranking, max(MIN_RELEVANCE, c[0] * best))


def relative_to_top(k: int) -> Rule:
    def rule(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
        top = ranking.relevances[:k]
        return above(ranking, max(MIN_RELEVANCE, c[0] * sum(top) / max(1, len(top))))

    return rule


def relative_to_kth(k: int) -> Rule:
    def rule(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
        kth = ranking.relevances[min(k, len(ranking.relevances)) - 1] if ranking.relevances else 0
        return above(ranking, max(MIN_RELEVANCE, c[0] * kth))

    return rule


def absolute(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
    return above(ranking, c[0])


def relative_on_base(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
    best = max((p.base for p in ranking.papers), default=0.0)
    return [p for p in ranking.papers if p.relevance >= MIN_RELEVANCE and p.base >= c[0] * best]


def largest_gap(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
    """Cut at the largest relative drop between neighbours in [lo, hi] x best (a knee)."""
    lo, hi = c
    rel = ranking.relevances
    if not rel:
        return []
    floor, ceiling = max(MIN_RELEVANCE, lo * rel[0]), hi * rel[0]
    widest, cutoff = -1.0, floor
    for i, value in enumerate(rel):
        if value < floor:
            break
        below = rel[i + 1] if i + 1 < len(rel) else 0.0
        if below < ceiling and (value - below) / value > widest:
            widest, cutoff = (value - below) / value, value
    return above(ranking, cutoff)


def stricter_unless(feature: str) -> Rule:
    """Relative cut-off c, raised by `extra` for papers lacking the feature."""

    def rule(ranking: Ranking, c: tuple[float, ...]) -> list[Scored]:
        share, extra = c
        best = ranking.relevances[0] if ranking.relevances else 0.0
        return [
            p
            for p in ranking.papers
            if p.relevance
            >= max(MIN_RELEVANCE, (share + (0 if getattr(p, feature) else extra)) * best)
        ]

    return rule


def steps(lo: float, hi: float, step: float = 0.01) -> list[float]:
    return [round(lo + i * step, 4) for i in range(round((hi - lo) / step) + 1)]


CURRENT = (ScoringSettings().relative_cutoff,)
SHARES = steps(0.15, 0.8)
# name, rule, grid of constants, constants to report instead of tuning (None: tune)
RULES: list[tuple[str, Rule, list[tuple[float, ...]], tuple[float, ...] | None]] = [
    ("relative to the best paper (current)", relative_to_best, [(c,) for c in SHARES], CURRENT),
    ("relative to the best paper, tuned", relative_to_best, [(c,) for c in SHARES], None),
    ("relative to the mean of the top 3", relative_to_top(3), [(c,) for c in SHARES], None),
    ("relative to the mean of the top 5", relative_to_top(5), [(c,) for c in SHARES], None),
    ("relative to the 3rd best paper", relative_to_kth(3), [(c,) for c in SHARES], None),
    ("absolute only", absolute, [(c,) for c in steps(0.15, 1.0)], None),
    ("relative on relevance without bonuses", relative_on_base, [(c,) for c in SHARES], None),
    (
        "largest gap within [lo, hi] x best",
        largest_gap,
        [(lo, hi) for lo in steps(0.15, 0.45, 0.03) for hi in steps(0.3, 0.7, 0.04) if hi > lo],
        None,
    ),
    (
        "stricter (+extra) for papers lacking a topic word",
        stricter_unless("full_coverage"),
        [(c, e) for c in steps(0.2, 0.4, 0.02) for e in steps(0.0, 0.3, 0.03)],
        None,
    ),
    (
        "stricter (+extra) for papers with no topic word in the title",
        stricter_unless("in_title"),
        [(c, e) for c in steps(0.2, 0.4, 0.02) for e in steps(0.0, 0.3, 0.03)],
        None,
    ),
]

# --- evaluation -------------------------------------------------------------

Metrics = dict[str, float]
NAMES = ("f1", "precision", "recall", "ndcg@10", "p@10", "returned")


def per_topic(rule: Rule, ranking: Ranking, c: tuple[float, ...]) -> tuple[float, ...]:
    keys = [p.key for p in rule(ranking, c)]
    grades = ranking.topic.grades
    precision, recall, f1 = set_scores(keys, grades)
    ndcg, p10 = ndcg_at_k(keys, grades), precision_at_k(keys, grades)
    return (f1, precision, recall, ndcg, p10, float(len(keys)))


class Table:
    """Per-topic metrics of one rule at every grid point, computed once."""

    def __init__(self, rule: Rule, grid: Sequence[tuple[float, ...]], data: list[Ranking]):
        self.rule, self.data = rule, data
        self.rows = {c: [per_topic(rule, r, c) for r in data] for c in grid}

    def at(self, c: tuple[float, ...], topics: Sequence[int]) -> Metrics:
        rows = self.rows.get(c) or [per_topic(self.rule, r, c) for r in self.data]
        return {n: sum(rows[t][i] for t in topics) / len(topics) for i, n in enumerate(NAMES)}

    def choose(self, topics: Sequence[int], floor: Metrics) -> tuple[float, ...]:
        """Best F1 among the constants that keep nDCG@10 at the current rule's."""
        scored = [(c, self.at(c, topics)) for c in self.rows]
        kept = [s for s in scored if s[1]["ndcg@10"] >= floor["ndcg@10"] - NDCG_SLACK]
        return max(kept or scored, key=lambda s: (s[1]["f1"], s[1]["ndcg@10"]))[0]


def evaluate_rule(
    table: Table, fixed: tuple[float, ...] | None, current: Table, rng: random.Random
) -> dict[str, Any]:
    everyone = list(range(len(table.data)))
    floor = current.at(CURRENT, everyone)
    c = fixed or table.choose(everyone, floor)
    out: dict[str, Any] = {"constants": c, **table.at(c, everyone)}
    moves = [1 + d / 100 for d in range(-20, 21, 5)]
    around = [
        table.at(tuple(round(x * f, 4) for x, f in zip(c, fs, strict=True)), everyone)
        for fs in itertools.product(moves, repeat=len(c))
    ]
    out["f1_within_20pct"] = (min(m["f1"] for m in around), max(m["f1"] for m in around))
    out["min_ndcg_within_20pct"] = min(m["ndcg@10"] for m in around)
    halves = [everyone[0::2], everyone[1::2]]
    out["split_half"] = []
    for tune, test in (halves, halves[::-1]):
        chosen = table.choose(tune, current.at(CURRENT, tune))
        out["split_half"].append({"constants": chosen, "held_out_f1": table.at(chosen, test)["f1"]})
    held = []
    for t in everyone:
        rest = [u for u in everyone if u != t]
        held.append(table.at(table.choose(rest, current.at(CURRENT, rest)), [t]))
    out["leave_one_out_f1"] = sum(m["f1"] for m in held) / len(held)
    out["leave_one_out_ndcg@10"] = sum(m["ndcg@10"] for m in held) / len(held)
    mine = [table.at(c, [t])["f1"] for t in everyone]
    base = [current.at(CURRENT, [t])["f1"] for t in everyone]
    diffs = [a - b for a, b in zip(mine, base, strict=True)]
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(2000))
    out["f1_minus_current_95pct"] = (means[50], means[1949])
    return out


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| rule | constants | F1 | P | R | nDCG@10 | P@10 | returned | F1 at ±20% "
        "| min nDCG@10 at ±20% | split-half held-out F1 | leave-one-out F1 / nDCG@10 "
        "| ΔF1 vs current (95%) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|",
    ]
    for name, r in results.items():
        half = ", ".join(f"{h['held_out_f1']:.3f}" for h in r["split_half"])
        lo, hi = r["f1_minus_current_95pct"]
        lines.append(
            f"| {name} | {', '.join(f'{x:g}' for x in r['constants'])} | {r['f1']:.3f} "
            f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['ndcg@10']:.3f} | {r['p@10']:.3f} "
            f"| {r['returned']:.1f} | {r['f1_within_20pct'][0]:.3f}–{r['f1_within_20pct'][1]:.3f} "
            f"| {r['min_ndcg_within_20pct']:.3f} | {half} "
            f"| {r['leave_one_out_f1']:.3f} / {r['leave_one_out_ndcg@10']:.3f} "
            f"| {lo:+.3f} … {hi:+.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--markdown", action="store_true", help="a table instead of JSON")
    args = parser.parse_args()
    data = rankings()
    current = Table(relative_to_best, [CURRENT], data)
    rng = random.Random(1)
    results = {
        name: evaluate_rule(Table(rule, grid, data), fixed, current, rng)
        for name, rule, grid, fixed in RULES
    }
    if args.markdown:
        print(markdown(results))
    else:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
