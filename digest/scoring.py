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
   higher), normalised to a 0-1 "relevance" (how much of the topic's idf
   weight the paper carries, and how prominently), plus a proximity bonus
   when the topic's words occur close together. Papers below an absolute and
   a relative cut-off are dropped: fewer papers rather than noise. Upvotes
   add a small tie-breaker afterwards and never make a paper eligible.

Pure: plain values in (`PaperText`, query nodes, `ScoringSettings`), plain
values out (`Hit`, `Explanation`, `Pick`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal

from digest.acronyms import Acronyms, acronym_key
from digest.analysis import Token, analyse, term_of
from digest.config import ScoringSettings
from digest.domain import MatchedTerm, PaperText, Pick, TextField, TopicQuery
from digest.query import And, Node, Not, Or, Phrase, Word

__all__ = ["Explanation", "Hit", "PaperIndex", "select_papers"]

FIELDS: tuple[TextField, ...] = ("title", "abstract", "author")
UNSCOPED: tuple[TextField, ...] = ("title", "abstract")  # author names need `author:`
K1 = 1.2
B = 0.75
PROXIMITY_WINDOW = 3  # words apart that still count as "close together"
MAX_MATCHED_PER_HIT = 64


@dataclass(frozen=True, slots=True)
class Hit:
    """One eligible paper above the cut-off, with its score and why."""

    paper_id: int
    score: float
    matched: tuple[MatchedTerm, ...]
    parts: dict[str, float]


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


@dataclass(frozen=True, slots=True)
class _Occ:
    field: TextField
    position: int
    start: int
    end: int
    via: str | None


@dataclass(slots=True)
class _Unit:
    """A leaf of the filter (a word or phrase, with its acronym alternatives) evaluated."""

    label: str
    occurrences: dict[int, list[_Occ]]
    idf: float = 0.0
    ignorable: bool = False  # only stop words: imposes nothing

    @property
    def docs(self) -> AbstractSet[int]:
        return self.occurrences.keys()


@dataclass(slots=True)
class _FieldIndex:
    postings: dict[str, dict[int, list[Token]]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    average: float = 1.0


# A unit is memoised per (leaf node, acronym it stands in for, if any).
_UnitKey = tuple[Word | Phrase, tuple[str, str] | None]


class PaperIndex:
    """An inverted index over one run's candidate papers; answers filters, memoised."""

    def __init__(self, papers: Sequence[PaperText], settings: ScoringSettings) -> None:
        self.settings = settings
        self.papers = list(papers)
        self._doc_of = {paper.paper_id: doc for doc, paper in enumerate(self.papers)}
        self._all = frozenset(range(len(self.papers)))
        self._fields: dict[TextField, _FieldIndex] = {name: _FieldIndex() for name in FIELDS}
        self._surface: dict[str, set[str]] = {}  # casefolded word → terms (for prefixes)
        lower_seen: set[str] = set()
        for doc, paper in enumerate(self.papers):
            for name in FIELDS:
                text = self.field_text(paper, name)
                tokens = analyse(text)
                index = self._fields[name]
                for token in tokens:
                    index.postings.setdefault(token.term, {}).setdefault(doc, []).append(token)
                    word = text[token.start : token.end]
                    self._surface.setdefault(word.casefold(), set()).add(token.term)
                    if name != "author" and word.islower():
                        lower_seen.add(word)
                index.lengths.append(tokens[-1].position + 1 if tokens else 0)
        for index in self._fields.values():
            index.average = max(1.0, sum(index.lengths) / max(1, len(index.lengths)))
        self._lower_seen = frozenset(lower_seen)
        self.acronyms = Acronyms.learn(p.abstract for p in self.papers)
        self._builtin = Acronyms.learn((), builtin=True)
        # expansion terms → acronym, for the reverse direction ("large language model" → LLM)
        self._acronym_of: dict[tuple[str, ...], str] = {}
        for key, expansions in self.acronyms.items():
            for expansion in expansions:
                terms = tuple(t for t in (term_of(w) for w in expansion) if t)
                if len(terms) >= 2:
                    self._acronym_of.setdefault(terms, key)
        self._max_upvotes = max((p.upvotes or 0 for p in self.papers), default=0)
        self._units: dict[_UnitKey, _Unit] = {}
        self._docs: dict[Node, AbstractSet[int]] = {}
        self._hits: dict[Node, list[Hit]] = {}
        self._scored: dict[Node, dict[int, tuple[float, float, dict[str, float]]]] = {}
        self._selections: dict[object, list[tuple[Hit, int]]] = {}

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
        cached = self._hits.get(query)
        if cached is not None:
            return cached
        scored = self._score(query)
        cutoff = self._cutoff(scored)
        hits = []
        for doc, (relevance, score, parts) in scored.items():
            if relevance >= cutoff:
                matched = self._matched(query, doc)
                hits.append(Hit(self.papers[doc].paper_id, score, matched, parts))
        hits.sort(key=lambda h: (-h.score, h.paper_id))
        self._hits[query] = hits
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
        relevance, score, parts = scored[doc]
        if rank is not None:
            reason = f"selected: rank {rank} of {len(hits)}"
        else:
            reason = f"matches, but relevance {relevance:.3f} is below the cut-off {cutoff:.3f}"
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
        positives: list[AbstractSet[int]] = []
        required: list[AbstractSet[int]] = []
        result: AbstractSet[int] = self._all
        for operand, unit in self._operands(node):
            if isinstance(operand, Not):
                result = result - self._eligible(operand.operand)
                continue
            if unit is not None and unit.ignorable:
                continue
            docs = unit.docs if unit is not None else self._eligible(operand)
            positives.append(docs)
            if isinstance(operand, Word) and operand.required:
                required.append(docs)
        if not positives:
            return frozenset(result) if len(result) < len(self._all) else self._all
        need = self._needed(node, len(positives))
        for docs in required:
            result = result & docs
        if need >= len(positives):
            for docs in positives:
                result = result & docs
            return frozenset(result)
        counts: dict[int, int] = {}
        for docs in positives:
            for doc in docs:
                counts[doc] = counts.get(doc, 0) + 1
        return frozenset(doc for doc in result if counts.get(doc, 0) >= need)

    def _needed(self, node: And, positives: int) -> int:
        """How many of an AND's positive operands a paper must contain."""
        relax = self.settings.relax_from_words
        if node.explicit or relax == 0 or positives < relax:
            return positives
        bare = all(isinstance(op, Word | Phrase) for op in node.operands)
        if not bare:
            return positives
        return max(1, math.ceil(self.settings.relax_share * positives - 1e-9))

    def _operands(self, node: And) -> list[tuple[Node, _Unit | None]]:
        """An AND's operands, with word runs that spell an acronym's expansion marked.

        "large language model quantization" → the first three words also match
        where a paper writes "LLM".
        """
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
            elif term:
                self._add_term(occurrences, term, fields, None)
                for expansion, via in self._expansions(node.text):
                    self._add_phrase(occurrences, expansion, fields, via)
            if acronym is not None:
                self._add_term(occurrences, acronym[0], fields, acronym[1])
        else:
            label = '"' + " ".join(node.words) + '"'
            terms = [term_of(w) for w in node.words]
            ignorable = not any(terms)
            self._add_phrase(occurrences, list(node.words), fields, None)
            if len(node.words) == 1:
                for expansion, via in self._expansions(node.words[0]):
                    self._add_phrase(occurrences, expansion, fields, via)
            key_terms = tuple(t for t in terms if t)
            if key_terms in self._acronym_of:
                found = self._acronym_of[key_terms]
                self._add_term(occurrences, found, fields, f"{found.upper()} → {label}")
        for occs in occurrences.values():
            occs.sort(key=lambda o: (FIELDS.index(o.field), o.start))
        df = len(occurrences)
        n = len(self.papers)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        unit = _Unit(label, occurrences, idf, ignorable)
        self._units[key] = unit
        return unit

    def _expansions(self, word: str) -> list[tuple[list[str], str]]:
        """The expansions an acronym typed in a query stands for."""
        if not term_of(word):
            return []
        key = acronym_key(word)
        typed_as_acronym = sum(c.isupper() for c in word) >= 2
        learned_ok = typed_as_acronym or (
            key not in self._lower_seen and word.casefold() not in self._lower_seen
        )
        source = self.acronyms if learned_ok else self._builtin
        return [
            (list(expansion), f"{word} → {' '.join(expansion)}")
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
                bucket.extend(_Occ(name, t.position, t.start, t.end, via) for t in tokens)

    def _add_prefix(
        self, out: dict[int, list[_Occ]], prefix: str, fields: Iterable[TextField]
    ) -> None:
        terms: set[str] = set()
        for word, word_terms in self._surface.items():
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
                    positions.append({t.position: t for t in tokens})
                else:
                    for token in first_tokens:
                        base = token.position - first_offset
                        ends = []
                        for (offset, _t), at in zip(slots[1:], positions, strict=True):
                            hit = at.get(base + offset)
                            if hit is None:
                                break
                            ends.append(hit)
                        else:
                            end = ends[-1].end if ends else token.end
                            out.setdefault(doc, []).append(
                                _Occ(name, token.position, token.start, end, via)
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
            return max((self._attainable(op) for op in node.operands), default=0.0)
        total = 0.0
        for op, op_unit in self._operands(node):
            if op_unit is not None:
                total += 0.0 if op_unit.ignorable else op_unit.idf
            else:
                total += self._attainable(op)
        return total

    def _pairs(self, node: Node) -> list[tuple[_Unit, _Unit] | _Unit]:
        """Neighbouring words of each AND (and each multi-word phrase), for the proximity bonus."""
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
                if isinstance(op, Phrase):
                    out.extend(self._pairs(op))
                if op_unit.ignorable:
                    continue
                if previous is not None and previous is not op_unit:
                    out.append((previous, op_unit))
                previous = op_unit
        return out

    def _score(self, node: Node) -> dict[int, tuple[float, float, dict[str, float]]]:
        """doc → (relevance, score, parts) for every eligible paper."""
        cached = self._scored.get(node)
        if cached is not None:
            return cached
        eligible = self._eligible(node)
        units = self._positive_units(node)
        attainable = self._attainable(node)
        pairs = self._pairs(node)
        s = self.settings
        weights = {
            "title": s.title_weight,
            "abstract": s.abstract_weight,
            "author": s.author_weight,
        }
        out: dict[int, tuple[float, float, dict[str, float]]] = {}
        if not units or attainable <= 0:
            self._scored[node] = out
            return out  # nothing to rank by (only stop words / only NOT): select nothing
        for doc in eligible:
            field_parts = {"title": 0.0, "abstract": 0.0, "author": 0.0}
            for unit in units:
                occs = unit.occurrences.get(doc)
                if not occs:
                    continue
                per_field: dict[TextField, float] = {}
                for name in FIELDS:
                    tf = len({o.position for o in occs if o.field == name})
                    if not tf:
                        continue
                    index = self._fields[name]
                    norm = 1 - B + B * index.lengths[doc] / index.average
                    per_field[name] = weights[name] * tf / norm
                pseudo_tf = sum(per_field.values())
                if pseudo_tf <= 0:
                    continue
                gain = unit.idf * pseudo_tf / (K1 + pseudo_tf) / attainable
                for name, value in per_field.items():
                    field_parts[name] += gain * value / pseudo_tf
            relevance = min(1.0, sum(field_parts.values()))
            proximity = self._proximity(pairs, doc)
            relevance += s.proximity_weight * proximity
            popularity = 0.0
            upvotes = self.papers[doc].upvotes
            if upvotes and self._max_upvotes > 0:
                popularity = math.log1p(upvotes) / math.log1p(self._max_upvotes)
            parts = {name: round(v, 4) for name, v in field_parts.items() if v}
            if proximity:
                parts["proximity"] = round(s.proximity_weight * proximity, 4)
            if popularity and s.popularity_weight:
                parts["popularity"] = round(s.popularity_weight * popularity, 4)
            score = relevance + s.popularity_weight * popularity
            out[doc] = (relevance, round(score, 4), parts)
        self._scored[node] = out
        return out

    def _proximity(self, pairs: list[tuple[_Unit, _Unit] | _Unit], doc: int) -> float:
        """Share of the topic's neighbouring words found close together in one field."""
        if not pairs:
            return 0.0
        close = 0
        for pair in pairs:
            if isinstance(pair, _Unit):
                close += doc in pair.occurrences
                continue
            a, b = pair[0].occurrences.get(doc), pair[1].occurrences.get(doc)
            if not a or not b:
                continue
            if any(
                x.field == y.field and abs(x.position - y.position) <= PROXIMITY_WINDOW
                for x in a
                for y in b
            ):
                close += 1
        return close / len(pairs)

    def _cutoff(self, scored: dict[int, tuple[float, float, dict[str, float]]]) -> float:
        best = max((relevance for relevance, _, _ in scored.values()), default=0.0)
        return max(self.settings.min_relevance, self.settings.relative_cutoff * best)

    # --- explanations ---

    def _matched(self, node: Node, doc: int) -> tuple[MatchedTerm, ...]:
        seen: set[tuple[str, int, int]] = set()
        out: list[MatchedTerm] = []
        for unit in self._positive_units(node):
            for occ in unit.occurrences.get(doc, ()):
                key = (occ.field, occ.start, occ.end)
                if key in seen:
                    continue
                seen.add(key)
                out.append(MatchedTerm(unit.label, occ.field, occ.start, occ.end, occ.via))
        out.sort(key=lambda m: (FIELDS.index(m.field), m.start, m.end))
        return tuple(out[:MAX_MATCHED_PER_HIT])

    def _trace(self, node: Node, doc: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(query terms the paper lacks, NOT terms it contains)."""
        missing: list[str] = []
        excluded: list[str] = []

        def walk(n: Node, negated: bool, unit: _Unit | None = None) -> None:
            if isinstance(n, Word | Phrase):
                u = unit or self._unit(n, None)
                if u.ignorable:
                    return
                present = doc in u.occurrences
                if negated and present:
                    excluded.append(u.label)
                elif not negated and not present:
                    missing.append(u.label)
            elif isinstance(n, Not):
                walk(n.operand, not negated)
            elif isinstance(n, Or):
                for op in n.operands:
                    walk(op, negated)
            else:
                for op, op_unit in self._operands(n):
                    walk(op, negated, op_unit)

        walk(node, False)
        return tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(excluded))

    # --- selection cache (used by select_papers) ---

    def _selection(
        self,
        queries: tuple[Node, ...],
        max_papers: int,
        allowed: AbstractSet[int] | None,
        exclude: AbstractSet[int],
    ) -> list[tuple[Hit, int]]:
        key = (queries, max_papers, frozenset(allowed) if allowed is not None else None,
               frozenset(exclude))  # fmt: skip
        cached = self._selections.get(key)
        if cached is None:
            cached = _fair_share([self.search(q) for q in queries], max_papers, allowed, exclude)
            self._selections[key] = cached
        return cached


def _fair_share(
    lists: list[list[Hit]],
    max_papers: int,
    allowed: AbstractSet[int] | None,
    exclude: AbstractSet[int],
) -> list[tuple[Hit, int]]:
    """Best `max_papers` over several topics' hit lists, each topic guaranteed a share.

    Each topic with hits first gets up to max_papers // topics (at least one) of its
    best papers not already taken; the remaining slots go to the best remaining
    papers of any topic. A paper matched by several topics is counted once.
    """
    if max_papers <= 0:
        return []
    usable = [
        [
            h
            for h in hits
            if h.paper_id not in exclude and (allowed is None or h.paper_id in allowed)
        ]
        for hits in lists
    ]
    if len(usable) == 1:
        return [(h, 0) for h in usable[0][:max_papers]]
    active = [i for i, hits in enumerate(usable) if hits]
    if not active:
        return []
    quota = max(1, max_papers // len(active))
    chosen: dict[int, tuple[Hit, int]] = {}
    # topics take turns by their best score, so a tie goes to the stronger topic
    for i in sorted(active, key=lambda i: -usable[i][0].score):
        taken = 0
        for hit in usable[i]:
            if len(chosen) >= max_papers or taken >= quota:
                break
            if hit.paper_id not in chosen:
                chosen[hit.paper_id] = (hit, i)
                taken += 1
    if len(chosen) < max_papers:
        rest = sorted(
            ((hit, i) for i in active for hit in usable[i] if hit.paper_id not in chosen),
            key=lambda pair: (-pair[0].score, pair[0].paper_id, pair[1]),
        )
        for hit, i in rest:
            if len(chosen) >= max_papers:
                break
            if hit.paper_id not in chosen:
                chosen[hit.paper_id] = (hit, i)
    return sorted(chosen.values(), key=lambda pair: (-pair[0].score, pair[0].paper_id))


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
    """
    queries = tuple(topic.query for topic in topics)
    chosen = index._selection(queries, max_papers, allowed, exclude)
    return [
        Pick(hit.paper_id, topics[i].topic_id, hit.score, rank, hit.matched, hit.parts)
        for rank, (hit, i) in enumerate(chosen, 1)
    ]


def describe_node(node: Node) -> str:
    """A readable rendering of a filter for messages (the parser's to_text when merged)."""
    if isinstance(node, Word):
        scope = f"{node.field}:" if node.field else ""
        return f"{'+' if node.required else ''}{scope}{node.text}{'*' if node.prefix else ''}"
    if isinstance(node, Phrase):
        scope = f"{node.field}:" if node.field else ""
        return f'{scope}"{" ".join(node.words)}"'
    if isinstance(node, Not):
        return f"-{describe_node(node.operand)}"
    joiner: Literal[" AND ", " ", " OR "] = (
        " OR " if isinstance(node, Or) else (" AND " if node.explicit else " ")
    )
    return "(" + joiner.join(describe_node(op) for op in node.operands) + ")"
