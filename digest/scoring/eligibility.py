"""Which papers a filter accepts at all: the filter tree's hard rules, before any ranking.

Words, phrases, categories, NOT, AND, OR and field scopes decide eligibility; ranking
only orders what is eligible and never admits a paper. Bare words must all
occur, except in topics of two or more (implicit AND only), where a paper
needs `relax_share` of the topic's idf weight, so rare words count more.
That weight is also what a perfect paper attains, the scale ranking
normalises relevance by. Both are computed here because each
needs the other: relaxation weighs a group by what it attains, and an OR
attains only what its alternatives that some paper has attain.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from digest.config import ScoringSettings
from digest.filters import And, Category, Node, Not, Or, Phrase, Word, categories_only
from digest.scoring.leaves import Leaves

_BARE = (Word, Phrase, Not)  # a tuple: `Word | Phrase | Not` builds a union at every call


class Eligibility:
    """The eligible papers of each filter node asked of one index (memoised per node)."""

    def __init__(self, leaves: Leaves, everyone: frozenset[int], settings: ScoringSettings):
        self.leaves = leaves
        self.settings = settings
        self._all = everyone
        self._docs: dict[Node, AbstractSet[int]] = {}

    def eligible(self, node: Node) -> AbstractSet[int]:
        cached = self._docs.get(node)
        if cached is not None:
            return cached
        result: AbstractSet[int]
        if isinstance(node, Word | Phrase):
            unit = self.leaves.unit(node, None)
            result = self._all if unit.ignorable else unit.docs
        elif isinstance(node, Category):
            papers = self.leaves.corpus.papers
            result = frozenset(d for d in self._all if node.matches(papers[d].categories))
        elif isinstance(node, Not):
            result = self._all - self.eligible(node.operand)
        elif isinstance(node, Or):
            result = frozenset().union(*(self.eligible(op) for op in node.operands))
        else:
            result = self._eligible_and(node)
        self._docs[node] = result
        return result

    def _eligible_and(self, node: And) -> AbstractSet[int]:
        positives: list[tuple[AbstractSet[int], float]] = []
        result: AbstractSet[int] = self._all
        for operand, unit in self.leaves.operands(node):
            if isinstance(operand, Not):
                result = result - self.eligible(operand.operand)
                continue
            if categories_only(operand):  # `cat:cs.CL`, `(cat:cs.CL OR cat:cs.IR)`: a hard
                result = result & self.eligible(operand)  # rule that adds no weight
                continue
            if unit is not None and unit.ignorable:
                continue
            if unit is not None:
                positives.append((unit.docs, unit.idf))
            else:
                positives.append((self.eligible(operand), self.attainable(operand)))
            if (isinstance(operand, Word) and operand.required) or (
                isinstance(operand, Phrase) and operand.quoted
            ):  # `+word` and "a quoted phrase" are required even where the rest is loose
                result = result & positives[-1][0]
        if not positives:
            return frozenset(result) if len(result) < len(self._all) else self._all
        if not self._relaxed(node, len(positives)):
            for docs, _ in positives:
                result = result & docs
            return frozenset(result)
        # relaxed: a paper needs relax_share of the topic's idf weight (rare words count more)
        need = self.settings.relax_share * sum(weight for _, weight in positives) - 1e-9
        # 0.0 + weight is weight: the first operand's papers go in as they are, in C
        have: dict[int, float] = dict.fromkeys(positives[0][0], positives[0][1])
        get = have.get
        for docs, weight in positives[1:]:
            for doc in docs:
                have[doc] = get(doc, 0.0) + weight
        enough = frozenset([doc for doc, weight in have.items() if weight >= need])
        return enough if result is self._all else enough & result

    def _relaxed(self, node: And, positives: int) -> bool:
        """Whether an AND of bare words may match papers that lack some of them."""
        if node.explicit or positives < 2 or self.settings.relax_share >= 1:
            return False
        # a group of categories narrows a long topic's papers without making its words
        # strict: it is a hard rule of its own, whatever the words do
        return all(isinstance(op, _BARE) or categories_only(op) for op in node.operands)

    def attainable(self, node: Node) -> float:
        """The idf weight a perfectly matching paper carries (normalises relevance to 0-1)."""
        if isinstance(node, Not | Category):
            return 0.0
        if isinstance(node, Word | Phrase):
            unit = self.leaves.unit(node, None)
            return 0.0 if unit.ignorable else unit.idf
        if isinstance(node, Or):
            # an alternative no paper has does not lower the others' relevance
            present = [op for op in node.operands if self.eligible(op)]
            return max((self.attainable(op) for op in present), default=0.0)
        total = 0.0
        for op, op_unit in self.leaves.operands(node):
            if op_unit is not None:
                total += 0.0 if op_unit.ignorable else op_unit.idf
            else:
                total += self.attainable(op)
        return total
