"""One run's candidate papers, analysed once: postings per field, and what they teach.

Everything here depends only on the papers, never on a filter or a scoring
setting, so it is built once before any filter is asked, and indexes with
different settings can share it (bench/tune_scoring.py scores a grid of
settings over one corpus). Leaves (`leaves.py`) find their occurrences here:
a term, a prefix or a phrase looked up in the postings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from digest.scoring.acronyms import Acronyms
from digest.scoring.analysis import (
    SHAPES,
    compound_matches,
    compound_words,
    scan,
    shape_of,
    term_of,
)
from digest.scoring.boilerplate import blank_availability_notes
from digest.values import PaperText, TextField

FIELDS: tuple[TextField, ...] = ("title", "abstract", "author")
FIELD_ORDER = {name: i for i, name in enumerate(FIELDS)}
UNSCOPED: tuple[TextField, ...] = ("title", "abstract")  # author names need `author:`

# One occurrence of a leaf in a paper: (field, word position, start, end, acronym via).
# A plain tuple, not a NamedTuple: a corpus holds one per word of every paper, and
# building those must cost next to nothing (read with the FIELD..VIA indices).
Occ = tuple[TextField, int, int, int, str | None]
FIELD: Final = 0
POSITION: Final = 1
START: Final = 2
END: Final = 3
VIA: Final = 4


# An occurrence as stored in the postings: (position, start, end) packed in one int.
# A tuple per word of every paper made the postings most of the planner's memory on
# a large window; one int is a fraction of a tuple and its ints, and `occurrences`
# rebuilds the Occ tuples of just the papers a leaf asks about.
_SHIFT: Final = 21
_MASK: Final = (1 << _SHIFT) - 1


def _pack(position: int, start: int, end: int) -> int:
    return (position << (2 * _SHIFT)) | (start << _SHIFT) | end


def occurrences(name: TextField, packed: tuple[int, ...], via: str | None) -> list[Occ]:
    """The Occ tuples of one paper's packed occurrences in field `name`."""
    return [(name, p >> (2 * _SHIFT), (p >> _SHIFT) & _MASK, p & _MASK, via) for p in packed]


