"""Scoring: which candidate papers match a topic filter, how well, and why.

A planning run builds one `PaperIndex` over its candidate papers (a day's few
hundred) and asks it about every distinct topic filter; results are memoised
per filter node, so 100,000 subscribers sharing a few thousand filters cost a
few thousand evaluations. Evaluation has two steps:

1. *Eligibility* is decided by the filter tree (`digest.query`): words,
   phrases, NOT, AND, OR, field scopes. Bare words must all occur, except in
   long topics (`relax_from_words` words or more) where a share
   (`relax_share`) suffices. Acronyms match their expansions both ways.
2. *Ranking* of eligible papers: BM25F over title/abstract (title weighted
   higher; in an abstract, a word found only as another word of its stem
   counts less), normalised to a 0-1 "relevance" (how much of the topic's idf
   weight the paper carries, and how prominently), plus a proximity bonus
   when the topic's words occur close together. Papers below an absolute and
   a relative cut-off are dropped: fewer papers rather than noise. Upvotes
   add a small tie-breaker afterwards and never make a paper eligible.

Pure: plain values in (`PaperText`, query nodes, `ScoringSettings`), plain
values out (`Hit`, `Explanation`, `Pick`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, Final

from digest.config.settings import ScoringSettings
from digest.filters import And, Node, Not, Or, Phrase, Word
from digest.scoring.acronyms import Acronyms, acronym_key
from digest.scoring.analysis import (
    SHAPES,
    compound_matches,
    compound_words,
    has_cjk,
    scan,
    shape_of,
    term_of,
)
from digest.scoring.boilerplate import blank_availability_notes
from digest.values import Hit, MatchedTerm, PaperText, Pick, TextField, TopicQuery

__all__ = ["Explanation", "Hit", "PaperIndex", "select_papers"]

FIELDS: tuple[TextField, ...] = ("title", "abstract", "author")
FIELD_ORDER = {name: i for i, name in enumerate(FIELDS)}
UNSCOPED: tuple[TextField, ...] = ("title", "abstract")  # author names need `author:`
K1 = 1.2
B = 0.75
PROXIMITY_WINDOW = 3  # words apart that still count as "close together"
MAX_MATCHED_PER_HIT = 64
# a word matched only as another word of its stem counts this much (see _mark_variants)
VARIANT_WEIGHT = 0.3
_SPAN_BITS = 32  # offsets within a field stay below 2**32: a span key packs three numbers
# Pseudo-relevance feedback (see PaperIndex._feedback): the usual RM3 sizes.
FEEDBACK_DOCS = 5  # best papers that model the topic
FEEDBACK_TERMS = 10  # their most distinctive terms
FEEDBACK_MAX_DF = 0.3  # terms in more of the papers than this say nothing about a topic
FEEDBACK_PER_DOC = 40  # a paper's heaviest terms kept for topic models


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


# One occurrence of a leaf in a paper: (field, word position, start, end, acronym via).
# A plain tuple, not a NamedTuple: an index holds one per word of every paper, and
# building those must cost next to nothing (read with the _FIELD.._VIA indices).
_Occ = tuple[TextField, int, int, int, str | None]
_FIELD: Final = 0
_POSITION: Final = 1
_START: Final = 2
_END: Final = 3
_VIA: Final = 4


@dataclass(slots=True)
class _Unit:
    """A leaf of the filter (a word or phrase, with its acronym alternatives) evaluated.

    Everything a filter needs from a leaf is computed once here, because the same
    leaf ("models") recurs in thousands of filters: per paper its BM25F gain split
    by field, its positions (for proximity) and its highlight spans.
    """

    label: str
    occurrences: dict[int, tuple[_Occ, ...]]
    idf: float = 0.0
    ignorable: bool = False  # only stop words: imposes nothing
    gain: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    positions: dict[int, dict[str, int]] = field(default_factory=dict)  # bit masks
    matched: dict[int, tuple[MatchedTerm, ...]] = field(default_factory=dict)
    # per paper, matched span → term, keyed by one int that sorts as (field order,
    # start, end) would: what merging leaves needs (ints hash and compare faster than
    # tuples; a ready dict merges into another in C)
    spans: dict[int, dict[int, MatchedTerm]] = field(default_factory=dict)
    near: dict[int, dict[str, int]] = field(default_factory=dict)  # bit masks
    # positions matched only through another word of the same stem ("adaptively" for
    # "adaptation"), per paper and field, as bit masks: weaker evidence (see _weigh)
    variants: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def docs(self) -> AbstractSet[int]:
        return self.occurrences.keys()


@dataclass(slots=True)
class _Plan:
    """A filter node compiled against the index: who is eligible and what scores them."""

    eligible: AbstractSet[int]
    units: list[_Unit]
    attainable: float
    pairs: list[tuple[_Unit, _Unit] | _Unit]
    close: dict[int, int] | None = None  # paper → pairs found close together (on need)


@dataclass(slots=True)
class _FieldIndex:
    # term → paper → occurrences; tuples of plain values, which the garbage collector
    # stops tracking (an index holds tens of thousands)
    postings: dict[str, dict[int, tuple[_Occ, ...]]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    average: float = 1.0


# doc → (relevance, title part, abstract part, author part, proximity share, feedback)
_Scored = tuple[float, float, float, float, float, float]

# A unit is memoised per (leaf node, acronym it stands in for, if any).
_UnitKey = tuple[Word | Phrase, tuple[str, str] | None]


class PaperIndex:
    """An inverted index over one run's candidate papers; answers filters, memoised."""

    def __init__(self, papers: Sequence[PaperText], settings: ScoringSettings) -> None:
        self.settings = settings
        # "Our code is available at github…" says nothing about the topic (see boilerplate)
        self.papers = [
            paper
            if (abstract := blank_availability_notes(paper.abstract)) is paper.abstract
            else replace(paper, abstract=abstract)
            for paper in papers
        ]
        self._doc_of = {paper.paper_id: doc for doc, paper in enumerate(self.papers)}
        self._all = frozenset(range(len(self.papers)))
        self._fields: dict[TextField, _FieldIndex] = {name: _FieldIndex() for name in FIELDS}
        self._vocabulary: tuple[dict[str, set[str]], frozenset[str]] | None = None
        for name in FIELDS:
            index = self._fields[name]
            for doc, paper in enumerate(self.papers):
                index.lengths.append(
                    _add_postings(index.postings, doc, self.field_text(paper, name), name)
                )
            index.average = max(1.0, sum(index.lengths) / max(1, len(index.lengths)))
        self.acronyms = Acronyms.learn(p.abstract for p in self.papers)
        self._builtin = Acronyms.learn((), builtin=True)
        # expansion terms → acronym, for the reverse direction ("large language model" → LLM)
        self._acronym_of: dict[tuple[str, ...], str] = {}
        for key, expansions in self.acronyms.items():
            for expansion in expansions:
                terms = tuple(t for t in (term_of(w) for w in expansion) if t)
                if len(terms) >= 2 or (len(terms) == 1 and terms[0] != term_of(key)):
                    self._acronym_of.setdefault(terms, key)
        # upvotes on a log scale, 0-1 relative to the day's most upvoted paper
        most = math.log1p(max((p.upvotes or 0 for p in self.papers), default=0))
        self._popularity = [
            math.log1p(p.upvotes) / most if p.upvotes and most > 0 else 0.0 for p in self.papers
        ]
        self._feedback_docs: dict[int, list[tuple[str, float]]] = {}
        self._counts: list[dict[str, float]] | None = None
        self._feedback_terms_tf: dict[str, dict[int, float]] = {}
        self._feedback_idf: dict[str, float] = {}
        self._units: dict[_UnitKey, _Unit] = {}
        # (id of leaf, id of next leaf) → papers where they occur close together; the
        # units live as long as the index, so their ids stay theirs
        self._pair_docs: dict[tuple[int, int], tuple[int, ...]] = {}
        self._forget_queries()

    def _forget_queries(self) -> None:
        """(Re)start the memos that depend on query-time settings (cut-offs, relaxation,
        proximity, feedback and popularity weights).

        What depends only on the papers and the field weights (postings, leaves and
        their gains, feedback vocabulary) is kept: bench/tune_scoring.py swaps the
        settings of a copy of an index and calls this, to analyse the text once.
        """
        weight = self.settings.popularity_weight
        # (weighted, rounded) per paper: the same for every filter that selects it
        self._popularity_parts = [
            (popularity * weight, round(popularity * weight, 4)) for popularity in self._popularity
        ]
        self._docs: dict[Node, AbstractSet[int]] = {}
        self._ops: dict[And, list[tuple[Node, _Unit | None]]] = {}
        self._plans: dict[Node, _Plan] = {}
        self._hits: dict[Node, list[Hit]] = {}
        self._scored: dict[Node, dict[int, _Scored]] = {}
        self._by_id: dict[int, tuple[Node, list[Hit]]] = {}
        # selections (see _selection) by hit lists' and by queries' identities
        self._selections: dict[object, _Selection] = {}
        self._selections_by_query: dict[object, _Selection] = {}
        self._heads: dict[tuple[int, int, int], tuple[_Entry, ...]] = {}

    # --- public API ---

    @staticmethod
    def field_text(paper: PaperText, name: TextField) -> str:
        """The text MatchedTerm offsets refer to (authors joined with ", ")."""
        if name == "title":
            return paper.title
        if name == "abstract":
            return paper.abstract
        return ", ".join(paper.authors)

    def search(self, query: Node) -> list[Hit]:
        """Eligible papers above the cut-off, best first (memoised per node)."""
        # Subscribers sharing a topic usually share the parsed node object: look it up
        # by identity first (hashing a tree walks it). The entry keeps the node alive,
        # so its id cannot be reused by another node during this index's life.
        entry = self._by_id.get(id(query))
        if entry is not None and entry[0] is query:
            return entry[1]
        cached = self._hits.get(query)
        if cached is not None:
            self._by_id[id(query)] = (query, cached)
            return cached
        scored = self._score(query)
        cutoff = self._cutoff(scored)
        units = self._plan(query).units  # looked up once: hashing a tree walks it
        hits = []
        for doc, scores in scored.items():
            if scores[0] >= cutoff:
                score, parts = self._finish(doc, scores)
                matched = self._units_matched(units, doc)
                hits.append(Hit(self.papers[doc].paper_id, score, matched, parts))
        hits.sort(key=lambda h: (-h.score, h.paper_id))
        self._hits[query] = hits
        self._by_id[id(query)] = (query, hits)
        return hits

    def explain(self, paper_id: int, query: Node) -> Explanation:
        """Why `paper_id` did or did not match `query`."""
        doc = self._doc_of.get(paper_id)
        if doc is None:
            raise KeyError(paper_id)
        scored = self._score(query)
        cutoff = self._cutoff(scored)
        hits = self.search(query)
        rank = next((i for i, h in enumerate(hits, 1) if h.paper_id == paper_id), None)
        missing, excluded = self._trace(query, doc)
        matched = self._matched(query, doc)
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
        score, parts = self._finish(doc, scored[doc])
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

    # --- eligibility ---

    def _eligible(self, node: Node) -> AbstractSet[int]:
        cached = self._docs.get(node)
        if cached is not None:
            return cached
        result: AbstractSet[int]
        if isinstance(node, Word | Phrase):
            unit = self._unit(node, None)
            result = self._all if unit.ignorable else unit.docs
        elif isinstance(node, Not):
            result = self._all - self._eligible(node.operand)
        elif isinstance(node, Or):
            result = frozenset().union(*(self._eligible(op) for op in node.operands))
        else:
            result = self._eligible_and(node)
        self._docs[node] = result
        return result

    def _eligible_and(self, node: And) -> AbstractSet[int]:
        positives: list[tuple[AbstractSet[int], float]] = []
        result: AbstractSet[int] = self._all
        for operand, unit in self._operands(node):
            if isinstance(operand, Not):
                result = result - self._eligible(operand.operand)
                continue
            if unit is not None and unit.ignorable:
                continue
            if unit is not None:
                positives.append((unit.docs, unit.idf))
            else:
                positives.append((self._eligible(operand), self._attainable(operand)))
            if isinstance(operand, Word) and operand.required:
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
        relax = self.settings.relax_from_words
        if node.explicit or relax == 0 or positives < relax or self.settings.relax_share >= 1:
            return False
        return all(isinstance(op, _BARE) for op in node.operands)

    def _operands(self, node: And) -> list[tuple[Node, _Unit | None]]:
        """An AND's operands, with word runs that spell an acronym's expansion marked.

        "large language model quantization" → the first three words also match
        where a paper writes "LLM".
        """
        cached = self._ops.get(node)
        if cached is None:
            cached = self._ops[node] = self._compile_operands(node)
        return cached

    def _compile_operands(self, node: And) -> list[tuple[Node, _Unit | None]]:
        ops = list(node.operands)
        stands_for: list[tuple[str, str] | None] = [None] * len(ops)
        terms = [
            term_of(op.text) if isinstance(op, Word) and not op.prefix and op.field is None else ""
            for op in ops
        ]
        i = 0
        while i < len(ops):
            for j in range(len(ops), i + 1, -1):  # longest run first
                run = tuple(terms[i:j])
                if all(run) and run in self._acronym_of:
                    acronym = self._acronym_of[run]
                    words = " ".join(op.text for op in ops[i:j] if isinstance(op, Word))
                    for k in range(i, j):
                        stands_for[k] = (acronym, f"{acronym.upper()} → {words}")
                    i = j - 1
                    break
            i += 1
        out: list[tuple[Node, _Unit | None]] = []
        for op, stand_in in zip(ops, stands_for, strict=True):
            unit = self._unit(op, stand_in) if isinstance(op, Word | Phrase) else None
            out.append((op, unit))
        return out

    # --- leaves ---

    def _unit(self, node: Word | Phrase, acronym: tuple[str, str] | None) -> _Unit:
        key = (node, acronym)
        cached = self._units.get(key)
        if cached is not None:
            return cached
        fields = (node.field,) if node.field else UNSCOPED
        occurrences: dict[int, list[_Occ]] = {}
        if isinstance(node, Word):
            label = node.text + ("*" if node.prefix else "")
            term = term_of(node.text)
            ignorable = not term and not node.prefix
            if node.prefix:
                self._add_prefix(occurrences, node.text.casefold(), fields)
            elif has_cjk(node.text):
                self._add_phrase(occurrences, _cjk_words(node.text), fields, None)
            elif term:
                self._add_term(occurrences, term, fields, None)
                for expansion, via in self._expansions(node.text):
                    self._add_phrase(occurrences, expansion, fields, via)
            if acronym is None and term and (term,) in self._acronym_of:
                short = self._acronym_of[(term,)]  # "mathematical" also finds "math"
                acronym = (short, f"{short.upper()} → {node.text}")
            if acronym is not None:
                self._add_term(occurrences, acronym[0], fields, acronym[1])
        else:
            label = '"' + " ".join(node.words) + '"'
            terms = [term_of(w) for w in node.words]
            ignorable = not any(terms)
            words = [part for w in node.words for part in _cjk_words(w)]
            self._add_phrase(occurrences, words, fields, None)
            joined = term_of("".join(node.words))  # "multi armed" also finds "multiarmed"
            if len(node.words) > 1 and joined and not has_cjk(joined):
                self._add_term(occurrences, joined, fields, None)
            if len(node.words) == 1:
                for expansion, via in self._expansions(node.words[0]):
                    self._add_phrase(occurrences, expansion, fields, via)
            key_terms = tuple(t for t in terms if t)
            if key_terms in self._acronym_of:
                found = self._acronym_of[key_terms]
                self._add_term(occurrences, found, fields, f"{found.upper()} → {label}")
        # in text order, as tuples (of plain values: the garbage collector skips them)
        ordered: dict[int, tuple[_Occ, ...]] = {}
        for doc, occs in occurrences.items():
            if len(occs) > 1:
                occs.sort(key=lambda o: (FIELD_ORDER[o[_FIELD]], o[_START]))
            ordered[doc] = tuple(occs)
        df = len(ordered)
        n = len(self.papers)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        unit = _Unit(label, ordered, idf, ignorable)
        if isinstance(node, Word) and not node.prefix and term_of(node.text):
            self._mark_variants(unit, node.text)
        self._weigh(unit)
        self._units[key] = unit
        return unit

    def _mark_variants(self, unit: _Unit, typed: str) -> None:
        """Note the positions where a word matched only through its stem, as another word.

        Stemming finds "quantizing" for "quantization", but also "adaptively" for
        "adaptation" and "generative" for "generation": the same stem, often
        another meaning. The word as typed, up to its plural ("adaptations"), is
        the stronger evidence, so in an abstract derived forms count VARIANT_WEIGHT as
        much. The paper still matches (eligibility is unchanged); only its score is lower.
        """
        light = _light(typed)
        papers = self.papers
        for doc, occs in unit.occurrences.items():
            exact: dict[str, int] = {}
            other: dict[str, int] = {}
            for occ in occs:
                name, position = occ[_FIELD], occ[_POSITION]
                if name != "abstract":  # the only field discounted (see _weigh)
                    continue
                text = self.field_text(papers[doc], name)[occ[_START] : occ[_END]]
                if occ[_VIA] is not None or _light(text) == light:
                    exact[name] = exact.get(name, 0) | 1 << position
                else:
                    other[name] = other.get(name, 0) | 1 << position
            only = {name: mask & ~exact.get(name, 0) for name, mask in other.items()}
            only = {name: mask for name, mask in only.items() if mask}
            if only:
                unit.variants[doc] = only

    def _weigh(self, unit: _Unit) -> None:
        """Per paper: the leaf's BM25F gain (idf x saturated weighted tf), split by field."""
        s = self.settings
        weights = (s.title_weight, s.abstract_weight, s.author_weight)
        for doc, occs in unit.occurrences.items():
            at = unit.positions[doc] = _position_masks(occs)
            pseudo = [0.0, 0.0, 0.0]
            for i, name in enumerate(FIELDS):
                positions = at.get(name)
                if positions:
                    index = self._fields[name]
                    norm = 1 - B + B * index.lengths[doc] / index.average
                    count: float = positions.bit_count()
                    variants = unit.variants.get(doc)
                    # (a title is a few words naming the subject: any form of a word
                    # there is the subject; the discount is for the abstract's prose)
                    if variants is not None and name == "abstract" and name in variants:
                        count -= (1 - VARIANT_WEIGHT) * variants[name].bit_count()
                    pseudo[i] = weights[i] * count / norm
            total = sum(pseudo)
            if total > 0:
                scale = unit.idf / (K1 + total)
                unit.gain[doc] = (pseudo[0] * scale, pseudo[1] * scale, pseudo[2] * scale)

    def _words(self) -> tuple[dict[str, set[str]], frozenset[str]]:
        """(casefolded word → its terms, for prefixes; lower-case words of titles/abstracts).

        Built on first need from the distinct compounds of the papers: most runs
        never ask (no prefix query, no acronym typed in lower case).
        """
        if self._vocabulary is None:
            surface: dict[str, set[str]] = {}
            lower: set[str] = set()
            for name in FIELDS:
                compounds: set[str] = set()
                for paper in self.papers:
                    compounds.update(compound_words(self.field_text(paper, name)))
                for compound in compounds:
                    for term, _, start, end in scan(compound):
                        word = compound[start:end]
                        surface.setdefault(word.casefold(), set()).add(term)
                        if name != "author" and word.islower():
                            lower.add(word)
            self._vocabulary = (surface, frozenset(lower))
        return self._vocabulary

    def _expansions(self, word: str) -> list[tuple[list[str], str]]:
        """The expansions an acronym typed in a query stands for."""
        if not term_of(word) or not self.acronyms.expansions_of(word):
            return []  # (the learned list includes the built-in one: nothing either way)
        key = acronym_key(word)
        typed_as_acronym = sum(c.isupper() for c in word) >= 2
        learned_ok = typed_as_acronym or (
            key not in self._words()[1] and word.casefold() not in self._words()[1]
        )
        source = self.acronyms if learned_ok else self._builtin
        return [
            (list(expansion), f"{key.upper()} → {' '.join(expansion)}")
            for expansion in source.expansions_of(word)
            if len(expansion) >= 2 or expansion[0] != key
        ]

    def _add_term(
        self,
        out: dict[int, list[_Occ]],
        term: str,
        fields: Iterable[TextField],
        via: str | None,
    ) -> None:
        for name in fields:
            for doc, tokens in self._fields[name].postings.get(term, {}).items():
                bucket = out.setdefault(doc, [])
                if via is None:
                    bucket.extend(tokens)
                else:
                    bucket.extend((name, t[_POSITION], t[_START], t[_END], via) for t in tokens)

    def _add_prefix(
        self, out: dict[int, list[_Occ]], prefix: str, fields: Iterable[TextField]
    ) -> None:
        terms: set[str] = set()
        for word, word_terms in self._words()[0].items():
            if word.startswith(prefix):
                terms |= word_terms
        fields = tuple(fields)
        for term in sorted(terms):
            self._add_term(out, term, fields, None)

    def _add_phrase(
        self,
        out: dict[int, list[_Occ]],
        words: Sequence[str],
        fields: Iterable[TextField],
        via: str | None,
    ) -> None:
        """Occurrences of words adjacent and in order (stop words hold a place, unchecked)."""
        slots = [(offset, term_of(w)) for offset, w in enumerate(words)]
        slots = [(offset, t) for offset, t in slots if t]
        if not slots:
            return
        if len(slots) == 1:
            self._add_term(out, slots[0][1], fields, via)
            return
        first_offset, _first_term = slots[0]
        for name in fields:
            postings = self._fields[name].postings
            lists = [postings.get(t) for _, t in slots]
            present = lists[0]
            if present is None or any(lst is None for lst in lists):
                continue
            for doc, first_tokens in present.items():
                positions = []
                for (_, _t), lst in zip(slots[1:], lists[1:], strict=True):
                    assert lst is not None
                    tokens = lst.get(doc)
                    if tokens is None:
                        break
                    positions.append({t[_POSITION]: t for t in tokens})
                else:
                    for token in first_tokens:
                        base = token[_POSITION] - first_offset
                        ends = []
                        for (offset, _t), at in zip(slots[1:], positions, strict=True):
                            hit = at.get(base + offset)
                            if hit is None:
                                break
                            ends.append(hit)
                        else:
                            end = ends[-1][_END] if ends else token[_END]
                            out.setdefault(doc, []).append(
                                (name, token[_POSITION], token[_START], end, via)
                            )

    # --- ranking ---

    def _positive_units(self, node: Node) -> list[_Unit]:
        """Leaves that add to a paper's score (not under NOT), in query order, unique."""
        out: dict[int, _Unit] = {}

        def walk(n: Node, unit: _Unit | None = None) -> None:
            if isinstance(n, Not):
                return
            if isinstance(n, Word | Phrase):
                u = unit or self._unit(n, None)
                if not u.ignorable:
                    out.setdefault(id(u), u)
            elif isinstance(n, Or):
                for op in n.operands:
                    walk(op)
            else:
                for op, op_unit in self._operands(n):
                    walk(op, op_unit)

        walk(node)
        return list(out.values())

    def _attainable(self, node: Node) -> float:
        """The idf weight a perfectly matching paper carries (normalises relevance to 0-1)."""
        if isinstance(node, Not):
            return 0.0
        if isinstance(node, Word | Phrase):
            unit = self._unit(node, None)
            return 0.0 if unit.ignorable else unit.idf
        if isinstance(node, Or):
            # an alternative no paper has does not lower the others' relevance
            present = [op for op in node.operands if self._eligible(op)]
            return max((self._attainable(op) for op in present), default=0.0)
        total = 0.0
        for op, op_unit in self._operands(node):
            if op_unit is not None:
                total += 0.0 if op_unit.ignorable else op_unit.idf
            else:
                total += self._attainable(op)
        return total

    def _pairs(self, node: Node) -> list[tuple[_Unit, _Unit] | _Unit]:
        """Neighbouring words of each AND (and a multi-word phrase on its own), for the
        proximity bonus.

        A phrase that is one operand of an AND ("test-time adaptation") adds no pair of
        its own: its words are together wherever it matches at all, so counting that
        again would reward papers that have the phrase but lack the rest of the topic.
        """
        out: list[tuple[_Unit, _Unit] | _Unit] = []
        if isinstance(node, Phrase):
            unit = self._unit(node, None)
            if sum(1 for w in node.words if term_of(w)) >= 2 and not unit.ignorable:
                out.append(unit)
        elif isinstance(node, Or):
            for op in node.operands:
                out.extend(self._pairs(op))
        elif isinstance(node, And):
            previous: _Unit | None = None
            for op, op_unit in self._operands(node):
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

    def _plan(self, node: Node) -> _Plan:
        plan = self._plans.get(node)
        if plan is None:
            plan = _Plan(
                self._eligible(node),
                self._positive_units(node),
                self._attainable(node),
                self._pairs(node),
            )
            self._plans[node] = plan
        return plan

    def _score(self, node: Node) -> dict[int, _Scored]:
        """doc → (relevance, its parts) for every eligible paper (before popularity)."""
        cached = self._scored.get(node)
        if cached is not None:
            return cached
        plan = self._plan(node)
        s = self.settings
        out: dict[int, _Scored] = {}
        self._scored[node] = out
        if not plan.units or plan.attainable <= 0:
            return out  # nothing to rank by (only stop words / only NOT): select nothing
        gains = [unit.gain for unit in plan.units]
        inverse = 1.0 / plan.attainable
        weight = s.proximity_weight
        base: list[tuple[int, float, float, float, float]] = []
        for doc in plan.eligible:
            title = abstract = author = 0.0
            for gain in gains:
                g = gain.get(doc)
                if g is not None:
                    title += g[0]
                    abstract += g[1]
                    author += g[2]
            title, abstract, author = title * inverse, abstract * inverse, author * inverse
            base.append((doc, min(1.0, title + abstract + author), title, abstract, author))
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
        # with few matches the best papers are most of them: nothing to learn from
        if s.feedback_weight > 0 and len(out) > 2 * FEEDBACK_DOCS:
            self._feedback(out)
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

    def _feedback_terms(self, doc: int) -> list[tuple[str, float]]:
        """A paper's most distinctive terms with their weights (tf share x idf), cached.

        Terms in more than FEEDBACK_MAX_DF of the papers ("model", "method") are
        left out: they say nothing about a topic. Only the FEEDBACK_PER_DOC
        heaviest are kept, the only ones that can reach a topic model's top
        FEEDBACK_TERMS in practice. Computed per paper on first need: only papers
        that are some topic's best ever are asked.
        """
        cached = self._feedback_docs.get(doc)
        if cached is None:
            counts = self._weighted_counts()[doc]
            total = sum(counts.values()) or 1.0
            heaviest = []
            for term, tf in counts.items():
                saturated = self._saturated(term)
                if saturated:
                    heaviest.append((tf / total * self._feedback_idf[term], term))
            cached = self._feedback_docs[doc] = [
                (term, weight) for weight, term in heapq.nlargest(FEEDBACK_PER_DOC, heaviest)
            ]
        return cached

    def _feedback_fields(self) -> tuple[tuple[TextField, float], ...]:
        """The fields feedback reads, with their weights: what a paper is about is in
        its title and abstract, not in its author list."""
        s = self.settings
        return (("title", s.title_weight), ("abstract", s.abstract_weight))

    def _weighted_counts(self) -> list[dict[str, float]]:
        """Per paper, each term's count in title and abstract, weighted by field (from
        the postings, once: the text was analysed when the index was built)."""
        if self._counts is None:
            self._counts = [{} for _ in self.papers]
            for name, weight in self._feedback_fields():
                for term, by_doc in self._fields[name].postings.items():
                    for doc, occs in by_doc.items():
                        counts = self._counts[doc]
                        counts[term] = counts.get(term, 0.0) + weight * len(occs)
        return self._counts

    def _saturated(self, term: str) -> dict[int, float]:
        """paper → saturated weighted tf of a term ({} for terms too common to say anything)."""
        cached = self._feedback_terms_tf.get(term)
        if cached is None:
            tf: dict[int, float] = {}
            for name, weight in self._feedback_fields():
                for doc, occs in self._fields[name].postings.get(term, {}).items():
                    tf[doc] = tf.get(doc, 0.0) + weight * len(occs)
            n = len(self.papers)
            df = len(tf)
            self._feedback_idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
            if df > FEEDBACK_MAX_DF * n:
                cached = {}
            else:
                cached = {doc: value / (value + K1) for doc, value in tf.items()}
            self._feedback_terms_tf[term] = cached
        return cached

    def _feedback(self, out: dict[int, _Scored]) -> None:
        """Pseudo-relevance feedback (RM3-style): lift papers that read like the best ones.

        The best FEEDBACK_DOCS eligible papers, weighted by their relevance, give a
        model of the topic's vocabulary beyond its own words (their FEEDBACK_TERMS
        most distinctive terms). Every eligible paper gets up to `feedback_weight`
        by how much of that vocabulary it uses. Only eligible papers are touched:
        feedback never admits a paper that shares nothing with the filter; it
        lifts on-topic papers and, since the relative cut-off follows the best
        paper, lets incidental matches fall below it.
        """
        # (sorted, not heapq.nlargest: the same items in the same order, tie-breaking
        # included, with the loop in C)
        top = sorted([(entry[0], doc) for doc, entry in out.items()], reverse=True)
        model: dict[str, float] = {}
        get = model.get
        for relevance, doc in top[:FEEDBACK_DOCS]:
            for term, weight in self._feedback_terms(doc):
                model[term] = get(term, 0.0) + relevance * weight
        if not model:
            return
        similarity: dict[int, float] = {}
        near = similarity.get
        ranked = sorted(model.items(), key=_WEIGHT, reverse=True)  # stable: first seen first
        for term, weight in ranked[:FEEDBACK_TERMS]:
            saturated = self._saturated(term)
            for doc in saturated.keys() & out.keys():
                similarity[doc] = near(doc, 0.0) + weight * saturated[doc]
        best = max(similarity.values(), default=0.0)
        if best <= 0:
            return
        scale = self.settings.feedback_weight / best
        for doc, sim in similarity.items():
            relevance, title, abstract, author, proximity, _ = out[doc]
            bonus = sim * scale
            out[doc] = (relevance + bonus, title, abstract, author, proximity, bonus)

    def _finish(self, doc: int, entry: _Scored) -> tuple[float, dict[str, float]]:
        """(score, score parts) of a scored paper: relevance plus the popularity tie-breaker."""
        relevance, title, abstract, author, proximity, feedback = entry
        s = self.settings
        parts: dict[str, float] = {}
        if title:
            parts["title"] = round(title, 4)
        if abstract:
            parts["abstract"] = round(abstract, 4)
        if author:
            parts["author"] = round(author, 4)
        if proximity:
            parts["proximity"] = round(s.proximity_weight * proximity, 4)
        if feedback:
            parts["feedback"] = round(feedback, 4)
        popularity, rounded = self._popularity_parts[doc]
        if popularity:
            parts["popularity"] = rounded
        return round(relevance + popularity, 4), parts

    def _close(self, plan: _Plan) -> dict[int, int]:
        """Per paper, how many of the filter's neighbouring words (pairs, multi-word
        phrases) occur close together in one field: the proximity share's numerator.

        Counted pair by pair over the papers where the pair is close (cached per pair
        of leaves: "diffusion models" recurs in hundreds of filters) rather than paper
        by paper over every pair, which paid a lookup per eligible paper per pair.
        """
        counts = plan.close
        if counts is None:
            counts = plan.close = {}
            get = counts.get
            for pair in plan.pairs:
                for doc in self._close_docs(pair):
                    counts[doc] = get(doc, 0) + 1
        return counts

    def _close_docs(self, pair: tuple[_Unit, _Unit] | _Unit) -> Iterable[int]:
        """Papers where a pair of leaves occurs within PROXIMITY_WINDOW words in one field
        (a multi-word phrase: wherever it occurs)."""
        if isinstance(pair, _Unit):
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

    def _cutoff(self, scored: dict[int, _Scored]) -> float:
        """The relevance a paper needs: absolute floor, and a share of the best paper's."""
        best = max(map(_RELEVANCE, scored.values()), default=0.0)
        return max(self.settings.min_relevance, self.settings.relative_cutoff * best)

    # --- explanations ---

    def _matched(self, node: Node, doc: int) -> tuple[MatchedTerm, ...]:
        return self._units_matched(self._plan(node).units, doc)

    def _units_matched(self, units: list[_Unit], doc: int) -> tuple[MatchedTerm, ...]:
        """One term per span (the first leaf's that has it), in text order.

        Runs for every hit of every filter, so the merge happens in C: each leaf's
        spans are a cached map keyed in text order, later leaves' maps are applied
        first so the earliest leaf's term overwrites theirs, and the keys are sorted.
        """
        if len(units) == 1:
            return self._unit_matched(units[0], doc)
        seen: dict[int, MatchedTerm] = {}
        for unit in reversed(units):
            spans = unit.spans.get(doc)
            if spans is None:
                self._unit_matched(unit, doc)
                spans = unit.spans[doc]
            seen.update(spans)
        return tuple(map(seen.__getitem__, sorted(seen)[:MAX_MATCHED_PER_HIT]))

    def _unit_matched(self, unit: _Unit, doc: int) -> tuple[MatchedTerm, ...]:
        """A leaf's highlight spans in one paper (cached, with `unit.spans` for merging)."""
        cached = unit.matched.get(doc)
        if cached is None:
            spans: dict[tuple[str, int, int], MatchedTerm] = {}
            for occ in unit.occurrences.get(doc, ()):
                key = (occ[_FIELD], occ[_START], occ[_END])
                if key not in spans:
                    spans[key] = MatchedTerm(unit.label, *key, occ[_VIA])
            cached = unit.matched[doc] = tuple(spans.values())[:MAX_MATCHED_PER_HIT]
            order = FIELD_ORDER
            unit.spans[doc] = {
                (order[t.field] << _SPAN_BITS | t.start) << _SPAN_BITS | t.end: t for t in cached
            }
        return cached

    def _trace(self, node: Node, doc: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(query terms the paper lacks, NOT terms it contains)."""
        missing: list[str] = []
        excluded: list[str] = []

        # A loop, not a recursive inner function: that would be a reference cycle per
        # call, and a dry run's near misses call this for every candidate of every empty
        # digest while the planner pauses the cyclic collector (see digest.gcpause).
        stack: list[tuple[Node, bool, _Unit | None]] = [(node, False, None)]
        while stack:  # depth first, left to right: the terms in query order
            n, negated, unit = stack.pop()
            if isinstance(n, Word | Phrase):
                u = unit or self._unit(n, None)
                if u.ignorable:
                    continue
                present = doc in u.occurrences
                if negated and present:
                    excluded.append(u.label)
                elif not negated and not present:
                    missing.append(u.label)
            elif isinstance(n, Not):
                stack.append((n.operand, not negated, None))
            elif isinstance(n, Or):
                stack.extend((op, negated, None) for op in reversed(n.operands))
            else:
                stack.extend((op, negated, op_unit) for op, op_unit in reversed(self._operands(n)))
        return tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(excluded))


def _add_postings(
    postings: dict[str, dict[int, tuple[_Occ, ...]]], doc: int, text: str, name: TextField
) -> int:
    """Index one field of one paper; returns its length in words (up to the last term).

    The hot loop of an index build (one pass per word of every paper): each
    distinct compound is analysed once (`shape_of`, cached across runs) and
    every later occurrence costs a lookup and a few tuples. Same tokens as
    `digest.analysis.analyse`.
    """
    shapes = SHAPES
    local: dict[str, list[_Occ]] = {}
    position = 0
    length = 0
    for match in compound_matches(text):
        word = match.group()
        tokens, width, command = shapes.get(word) or shape_of(word)
        if tokens:
            start = match.start()
            for term, offset, begin, end in tokens:
                occ = (name, position + offset, start + begin, start + end, None)
                occs = local.get(term)
                if occs is None:
                    local[term] = [occ]
                else:
                    occs.append(occ)
            length = position + width
        elif command and match.start() > 0 and text[match.start() - 1] == "\\":
            continue  # \mathcal, \frac: a command, not a word (takes no position)
        position += width
    for term, occs in local.items():
        by_doc = postings.get(term)
        if by_doc is None:
            postings[term] = {doc: tuple(occs)}
        else:
            by_doc[doc] = tuple(occs)
    return length


def _position_masks(occs: Iterable[_Occ]) -> dict[str, int]:
    """Per field, the word positions of some occurrences as a bit mask (bit p: position p).

    Ints, not sets: set operations become integer ones in C (`&` for "any in common",
    `bit_count` for how many), and an index keeps one per leaf, paper and field —
    tens of thousands of sets the garbage collector walked at every full collection.
    """
    masks: dict[str, int] = {}
    get = masks.get
    for occ in occs:
        name = occ[_FIELD]
        masks[name] = get(name, 0) | 1 << occ[_POSITION]
    return masks


def _positions(unit: _Unit, doc: int) -> dict[str, int]:
    """A leaf's word positions in one paper, per field, as bit masks."""
    cached = unit.positions.get(doc)
    if cached is None:
        cached = unit.positions[doc] = _position_masks(unit.occurrences.get(doc, ()))
    return cached


def _near(unit: _Unit, doc: int) -> dict[str, int]:
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


_NOT_LETTERS = re.compile(r"[\W\d_]+")


@lru_cache(maxsize=100_000)
def _light(word: str) -> str:
    """A word up to its plural (Harman's S-stemmer over its letters): what counts as the
    word as typed, as opposed to another word of the same stem."""
    w = _NOT_LETTERS.sub("", word.casefold())
    if len(w) > 3 and w.endswith("ies") and not w.endswith(("eies", "aies")):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("es") and not w.endswith(("aes", "ees", "oes")):
        return w[:-1]
    if len(w) > 2 and w.endswith("s") and not w.endswith(("us", "ss")):
        return w[:-1]
    return w


def _cjk_words(word: str) -> list[str]:
    """A query word as the index holds it: CJK text one character per token."""
    return list(word) if has_cjk(word) else [word]


# A hit as the fair-share selection handles it: (-score, paper_id, topic index, hit).
# Plain tuples sort in C by (-score, paper_id, topic index), unique within a merge,
# so the hit is never compared.
_Entry = tuple[float, int, int, Hit]
# A selection: per pick its hit, rank and topic index, one pick after another
_Selection = tuple[Any, ...]
# A subscriber's candidates when limited: (allowed papers or None for all, excluded papers).
_Window = tuple[frozenset[int] | None, frozenset[int]]
_BARE = (Word, Phrase, Not)  # a tuple: `Word | Phrase | Not` builds a union at every call
_WEIGHT = itemgetter(1)
_RELEVANCE = itemgetter(0)


def _fair_share(heads: Sequence[Sequence[_Entry]], max_papers: int) -> Sequence[_Entry]:
    """Best `max_papers` over several topics' entry lists, each topic guaranteed a share.

    Each topic with hits first gets up to max_papers // topics (at least one) of its
    best papers not already taken; the remaining slots go to the best remaining
    papers of any topic. A paper matched by several topics is counted once and
    belongs to the topic that took it. Each list holds at most `max_papers` entries
    sorted best first. Runs once per distinct combination of filters in a planning
    run (tens of thousands), so everything is small tuples sorted in C.
    """
    if max_papers <= 0:
        return []
    active = list(filter(None, heads))
    if len(active) <= 1:
        return active[0] if active else []
    chosen: dict[int, _Entry] = {}
    if sum(map(len, active)) > max_papers:
        quota = max(1, max_papers // len(active))
        # topics take turns by their best score, so a tie goes to the stronger topic
        # (a stable sort by best score; two lists, the usual case, without a key call)
        if len(active) > 2:
            active.sort(key=lambda head: head[0][0])
        elif active[1][0][0] < active[0][0][0]:
            active.reverse()
        for head in active:
            if len(chosen) >= max_papers:
                break
            taken = 0
            for entry in head:
                if entry[1] not in chosen:
                    chosen[entry[1]] = entry
                    taken += 1
                    if taken == quota or len(chosen) == max_papers:
                        break
    if len(chosen) < max_papers:
        # the rest by score; a paper several topics found goes to the one that scored
        # it highest (the first, on a tie): the first entry of it in this order
        for entry in sorted(chain.from_iterable(active)):
            if entry[1] not in chosen:
                chosen[entry[1]] = entry
                if len(chosen) == max_papers:
                    break
    return sorted(chosen.values())


def select_papers(
    index: PaperIndex,
    topics: Sequence[TopicQuery],
    *,
    max_papers: int,
    allowed: AbstractSet[int] | None = None,
    exclude: AbstractSet[int] = frozenset(),
) -> list[Pick]:
    """A subscriber's digest: best `max_papers` over their topics, fair share per topic.

    `allowed` limits the candidates (papers from the subscriber's window);
    `exclude` holds papers already sent to them, which are never picked again.
    Called once per subscriber in a planning run, so kept lean: filters are
    evaluated once per index, and selections are shared between subscribers
    with the same filters (and the same window and history). Subscribers who
    share topics share the parsed query objects (the planner parses each text
    once), so a selection is looked up by those objects' identities first; only
    the Picks, which carry the subscriber's own topic ids, are built per call.
    """
    if max_papers < 0:
        max_papers = 0
    window: _Window | None = None
    if allowed is None and not exclude:
        # (one or two topics, most subscribers: the key without a list in between)
        if len(topics) == 1:
            key: object = (id(topics[0].query), max_papers)
        elif len(topics) == 2:
            key = (id(topics[0].query), id(topics[1].query), max_papers)
        else:
            key = (*[id(topic.query) for topic in topics], max_papers)
    else:
        window = (None if allowed is None else frozenset(allowed), frozenset(exclude))
        key = ((*[id(topic.query) for topic in topics], max_papers), window)
    selection = index._selections_by_query.get(key)
    if selection is None:
        # every query is searched on the way, so the index keeps it alive (in its
        # identity memo) and no other object can take its id while the key is in use
        selection = _selection(index, topics, max_papers, window)
        index._selections_by_query[key] = selection
    # three values per pick (see _selection), taken off one shared iterator in C; each
    # Pick is made from a ready tuple, without a call to its __new__
    values = iter(selection)
    rows: Iterator[Any] = zip(values, values, values, strict=False)
    new = tuple.__new__
    if len(topics) == 1:
        topic_id = topics[0].topic_id
        return [new(Pick, (hit, topic_id, rank)) for hit, rank, _ in rows]
    topic_ids = [topic.topic_id for topic in topics]
    return [new(Pick, (hit, topic_ids[i], rank)) for hit, rank, i in rows]


def _selection(
    index: PaperIndex, topics: Sequence[TopicQuery], max_papers: int, window: _Window | None
) -> _Selection:
    """The selection for one combination of filters, best first: per pick its hit, rank
    and topic index, in one flat tuple.

    One object per combination on purpose: a planning run keeps tens of thousands,
    and every full collection of the garbage collector walks them (a list of per-hit
    tuples each was the heaviest part of its work). Shared by equal filters: keyed by
    the hit lists (one per distinct filter), so topics typed differently but parsing
    to the same filter share it too.
    """
    lists = [index.search(topic.query) for topic in topics]
    key: object = (*map(id, lists), max_papers)
    if window is not None:
        key = (key, window)
    selection = index._selections.get(key)
    if selection is None:
        flat: list[Any] = []
        if window is None and len(lists) == 1:
            for rank, hit in enumerate(lists[0][:max_papers], 1):
                flat += (hit, rank, 0)
        else:
            heads: list[Sequence[_Entry]]
            if window is None:
                heads = [_head(index, hits, i, max_papers) for i, hits in enumerate(lists)]
            else:
                allowed, exclude = window
                heads = [
                    [
                        (-hit.score, hit.paper_id, i, hit)
                        for hit in hits
                        if hit.paper_id not in exclude
                        and (allowed is None or hit.paper_id in allowed)
                    ][:max_papers]
                    for i, hits in enumerate(lists)
                ]
            for rank, (_, _, i, hit) in enumerate(_fair_share(heads, max_papers), 1):
                flat += (hit, rank, i)
        selection = index._selections[key] = tuple(flat)
    return selection


def _head(index: PaperIndex, hits: list[Hit], i: int, max_papers: int) -> tuple[_Entry, ...]:
    """The first `max_papers` hits of one filter as entries for topic index i (cached:
    every subscriber with this filter in this place of their topics reuses them)."""
    key = (id(hits), i, max_papers)
    head = index._heads.get(key)
    if head is None:
        head = index._heads[key] = tuple(
            [(-hit.score, hit.paper_id, i, hit) for hit in hits[:max_papers]]
        )
    return head
