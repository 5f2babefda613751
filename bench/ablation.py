"""Knob audit: each ranking constant at its neutral value, paired against the defaults.

    PYTHONPATH=. python bench/ablation.py [--knobs NAME,...] [--together] [--per-topic]

Runs digest (words + meaning, bench/relevance.py's `digest`) and digest_words
on the 80 judged topics once with the defaults and once per knob below, with
that knob alone set to its neutral value (off, 1.0, no rule). Per split (train,
test, test_unseen) and system it prints, as JSON, the mean change of nDCG@10
and set F1 per topic, topics better / worse, a paired bootstrap 95% interval of
the mean change over topics (10,000 resamples, fixed seed), and how many topics
returned another list at all (0: the knob does not act on that path).
`--together` sets the chosen knobs to their neutral values in one run.

A knob whose removal moves neither test nDCG@10 nor test F1 beyond noise (both
intervals include 0) goes away (issue #19). Module constants are patched for
the duration of a run; the corpus is rebuilt under the patch, so rules applied
while indexing (availability notes, acronyms) are ablated too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from relevance import UNSEEN, Paper, Topic, evaluate, load_papers, load_topics, test_ids

from digest.config import ScoringSettings
from digest.filters import meaning_texts, parse
from digest.scoring import Corpus, PaperIndex
from digest.scoring.acronyms import Acronyms
from digest.values import PaperText

METRICS = ("ndcg@10", "set_f1")
_LEARN = Acronyms.learn


@dataclass(frozen=True)
class Knob:
    name: str
    neutral: str  # the neutral value, as the report says it
    settings: Mapping[str, Any] = field(default_factory=dict)
    patches: Sequence[tuple[str, object]] = ()  # ("module.attribute", value)


def _learned_only(texts: Sequence[str], *, builtin: bool = True) -> Acronyms:
    return _LEARN(texts, builtin=False)


def _builtin_only(texts: Sequence[str], *, builtin: bool = True) -> Acronyms:
    return _LEARN((), builtin=builtin)


def _none(texts: Sequence[str], *, builtin: bool = True) -> Acronyms:
    return Acronyms({})


def _unchanged(text: str) -> str:
    return text


_LEARN_AT = "digest.scoring.corpus.Acronyms.learn"


def setting(name: str, neutral: str, **values: float) -> Knob:
    return Knob(name, neutral, settings=values)


def patch(name: str, neutral: str, target: str, value: object) -> Knob:
    return Knob(name, neutral, patches=[(target, value)])


KNOBS = (
    setting("title_weight", "1.0 (= abstract)", title_weight=1.0),
    setting("proximity_weight", "0 (no proximity bonus)", proximity_weight=0.0),
    patch("proximity window", "1 (adjacent words only)", "ranking.PROXIMITY_WINDOW", 1),
    setting("feedback_weight", "0 (no feedback)", feedback_weight=0.0),
    patch("feedback df limit", "none (1.0)", "feedback.FEEDBACK_MAX_DF", 1.0),
    patch("feedback depth", "10 papers (sensitivity)", "feedback.FEEDBACK_DOCS", 10),
    setting("min_relevance", "0 (no absolute cut-off)", min_relevance=0.0),
    setting("relative_cutoff", "0 (no relative cut-off)", relative_cutoff=0.0),
    setting("relax rule", "none (every bare word required)", relax_share=1.0),
    setting("relax_share", "0 (any one word)", relax_share=0.0),
    patch("BM25 b", "0 (no length normalisation)", "leaves.B", 0.0),
    patch("BM25 k1", "0 (word counts ignored)", "leaves.K1", 0.0),
    patch("availability notes", "kept", "corpus.blank_availability_notes", _unchanged),
    patch("acronyms", "none", _LEARN_AT, staticmethod(_none)),
    patch("learned acronyms", "none (built-in only)", _LEARN_AT, staticmethod(_builtin_only)),
    patch("built-in acronyms", "none (learned only)", _LEARN_AT, staticmethod(_learned_only)),
    setting("popularity_weight", "0 (no upvotes in the set)", popularity_weight=0.0),
    setting("semantic_weight", "0 (no cosine in the score)", semantic_weight=0.0),
    setting("semantic_cutoff", "0 (no cut-off)", semantic_cutoff=0.0),
    setting("semantic_admit_z", "0 (no admission)", semantic_admit_z=0.0),
)


@contextmanager
def applied(knob: Knob) -> Iterator[None]:
    with ExitStack() as stack:
        for target, value in knob.patches:
            full = target if target.startswith("digest.") else f"digest.scoring.{target}"
            stack.enter_context(mock.patch(full, value))
        yield


Vectors = tuple[dict[int, bytes], dict[str, bytes]]


def runs(
    knob: Knob | None, papers: Sequence[Paper], topics: Sequence[Topic], vectors: Vectors
) -> dict[str, dict[str, dict[str, Any]]]:
    """system → topic id → that topic's row (bench/relevance.py's `evaluate`)."""
    settings = ScoringSettings()
    if knob is not None:
        settings = replace(settings, **knob.settings)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with applied(knob or Knob("defaults", "")):
        corpus = Corpus([PaperText(i, p.title, p.abstract) for i, p in enumerate(papers)])
        semantic = PaperIndex(corpus, settings, paper_vectors=vectors[0], text_vectors=vectors[1])
        words = PaperIndex(corpus, settings)
        keys = [p.key for p in papers]
        systems: dict[str, Callable[[str], list[str]]] = {
            "digest": lambda q: [
                keys[h.paper_id] for h in semantic.search(parse(q), meaning_texts(q))
            ],
            "digest_words": lambda q: [keys[h.paper_id] for h in words.search(parse(q))],
        }
        for name, system in systems.items():
            _, rows = evaluate(system, topics)  # (searches are memoised: asked again below)
            out[name] = {row["topic"]: row | {"list": system(row["query"])} for row in rows}
    return out


def interval(deltas: Sequence[float], resamples: int, seed: int) -> tuple[float, float]:
    """Paired bootstrap over topics: 95% interval of the mean change."""
    values = np.asarray(deltas, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    low, high = np.percentile(values[picks].mean(axis=1), [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def compare(
    base: Mapping[str, Mapping[str, Any]],
    other: Mapping[str, Mapping[str, Any]],
    ids: Sequence[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"changed": sum(base[t]["list"] != other[t]["list"] for t in ids)}
    for metric in METRICS:
        deltas = [other[t][metric] - base[t][metric] for t in ids]
        entry[metric] = {
            "delta": round(sum(deltas) / len(deltas), 4) + 0.0,
            "ci95": interval(deltas, args.resamples, args.seed),
            "better": sum(d > 1e-9 for d in deltas),
            "worse": sum(d < -1e-9 for d in deltas),
        }
        if args.per_topic:
            entry[metric]["per_topic"] = {t: round(d, 4) for t, d in zip(ids, deltas, strict=True)}
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--knobs", help="comma-separated knob names (default: all)")
    parser.add_argument("--per-topic", action="store_true", help="add each topic's change")
    parser.add_argument("--together", action="store_true", help="the chosen knobs as one run")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args(argv)
    chosen = [k for k in KNOBS if not args.knobs or k.name in args.knobs.split(",")]
    if args.together:
        chosen = [
            Knob(
                " + ".join(k.name for k in chosen),
                ", ".join(k.neutral for k in chosen),
                {name: v for k in chosen for name, v in k.settings.items()},
                [p for k in chosen for p in k.patches],
            )
        ]
    papers, topics, test = load_papers(), load_topics(), test_ids()
    splits = {
        "train": [t.id for t in topics if t.id not in test],
        "test": [t.id for t in topics if t.id in test],
        UNSEEN: [t.id for t in topics if t.id in test and t.origin not in ("", "team")],
    }
    from relevance import _as_bytes, _paper_vectors

    encoder, matrix = _paper_vectors(papers)
    texts = sorted({text for t in topics for text in meaning_texts(t.query)})
    vectors = (
        {i: row.astype("<f4").tobytes() for i, row in enumerate(matrix)},
        _as_bytes(texts, encoder.encode(texts)),
    )
    base = runs(None, papers, topics, vectors)
    report: dict[str, Any] = {
        "resamples": args.resamples,
        "seed": args.seed,
        "defaults": {
            split: {
                name: {m: round(sum(rows[t][m] for t in ids) / len(ids), 4) for m in METRICS}
                for name, rows in base.items()
            }
            for split, ids in splits.items()
        },
        "knobs": [],
    }
    for knob in chosen:
        other = runs(knob, papers, topics, vectors)
        report["knobs"].append(
            {
                "knob": knob.name,
                "neutral": knob.neutral,
                **{
                    split: {name: compare(base[name], other[name], ids, args) for name in base}
                    for split, ids in splits.items()
                },
            }
        )
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
