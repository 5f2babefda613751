"""Ranking of a filter's eligible papers: BM25F, proximity, feedback, cut-offs, popularity.

A paper's relevance is the BM25F gain of the filter's leaves it carries
(title weighted higher), normalised to 0-1 by what a perfect paper attains,
so one cut-off means the same for every filter; plus a proximity bonus when
the topic's neighbouring words occur close together, plus the feedback bonus
(`feedback.py`). Papers below an absolute and a relative cut-off are dropped:
fewer papers rather than noise. Upvotes add a small tie-breaker afterwards
and never make a paper eligible.

A filter of categories alone (`cat:cs.CL`) has no words to rank by: every
paper in it is a perfect match (relevance 1), so popularity orders them and
`max_papers` bounds how many are sent, as arXiv's own category alerts send
the whole listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from digest.config import ScoringSettings
from digest.filters import And, Category, Node, Not, Or, Phrase, Word, categories_only
from digest.scoring.analysis import term_of
from digest.scoring.corpus import Corpus
from digest.scoring.eligibility import Eligibility
from digest.scoring.feedback import Feedback
from digest.scoring.leaves import Leaves, Unit, position_masks

PROXIMITY_WINDOW = 3  # words apart that still count as "close together"

# doc → (relevance, title part, abstract part, author part, proximity share, feedback)
Scored = tuple[float, float, float, float, float, float]


@dataclass(slots=True)
class Plan:
    """A filter node compiled against the index: who is eligible and what scores them."""

    eligible: AbstractSet[int]
    units: list[Unit]
    attainable: float
    pairs: list[tuple[Unit, Unit] | Unit]
    close: dict[int, int] | None = None  # paper → pairs found close together (on need)


class Ranking:
    """Scores, memoised per filter node, of one index's papers under one set of settings."""

    def __init__(
        self,
        corpus: Corpus,
        leaves: Leaves,
        eligibility: Eligibility,
        feedback: Feedback,
        settings: ScoringSettings,
    ) -> None:
        self.leaves = leaves
        self.eligibility = eligibility
        self.feedback = feedback
        self.settings = settings
        weight = settings.popularity_weight
        # (weighted, rounded) per paper: the same for every filter that selects it
        self._popularity_parts = [
            (popularity * weight, round(popularity * weight, 4)) for popularity in corpus.popularity
        ]
        self._plans: dict[Node, Plan] = {}
        self._scored: dict[Node, dict[int, Scored]] = {}
        # (id of leaf, id of next leaf) → papers where they occur close together; the
        # units live as long as the leaves' memo, so their ids stay theirs
        self._pair_docs: dict[tuple[int, int], tuple[int, ...]] = {}

    def plan(self, node: Node) -> Plan:
        plan = self._plans.get(node)
        if plan is None:
            plan = Plan(
                self.eligibility.eligible(node),
                self._positive_units(node),
                self.eligibility.attainable(node),
                self._pairs(node),
            )
            self._plans[node] = plan
        return plan

    def score(self, node: Node) -> dict[int, Scored]:
        """doc → (relevance, its parts) for every eligible paper (before popularity)."""
        cached = self._scored.get(node)
        if cached is not None:
            return cached
        plan = self.plan(node)
        s = self.settings
        out: dict[int, Scored] = {}
        self._scored[node] = out
        if not plan.units and categories_only(node):
            for doc in plan.eligible:
                out[doc] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            return out
        if not plan.units or plan.attainable <= 0:
            return out  # nothing to rank by (only stop words / only NOT): select nothing
        gains = [unit.gain for unit in plan.units]
        inverse = 1.0 / plan.attainable
        weight = s.proximity_weight
        base: list[tuple[int, float, float, float, float]] = []
        for doc in plan.eligible:
            base.append((doc, *word_parts(gains, inverse, doc)))
        # the proximity bonus is only worth computing for papers it could lift over the
        # cut-off (at least the floor and a share of the best score before bonuses);
        # papers only the feedback bonus could bring within reach wait for it
        best = max((entry[1] for entry in base), default=0.0)
        hopeless = max(s.min_relevance, s.relative_cutoff * best) - weight
        late: list[int] = []
        pairs = len(plan.pairs)
        close = self._close(plan) if pairs else {}
        for doc, relevance, title, abstract, author in base:
            proximity = 0.0
            if pairs:
                if relevance >= hopeless:
                    proximity = close.get(doc, 0) / pairs
                elif relevance >= hopeless - s.feedback_weight:
                    late.append(doc)
            out[doc] = (relevance + weight * proximity, title, abstract, author, proximity, 0.0)
        for doc, bonus in self.feedback.bonuses(out).items():
            relevance, title, abstract, author, proximity, _ = out[doc]
            out[doc] = (relevance + bonus, title, abstract, author, proximity, bonus)
        for doc in late:
            relevance, title, abstract, author, _, bonus = out[doc]
            if relevance >= hopeless:
                proximity = close.get(doc, 0) / pairs
                out[doc] = (
                    relevance + weight * proximity,
                    title,
                    abstract,
                    author,
                    proximity,
                    bonus,
                )
        return out

    def finish(self, doc: int, entry: Scored) -> tuple[float, dict[str, float]]:
        """(score, score parts) of a scored paper: relevance plus the popularity tie-breaker."""
        relevance, title, abstract, author, proximity, feedback = entry
        parts: dict[str, float] = {}
        if title:
            parts["title"] = round(title, 4)
        if abstract:
            parts["abstract"] = round(abstract, 4)
        if author:
            parts["author"] = round(author, 4)
        if proximity:
            parts["proximity"] = round(self.settings.proximity_weight * proximity, 4)
        if feedback:
            parts["feedback"] = round(feedback, 4)
        popularity, rounded = self._popularity_parts[doc]
        if popularity:
            parts["popularity"] = rounded
        return round(relevance + popularity, 4), parts

    # --- what a filter scores by ---

    def _positive_units(self, node: Node) -> list[Unit]:
        """Leaves that add to a paper's score (not under NOT), in query order, unique."""
        out: dict[int, Unit] = {}
        leaves = self.leaves

        def walk(n: Node, unit: Unit | None = None) -> None:
            if isinstance(n, Not | Category):
                return
            if isinstance(n, Word | Phrase):
                u = unit or leaves.unit(n, None)
                if not u.ignorable:
                    out.setdefault(id(u), u)
            elif isinstance(n, Or):
                for op in n.operands:
                    walk(op)
            else:
                for op, op_unit in leaves.operands(n):
                    walk(op, op_unit)

        walk(node)
        return list(out.values())

    def _pairs(self, node: Node) -> list[tuple[Unit, Unit] | Unit]:
        """Neighbouring words of each AND (and a multi-word phrase on its own), for the
        proximity bonus.

        A phrase that is one operand of an AND ("test-time adaptation") adds no pair of
        its own: its words are together wherever it matches at all, so counting that
        again would reward papers that have the phrase but lack the rest of the topic.
        """
        out: list[tuple[Unit, Unit] | Unit] = []
        if isinstance(node, Phrase):
            unit = self.leaves.unit(node, None)
            if sum(1 for w in node.words if term_of(w)) >= 2 and not unit.ignorable:
                out.append(unit)
        elif isinstance(node, Or):
            for op in node.operands:
                out.extend(self._pairs(op))
        elif isinstance(node, And):
            previous: Unit | None = None
            for op, op_unit in self.leaves.operands(node):
                if op_unit is None:
                    out.extend(self._pairs(op))
                    previous = None
                    continue
                if op_unit.ignorable:
                    continue
                if previous is not None and previous is not op_unit:
                    out.append((previous, op_unit))
                previous = op_unit
        return out

    # --- proximity ---

    def _close(self, plan: Plan) -> dict[int, int]:
        """Per paper, how many of the filter's neighbouring words (pairs, multi-word
        phrases) occur close together in one field: the proximity share's numerator.

        Counted pair by pair over the papers where the pair is close (cached per pair
        of leaves: "diffusion models" recurs in hundreds of filters) rather than paper
        by paper over every pair, which would pay a lookup per eligible paper per pair.
        """
        counts = plan.close
        if counts is None:
            counts = plan.close = {}
            get = counts.get
            for pair in plan.pairs:
                for doc in self._close_docs(pair):
                    counts[doc] = get(doc, 0) + 1
        return counts

    def _close_docs(self, pair: tuple[Unit, Unit] | Unit) -> Iterable[int]:
        """Papers where a pair of leaves occurs within PROXIMITY_WINDOW words in one field
        (a multi-word phrase: wherever it occurs)."""
        if isinstance(pair, Unit):
            return pair.occurrences.keys()
        first, second = pair
        key = (id(first), id(second))
        cached = self._pair_docs.get(key)
        if cached is None:
            close = []
            for doc in first.occurrences.keys() & second.occurrences.keys():
                there = _positions(second, doc)
                for name, around in _near(first, doc).items():
                    if around & there.get(name, 0):
                        close.append(doc)
                        break
            cached = self._pair_docs[key] = tuple(close)
        return cached


