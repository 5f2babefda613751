"""A filter's leaves (words and phrases) compiled against the corpus, acronyms included.

The same leaf ("models") recurs in thousands of filters, so everything a
filter needs from a leaf is computed once here and memoised per (leaf, the
acronym it stands in for): where it occurs (the word and its stem's other
words, a prefix's words, a phrase's runs, an acronym's expansions and the
reverse), its idf, and per paper its BM25F gain split by field. An AND's
operands are compiled here too, because a run of its words can spell an
acronym's expansion ("large language model" also finds "LLM").
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from digest.config import ScoringSettings
from digest.filters import And, Node, Phrase, Word
from digest.scoring.acronyms import acronym_key
from digest.scoring.analysis import has_cjk, term_of
from digest.scoring.corpus import (
    FIELD,
    FIELD_ORDER,
    FIELDS,
    POSITION,
    START,
    UNSCOPED,
    Corpus,
    Occ,
)
from digest.values import MatchedTerm

K1 = 1.2
B = 0.75


@dataclass(slots=True)
class Unit:
    """A leaf of the filter (a word or phrase, with its acronym alternatives) evaluated.

    Everything a filter needs from a leaf is computed once here, because the same
    leaf ("models") recurs in thousands of filters: per paper its BM25F gain split
    by field, its positions (for proximity) and its highlight spans.
    """

    label: str
    occurrences: dict[int, tuple[Occ, ...]]
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

    @property
    def docs(self) -> AbstractSet[int]:
        return self.occurrences.keys()


# A unit is memoised per (leaf node, acronym it stands in for, if any).
UnitKey = tuple[Word | Phrase, tuple[str, str] | None]


class Leaves:
    """Compiles and memoises the leaves of every filter asked of one index.

    The field weights shape the gains; no other setting is read here.
    """

    def __init__(self, corpus: Corpus, settings: ScoringSettings) -> None:
        self.corpus = corpus
        self.settings = settings
        self._units: dict[UnitKey, Unit] = {}
        self._ops: dict[And, list[tuple[Node, Unit | None]]] = {}

    def operands(self, node: And) -> list[tuple[Node, Unit | None]]:
        """An AND's operands, with word runs that spell an acronym's expansion marked.

        "large language model quantization" → the first three words also match
        where a paper writes "LLM".
        """
        cached = self._ops.get(node)
        if cached is None:
            cached = self._ops[node] = self._compile_operands(node)
        return cached

    def _compile_operands(self, node: And) -> list[tuple[Node, Unit | None]]:
        ops = list(node.operands)
        acronym_of = self.corpus.acronym_of
        stands_for: list[tuple[str, str] | None] = [None] * len(ops)
        terms = [
            term_of(op.text) if isinstance(op, Word) and not op.prefix and op.field is None else ""
            for op in ops
        ]
        i = 0
        while i < len(ops):
            for j in range(len(ops), i + 1, -1):  # longest run first
                run = tuple(terms[i:j])
                if all(run) and run in acronym_of:
                    acronym = acronym_of[run]
                    words = " ".join(op.text for op in ops[i:j] if isinstance(op, Word))
                    for k in range(i, j):
                        stands_for[k] = (acronym, f"{acronym.upper()} → {words}")
                    i = j - 1
                    break
            i += 1
        out: list[tuple[Node, Unit | None]] = []
        for op, stand_in in zip(ops, stands_for, strict=True):
            unit = self.unit(op, stand_in) if isinstance(op, Word | Phrase) else None
            out.append((op, unit))
        return out

    def unit(self, node: Word | Phrase, acronym: tuple[str, str] | None) -> Unit:
        """The leaf compiled, standing in for `acronym` (key, label) when one is given."""
        key = (node, acronym)
        cached = self._units.get(key)
        if cached is not None:
            return cached
        corpus = self.corpus
        acronym_of = corpus.acronym_of
        fields = (node.field,) if node.field else UNSCOPED
        occurrences: dict[int, list[Occ]] = {}
        if isinstance(node, Word):
            label = node.text + ("*" if node.prefix else "")
            term = term_of(node.text)
            ignorable = not term and not node.prefix
            if node.prefix:
                corpus.add_prefix(occurrences, node.text.casefold(), fields)
            elif has_cjk(node.text):
                corpus.add_phrase(occurrences, _cjk_words(node.text), fields, None)
            elif term:
                corpus.add_term(occurrences, term, fields, None)
                for expansion, via in self._expansions(node.text):
                    corpus.add_phrase(occurrences, expansion, fields, via)
            if acronym is None and term and (term,) in acronym_of:
                short = acronym_of[(term,)]  # "mathematical" also finds "math"
                acronym = (short, f"{short.upper()} → {node.text}")
            if acronym is not None:
                corpus.add_term(occurrences, acronym[0], fields, acronym[1])
        else:
            label = '"' + " ".join(node.words) + '"'
            terms = [term_of(w) for w in node.words]
            ignorable = not any(terms)
            words = [part for w in node.words for part in _cjk_words(w)]
            corpus.add_phrase(occurrences, words, fields, None)
            joined = term_of("".join(node.words))  # "multi armed" also finds "multiarmed"
            if len(node.words) > 1 and joined and not has_cjk(joined):
                corpus.add_term(occurrences, joined, fields, None)
            if len(node.words) == 1:
                for expansion, via in self._expansions(node.words[0]):
                    corpus.add_phrase(occurrences, expansion, fields, via)
            key_terms = tuple(t for t in terms if t)
            if key_terms in acronym_of:
                found = acronym_of[key_terms]
                corpus.add_term(occurrences, found, fields, f"{found.upper()} → {label}")
        # in text order, as tuples (of plain values: the garbage collector skips them)
        ordered: dict[int, tuple[Occ, ...]] = {}
        for doc, occs in occurrences.items():
            if len(occs) > 1:
                occs.sort(key=lambda o: (FIELD_ORDER[o[FIELD]], o[START]))
            ordered[doc] = tuple(occs)
        unit = Unit(label, ordered, corpus.idf(len(ordered)), ignorable)
        self._weigh(unit)
        self._units[key] = unit
        return unit

    def _expansions(self, word: str) -> list[tuple[list[str], str]]:
        """The expansions an acronym typed in a query stands for.

        Not typed as an acronym (fewer than two capitals, "llm") and used by the
        papers as an ordinary lower-case word, it may mean that word: then only the
        built-in list is trusted, not what was learned from these papers.
        """
        corpus = self.corpus
        if not term_of(word) or not corpus.acronyms.expansions_of(word):
            return []  # (the learned list includes the built-in one: nothing either way)
        key = acronym_key(word)
        typed_as_acronym = sum(c.isupper() for c in word) >= 2
        learned_ok = typed_as_acronym or (
            key not in corpus.vocabulary()[1] and word.casefold() not in corpus.vocabulary()[1]
        )
        source = corpus.acronyms if learned_ok else corpus.builtin_acronyms
        return [
            (list(expansion), f"{key.upper()} → {' '.join(expansion)}")
            for expansion in source.expansions_of(word)
            if len(expansion) >= 2 or expansion[0] != key
        ]

    def _weigh(self, unit: Unit) -> None:
        """Per paper: the leaf's BM25F gain (idf x saturated weighted tf), split by field."""
        s = self.settings
        weights = (s.title_weight, s.abstract_weight, s.author_weight)
        fields = self.corpus.fields
        for doc, occs in unit.occurrences.items():
            at = unit.positions[doc] = position_masks(occs)
            pseudo = [0.0, 0.0, 0.0]
            for i, name in enumerate(FIELDS):
                positions = at.get(name)
                if positions:
                    index = fields[name]
                    norm = 1 - B + B * index.lengths[doc] / index.average
                    pseudo[i] = weights[i] * positions.bit_count() / norm
            total = sum(pseudo)
            if total > 0:
                scale = unit.idf / (K1 + total)
                unit.gain[doc] = (pseudo[0] * scale, pseudo[1] * scale, pseudo[2] * scale)


def position_masks(occs: Iterable[Occ]) -> dict[str, int]:
    """Per field, the word positions of some occurrences as a bit mask (bit p: position p).

    Ints, not sets: set operations become integer ones in C (`&` for "any in common",
    `bit_count` for how many), and an index keeps one per leaf, paper and field —
    tens of thousands of sets the garbage collector would walk at every full collection.
    """
    masks: dict[str, int] = {}
    get = masks.get
    for occ in occs:
        name = occ[FIELD]
        masks[name] = get(name, 0) | 1 << occ[POSITION]
    return masks


def _cjk_words(word: str) -> list[str]:
    """A query word as the index holds it: CJK text one character per token."""
    return list(word) if has_cjk(word) else [word]
