"""What matched and why: a hit's highlight spans, and `digest match --explain`'s verdicts.

Every hit carries the spans its filter's leaves matched (for highlighting in
the digest), so merging them runs once per hit of every filter and is kept
in C. An explanation says of one paper and one filter whether it is
eligible, where it ranks, which query terms it lacks and which NOT terms
excluded it: it is built from the same memoised scores `search` uses, so it
can never disagree with what the planner selected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from digest.filters import Category, Node, Not, Or, Phrase, Word
from digest.scoring.corpus import END, FIELD, FIELD_ORDER, START, VIA
from digest.scoring.leaves import Leaves, Unit
from digest.scoring.ranking import Ranking, Scored
from digest.values import Hit, MatchedTerm

MAX_MATCHED_PER_HIT = 64
_SPAN_BITS = 32  # offsets within a field stay below 2**32: a span key packs three numbers


@dataclass(frozen=True)
class Explanation:
    """Why one paper did or did not match one filter (for `digest match --explain`)."""

    paper_id: int
    eligible: bool  # the filter's words/phrases/operators accept the paper
    selected: bool  # eligible and above the cut-off: it would be sent
    score: float
    relevance: float
    cutoff: float  # the relevance a paper needed for this filter
    rank: int | None  # 1-based rank among selected papers
    matched: tuple[MatchedTerm, ...]
    parts: dict[str, float]
    missing: tuple[str, ...]  # query terms the paper lacks
    excluded_by: tuple[str, ...]  # NOT terms the paper contains
    reason: str


def explain(
    paper_id: int,
    doc: int,
    query: Node,
    hits: list[Hit],
    ranking: Ranking,
    scored: Mapping[int, Scored],
    cutoff: float,
    shares: Mapping[int, float],
) -> Explanation:
    """Why paper `paper_id` (number `doc` in the corpus) did or did not match `query`,
    whose selected papers are `hits`, scored (`scored`, `cutoff`, meaning `shares`) as
    the search that selected them was."""
    rank = next((i for i, h in enumerate(hits, 1) if h.paper_id == paper_id), None)
    missing, excluded = trace(ranking.leaves, query, doc)
    matched = matched_terms(ranking.plan(query).units, doc)
    if doc not in scored:
        if excluded:
            reason = "excluded by " + ", ".join(excluded)
        elif missing:
            reason = "missing " + ", ".join(missing)
        else:
            reason = "the filter has no word that can match (only stop words or NOT)"
        return Explanation(
            paper_id, False, False, 0.0, 0.0, cutoff, None, matched, {}, missing, excluded,
            reason,
        )  # fmt: skip
    relevance = scored[doc][0]
    score, parts = ranking.finish(doc, scored[doc])
    if doc in shares:
        parts["meaning"] = round(shares[doc], 4)
    if rank is not None:
        reason = f"rank {rank} of {len(hits)}"
    else:
        lacking = f" (lacks {', '.join(missing)})" if missing else ""
        reason = (
            f"matches{lacking}, but relevance {relevance:.3f} is below the cut-off {cutoff:.3f}"
        )
    return Explanation(
        paper_id, True, rank is not None, score, relevance, cutoff, rank, matched, parts,
        missing, excluded, reason,
    )  # fmt: skip


def matched_terms(units: list[Unit], doc: int) -> tuple[MatchedTerm, ...]:
    """One term per span (the first leaf's that has it), in text order.

    Runs for every hit of every filter, so the merge happens in C: each leaf's
    spans are a cached map keyed in text order, later leaves' maps are applied
    first so the earliest leaf's term overwrites theirs, and the keys are sorted.
    """
    if len(units) == 1:
        return _unit_matched(units[0], doc)
    seen: dict[int, MatchedTerm] = {}
    for unit in reversed(units):
        spans = unit.spans.get(doc)
        if spans is None:
            _unit_matched(unit, doc)
            spans = unit.spans[doc]
        seen.update(spans)
    return tuple(map(seen.__getitem__, sorted(seen)[:MAX_MATCHED_PER_HIT]))


def _unit_matched(unit: Unit, doc: int) -> tuple[MatchedTerm, ...]:
    """A leaf's highlight spans in one paper (cached, with `unit.spans` for merging)."""
    cached = unit.matched.get(doc)
    if cached is None:
        spans: dict[tuple[str, int, int], MatchedTerm] = {}
        for occ in unit.occurrences.get(doc, ()):
            key = (occ[FIELD], occ[START], occ[END])
            if key not in spans:
                spans[key] = MatchedTerm(unit.label, *key, occ[VIA])
        cached = unit.matched[doc] = tuple(spans.values())[:MAX_MATCHED_PER_HIT]
        order = FIELD_ORDER
        unit.spans[doc] = {
            (order[t.field] << _SPAN_BITS | t.start) << _SPAN_BITS | t.end: t for t in cached
        }
    return cached


def trace(leaves: Leaves, node: Node, doc: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(query terms the paper lacks, NOT terms it contains)."""
    missing: list[str] = []
    excluded: list[str] = []

    # A loop, not a recursive inner function: that would be a reference cycle per
    # call, and a dry run's near misses call this for every candidate of every empty
    # digest while the planner pauses the cyclic collector (see digest.gcpause).
    stack: list[tuple[Node, bool, Unit | None]] = [(node, False, None)]
    while stack:  # depth first, left to right: the terms in query order
        n, negated, unit = stack.pop()
        if isinstance(n, Word | Phrase):
            u = unit or leaves.unit(n, None)
            if u.ignorable:
                continue
            present = doc in u.occurrences
            if negated and present:
                excluded.append(u.label)
            elif not negated and not present:
                missing.append(u.label)
        elif isinstance(n, Category):
            inside = n.matches(leaves.corpus.papers[doc].categories)
            if negated and inside:
                excluded.append(f"cat:{n.name}")
            elif not negated and not inside:
                missing.append(f"cat:{n.name}")
        elif isinstance(n, Not):
            stack.append((n.operand, not negated, None))
        elif isinstance(n, Or):
            stack.extend((op, negated, None) for op in reversed(n.operands))
        else:
            stack.extend((op, negated, op_unit) for op, op_unit in reversed(leaves.operands(n)))
    return tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(excluded))
