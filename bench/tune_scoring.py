"""Tune digest's scoring settings on the relevance set: a grid, measured, printed as JSON.

    PYTHONPATH=. python bench/tune_scoring.py [--top N] [--halves]

Each combination of the grid below is scored with bench/relevance.py's metrics
(macro nDCG@10, P@10, set precision/recall/F1). `--halves` also tunes on the
odd-numbered topics and reports the chosen setting on the even ones (and
vice versa), to show how much of the gain is fitted to these 20 topics.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relevance import Topic, evaluate, load_papers, load_topics

from digest.config import ScoringSettings
from digest.filters import parse
from digest.scoring import Corpus, PaperIndex
from digest.values import PaperText

GRID: dict[str, list[Any]] = {
    "relax_share": [0.3, 0.4, 0.5, 0.6],
    "min_relevance": [0.2, 0.3, 0.4],
    "relative_cutoff": [0.3, 0.4, 0.5],
    "title_weight": [2.0, 3.0, 5.0],
    "proximity_weight": [0.2, 0.4],
    "feedback_weight": [0.0, 0.3],
}


_CORPUS: dict[int, tuple[list[Any], Corpus]] = {}  # by the papers' identity (kept alive)


def index_for(settings: ScoringSettings, papers: list[Any]) -> PaperIndex:
    """An index with these settings over a corpus shared by every combination.

    The analysed text depends on no setting, so it is built once; each index
    then compiles its own leaves and scores under its own settings.
    """
    cached = _CORPUS.get(id(papers))
    if cached is None:
        texts = [PaperText(i, p.title, p.abstract) for i, p in enumerate(papers)]
        cached = _CORPUS[id(papers)] = (papers, Corpus(texts))
    return PaperIndex(cached[1], settings)


def measure(settings: ScoringSettings, topics: list[Topic], papers: list[Any]) -> dict[str, float]:
    index = index_for(settings, papers)

    def search(query: str) -> list[str]:
        return [papers[hit.paper_id].key for hit in index.search(parse(query))]

    means, _ = evaluate(search, topics)
    return means


def objective(m: dict[str, float]) -> float:
    return m["ndcg@10"] + m["set_f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--halves", action="store_true")
    args = parser.parse_args()
    papers = load_papers()
    topics = load_topics(split="train")  # the test split is never tuned on
    base = ScoringSettings()
    combos = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    results = []
    for combo in combos:
        settings = replace(base, **combo)
        results.append((combo, measure(settings, topics, papers), settings))
    results.sort(key=lambda r: -objective(r[1]))
    out: dict[str, Any] = {
        "combinations": len(combos),
        "default": {k: getattr(base, k) for k in GRID} | measure(base, topics, papers),
        "best": [combo | metrics for combo, metrics, _ in results[: args.top]],
    }
    if args.halves:
        halves = [topics[0::2], topics[1::2]]
        cross = []
        for tune, test in (halves, halves[::-1]):
            scored = [(c, measure(s, tune, papers), s) for c, _, s in results]
            combo, _, settings = max(scored, key=lambda r: objective(r[1]))
            cross.append(combo | {"held_out": measure(settings, test, papers)})
        out["cross_validation"] = cross
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
