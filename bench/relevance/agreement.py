"""Agreement between the two judges of the topics judged twice (bench/relevance/second_judge/).

For each twice-judged topic, every paper of the corpus is a pair of grades
(unlisted = 0). Prints JSON: per file and topic, Cohen's kappa on relevant /
not relevant (grade >= 1) and the positive agreement (2 × both / (first +
second)); and pooled over all pairs of a file.

    PYTHONPATH=. python bench/relevance/agreement.py
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def kappa(pairs: Sequence[tuple[int, int]]) -> float:
    """Cohen's kappa of two raters' labels."""
    n = len(pairs)
    labels = {a for a, _ in pairs} | {b for _, b in pairs}
    observed = sum(a == b for a, b in pairs) / n
    expected = sum(
        (sum(a == c for a, _ in pairs) / n) * (sum(b == c for _, b in pairs) / n) for c in labels
    )
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def positive_agreement(pairs: Sequence[tuple[int, int]]) -> float:
    both = sum(1 for a, b in pairs if a and b)
    either = sum(a for a, _ in pairs) + sum(b for _, b in pairs)
    return 2 * both / either if either else 1.0


def main() -> int:
    keys = [json.loads(line)["key"] for line in (HERE / "papers.jsonl").open(encoding="utf-8")]
    with (HERE / "judgments.toml").open("rb") as handle:
        first = {t["id"]: t["grades"] for t in tomllib.load(handle)["topic"]}
    report: dict[str, object] = {}
    for path in sorted((HERE / "second_judge").glob("*.toml")):
        with path.open("rb") as handle:
            second = {t["id"]: t["grades"] for t in tomllib.load(handle)["topic"]}
        pooled: list[tuple[int, int]] = []
        topics = {}
        for topic, grades in second.items():
            pairs = [(int(first[topic].get(k, 0) >= 1), int(grades.get(k, 0) >= 1)) for k in keys]
            pooled += pairs
            topics[topic] = {
                "relevant_first": sum(a for a, _ in pairs),
                "relevant_second": sum(b for _, b in pairs),
                "kappa": round(kappa(pairs), 3),
            }
        report[path.stem] = {
            "topics": len(second),
            "pooled_kappa": round(kappa(pooled), 3),
            "positive_agreement": round(positive_agreement(pooled), 3),
            "per_topic": topics,
        }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