def word_parts(
    gains: Sequence[Mapping[int, tuple[float, float, float]]], inverse: float, doc: int
) -> tuple[float, float, float, float]:
    """(relevance, title part, abstract part, author part) of one paper: the BM25F gains
    of the filter's leaves (`gains`, one mapping per leaf) it carries, times `inverse`
    (1 / what a perfect paper attains), relevance capped at 1."""
    title = abstract = author = 0.0
    for gain in gains:
        g = gain.get(doc)
        if g is not None:
            title += g[0]
            abstract += g[1]
            author += g[2]
    title, abstract, author = title * inverse, abstract * inverse, author * inverse
    return min(1.0, title + abstract + author), title, abstract, author


def _positions(unit: Unit, doc: int) -> dict[str, int]:
    """A leaf's word positions in one paper, per field, as bit masks."""
    cached = unit.positions.get(doc)
    if cached is None:
        cached = unit.positions[doc] = position_masks(unit.occurrences.get(doc, ()))
    return cached


def _near(unit: Unit, doc: int) -> dict[str, int]:
    """Per field, the positions within PROXIMITY_WINDOW of the leaf's, as bit masks
    (cached: a leaf recurs in many pairs of neighbouring words)."""
    cached = unit.near.get(doc)
    if cached is None:
        cached = unit.near[doc] = {}
        for name, mask in _positions(unit, doc).items():
            spread = mask
            for distance in range(1, PROXIMITY_WINDOW + 1):
                spread |= mask << distance | mask >> distance
            cached[name] = spread
    return cached