@dataclass(slots=True)
class FieldIndex:
    """One field's postings and lengths (what BM25F normalises by)."""

    # term → paper → packed occurrences (see `_pack`); tuples of ints, which the
    # garbage collector does not track
    postings: dict[str, dict[int, tuple[int, ...]]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    average: float = 1.0


def field_text(paper: PaperText, name: TextField) -> str:
    """The text MatchedTerm offsets refer to (authors joined with ", ")."""
    if name == "title":
        return paper.title
    if name == "abstract":
        return paper.abstract
    return ", ".join(paper.authors)


class Corpus:
    """The candidate papers as an inverted index: papers are numbered 0..n-1 ("docs")."""

    def __init__(self, papers: Sequence[PaperText]) -> None:
        # "Our code is available at github…" says nothing about the topic (see boilerplate)
        self.papers = [
            paper
            if (abstract := blank_availability_notes(paper.abstract)) is paper.abstract
            else replace(paper, abstract=abstract)
            for paper in papers
        ]
        self.doc_of = {paper.paper_id: doc for doc, paper in enumerate(self.papers)}
        self.all = frozenset(range(len(self.papers)))
        self.fields: dict[TextField, FieldIndex] = {name: FieldIndex() for name in FIELDS}
        self._vocabulary: tuple[dict[str, set[str]], frozenset[str]] | None = None
        for name in FIELDS:
            index = self.fields[name]
            for doc, paper in enumerate(self.papers):
                index.lengths.append(add_postings(index.postings, doc, field_text(paper, name)))
            index.average = max(1.0, sum(index.lengths) / max(1, len(index.lengths)))
        self.acronyms = Acronyms.learn(p.abstract for p in self.papers)
        self.builtin_acronyms = Acronyms.learn((), builtin=True)
        # expansion terms → acronym, for the reverse direction ("large language model" → LLM)
        self.acronym_of: dict[tuple[str, ...], str] = {}
        for key, expansions in self.acronyms.items():
            for expansion in expansions:
                terms = tuple(t for t in (term_of(w) for w in expansion) if t)
                if len(terms) >= 2 or (len(terms) == 1 and terms[0] != term_of(key)):
                    self.acronym_of.setdefault(terms, key)
        # upvotes on a log scale, 0-1 relative to the day's most upvoted paper
        most = math.log1p(max((p.upvotes or 0 for p in self.papers), default=0))
        self.popularity = [
            math.log1p(p.upvotes) / most if p.upvotes and most > 0 else 0.0 for p in self.papers
        ]

    def idf(self, df: int) -> float:
        """The idf of something found in `df` of the papers (BM25's, never negative)."""
        n = len(self.papers)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def vocabulary(self) -> tuple[dict[str, set[str]], frozenset[str]]:
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
                    compounds.update(compound_words(field_text(paper, name)))
                for compound in compounds:
                    for term, _, start, end in scan(compound):
                        word = compound[start:end]
                        surface.setdefault(word.casefold(), set()).add(term)
                        if name != "author" and word.islower():
                            lower.add(word)
            self._vocabulary = (surface, frozenset(lower))
        return self._vocabulary

    # --- occurrences: a term, a prefix, a phrase (added to `out`, per paper) ---

    def add_term(
        self,
        out: dict[int, list[Occ]],
        term: str,
        fields: Iterable[TextField],
        via: str | None,
    ) -> None:
        for name in fields:
            for doc, packed in self.fields[name].postings.get(term, {}).items():
                out.setdefault(doc, []).extend(occurrences(name, packed, via))

    def add_prefix(
        self, out: dict[int, list[Occ]], prefix: str, fields: Iterable[TextField]
    ) -> None:
        terms: set[str] = set()
        for word, word_terms in self.vocabulary()[0].items():
            if word.startswith(prefix):
                terms |= word_terms
        fields = tuple(fields)
        for term in sorted(terms):
            self.add_term(out, term, fields, None)

    def add_phrase(
        self,
        out: dict[int, list[Occ]],
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
            self.add_term(out, slots[0][1], fields, via)
            return
        first_offset, _first_term = slots[0]
        for name in fields:
            postings = self.fields[name].postings
            lists = [postings.get(t) for _, t in slots]
            present = lists[0]
            if present is None or any(lst is None for lst in lists):
                continue
            for doc, first_packed in present.items():
                positions = []
                for (_, _t), lst in zip(slots[1:], lists[1:], strict=True):
                    assert lst is not None
                    packed = lst.get(doc)
                    if packed is None:
                        break
                    positions.append({t[POSITION]: t for t in occurrences(name, packed, None)})
                else:
                    for token in occurrences(name, first_packed, None):
                        base = token[POSITION] - first_offset
                        ends = []
                        for (offset, _t), at in zip(slots[1:], positions, strict=True):
                            hit = at.get(base + offset)
                            if hit is None:
                                break
                            ends.append(hit)
                        else:
                            end = ends[-1][END] if ends else token[END]
                            out.setdefault(doc, []).append(
                                (name, token[POSITION], token[START], end, via)
                            )


def add_postings(postings: dict[str, dict[int, tuple[int, ...]]], doc: int, text: str) -> int:
    """Index one field of one paper; returns its length in words (up to the last term).

    The hot loop of an index build (one pass per word of every paper): each
    distinct compound is analysed once (`shape_of`, cached across runs) and
    every later occurrence costs a lookup and a few tuples. Same tokens as
    `digest.scoring.analysis.analyse`.
    """
    shapes = SHAPES
    local: dict[str, list[int]] = {}
    position = 0
    length = 0
    for match in compound_matches(text):
        word = match.group()
        tokens, width, command = shapes.get(word) or shape_of(word)
        if tokens:
            start = match.start()
            for term, offset, begin, end in tokens:
                occ = _pack(position + offset, start + begin, start + end)
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
