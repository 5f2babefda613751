"""Near misses: the papers that came closest to matching, for "why is my digest empty?".

Only a preview asks for them: explaining a paper runs the scorer's whole
explanation for it against each topic, which a recording pass over every
subscriber has no use for.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from digest.scoring import PaperIndex
from digest.values import TopicQuery

__all__ = ["NEAR_MISSES", "NearMiss", "near_misses"]

NEAR_MISSES = 3
"""How many near misses a preview shows."""


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A paper that came closest to matching, for "why is my digest empty?"."""

    paper_id: int
    title: str
    score: float
    topic_label: str
    reason: str  # the scorer's words: "missing diffusion", "below the cut-off ..."


def near_misses(
    index: PaperIndex,
    topics: Sequence[TopicQuery],
    allowed: AbstractSet[int],
    titles: dict[int, str],
) -> list[NearMiss]:
    """The papers that came closest to some topic: highest score, then fewest missing terms."""
    best: dict[int, tuple[tuple[float, int], NearMiss]] = {}
    for topic in topics:
        for paper_id in allowed:
            why = index.explain(paper_id, topic.query, topic.meaning, topic.votes)
            key = (-why.score, len(why.missing))
            if paper_id not in best or key < best[paper_id][0]:
                miss = NearMiss(
                    paper_id, titles.get(paper_id, ""), why.score, topic.label, why.reason
                )
                best[paper_id] = (key, miss)
    ranked = sorted(best.values(), key=lambda entry: (entry[0], entry[1].paper_id))
    return [miss for _, miss in ranked[:NEAR_MISSES]]
