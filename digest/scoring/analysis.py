"""Text analysis for scoring: paper text and query words → stemmed index terms.

The index and the query side must agree on what a term is, so both go through
`term_of` (one word → its index term) and `analyse` (a text → tokens with
positions and character offsets). On top of `digest.text.words` this adds what
paper abstracts need:

- Snowball English stemming (PyStemmer), so "quantizing" finds "quantization";
- hyphenated compounds indexed both as parts and joined ("multi-agent" →
  multi, agent, and multiagent at the same position);
- letters+digits tokens also indexed by their letters ("llama2" → llama);
- Greek letters spelled out ("α" → alpha), so `alpha` finds "α-decay";
- LaTeX debris left by stripped markup (`\\mathcal`, "frac", "Oleft(") dropped.

Stop words keep their position (phrases with "of" still need adjacency) but
are not indexed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import NamedTuple

import Stemmer

from digest.text import STOP_WORDS

__all__ = [
    "SHAPES",
    "Shape",
    "Token",
    "analyse",
    "compound_matches",
    "compound_words",
    "has_cjk",
    "is_indexed",
    "scan",
    "shape_of",
    "stem",
    "term_of",
]

_STEMMER = Stemmer.Stemmer("english")

# A word, or a hyphenated compound of words ("near-lossless", "GPT-4o").
_COMPOUND = re.compile(r"[^\W_]+(?:[-‐‑][^\W_]+)*", re.UNICODE)
_PART = re.compile(r"[^\W_]+", re.UNICODE)
_LETTERS_THEN_DIGITS = re.compile(r"^([^\W\d_]{3,})\d+[^\W\d_]?$")  # llama2, gpt4o
_DIGITS_THEN_LETTERS = re.compile(r"^\d+(?:[.,]\d+)?([^\W\d_]{3,})$")  # 1times, 4bit

_VOWEL = re.compile(r"[aeiouy]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

# Markup words that only appear as debris of stripped LaTeX; never topic words.
_LATEX_WORDS = (
    "frac dfrac tfrac mathbf mathcal mathrm mathbb mathsf mathit mathfrak textbf textit "
    "textrm texttt textsc emph cdot cdots ldots vdots ddots leq geq neq le ge approx infty "
    "sqrt widetilde widehat operatorname boldsymbol mathbbm displaystyle scriptstyle "
    "begin end label ref eqref cite citep citet lvert rvert langle rangle qquad quad"
)
LATEX_DEBRIS = frozenset(_LATEX_WORDS.split())
# Spelled-out variants that mean the plain letter.
_GREEK_VARIANTS = {
    "varepsilon": "epsilon",
    "vartheta": "theta",
    "varphi": "phi",
    "varrho": "rho",
    "varsigma": "sigma",
    "varpi": "pi",
}
# "Oleft(frac{...}right)" keeps a short prefix glued to left/right: debris, not words.
_GLUED_DELIMITER = re.compile(r"^[a-z]{0,2}(left|right|big|bigg)$")


class Token(NamedTuple):
    """One index term at a word position, with the character span it came from.

    Several tokens can share a position (a compound's joined form, a word's
    letter part). A NamedTuple: an index holds tens of thousands of these.
    """

    term: str
    position: int
    start: int
    end: int


def _greek(char: str) -> str | None:
    if not ("\u0370" <= char <= "\u03ff"):
        return None
    name = unicodedata.name(char, "")
    if name.startswith("GREEK") and "LETTER" in name:
        return name.rsplit(" ", 1)[-1].lower()
    return None


def _spell_greek(word: str) -> str:
    if not any("\u0370" <= c <= "\u03ff" for c in word):
        return word
    # A word entirely in Greek script (a Greek-language title) is kept as it is.
    if all("\u0370" <= c <= "\u03ff" for c in word) and len(word) > 1:
        return word
    return "".join(_greek(c) or c for c in word)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The stem of one lower-cased word."""
    return str(_STEMMER.stemWord(word))


@lru_cache(maxsize=200_000)
def term_of(word: str) -> str:
    """The index term for one word as a user or a paper writes it ("" = not indexable)."""
    if word.isascii():
        folded = word.lower()  # NFKC and casefold change nothing in ASCII
    else:
        folded = _spell_greek(unicodedata.normalize("NFKC", word).casefold())
    folded = _GREEK_VARIANTS.get(folded, folded)
    if folded in STOP_WORDS or folded in LATEX_DEBRIS or _GLUED_DELIMITER.match(folded):
        return ""
    if folded.isdigit():
        return folded
    stemmed = stem(folded)
    # Acronym plurals ("LLMs", "cnns"): the stemmer keeps an s after no vowel.
    if (
        stemmed == folded
        and len(folded) > 2
        and folded.endswith("s")
        and folded[-2] != "s"
        and not _VOWEL.search(folded[:-1])
    ):
        return folded[:-1]
    return stemmed


def has_cjk(word: str) -> bool:
    """Whether a word is (partly) in a script written without spaces (Chinese, Japanese, Korean)."""
    return _CJK.search(word) is not None


def is_indexed(word: str) -> bool:
    """Whether a word can match anything (stop words and markup cannot)."""
    return term_of(word) != ""


def analyse(text: str) -> list[Token]:
    """Tokens of a field's text, positions counted over all words (stop words too)."""
    return [Token(*token) for token in scan(text)]


def compound_words(text: str) -> list[str]:
    """The words and hyphenated compounds of a text as written, in order (with repeats)."""
    return _COMPOUND.findall(text)


def compound_matches(text: str) -> Iterator[re.Match[str]]:
    """The words and hyphenated compounds of a text, as matches (with their offsets)."""
    return _COMPOUND.finditer(text)


# One compound as written ("Near-lossless", "the", "LLMs") → how it tokenises (see shape_of).
Shape = tuple[tuple[tuple[str, int, int, int], ...], int, bool]
_SHAPES: dict[str, Shape] = {}
SHAPES: Mapping[str, Shape] = _SHAPES
_SHAPES_MAX = 400_000


def scan(text: str) -> list[tuple[str, int, int, int]]:
    """`analyse` as plain (term, position, start, end) tuples: the index's fast path.

    Papers repeat their words, and a day's papers share most of them, so each
    distinct compound is analysed once (`shape_of`) and every later occurrence is
    a dictionary lookup and a shift of offsets, not another pass of the stemmer.
    """
    out: list[tuple[str, int, int, int]] = []
    append = out.append
    shapes = _SHAPES
    position = 0
    for match in _COMPOUND.finditer(text):
        word = match.group()
        shape = shapes.get(word) or shape_of(word)
        tokens, width, command = shape
        start = match.start()
        if command and start > 0 and text[start - 1] == "\\":
            continue  # \mathcal, \frac: a command, not a word
        if tokens:
            if width == 1 and len(tokens) == 1:
                append((tokens[0][0], position, start, start + tokens[0][3]))
            else:
                for term, offset, begin, end in tokens:
                    append((term, position + offset, start + begin, start + end))
        position += width
    return out


def shape_of(compound: str) -> Shape:
    """How one compound tokenises, relative to its own start: (tokens, width, command).

    tokens are (term, position offset, start offset, end offset); width is the
    number of word positions the compound takes; command says it is a LaTeX
    command name when written after a backslash (then it takes no position).
    Cached: callers may look in `SHAPES` first.
    """
    shape = _SHAPES.get(compound)
    if shape is not None:
        return shape
    if compound.isascii() and compound.isalnum():  # the common case: one plain word
        shape = (
            tuple((term, 0, 0, len(compound)) for term in _part_terms(compound)),
            1,
            compound.casefold() in LATEX_DEBRIS,
        )
        if len(_SHAPES) < _SHAPES_MAX:
            _SHAPES[compound] = shape
        return shape
    tokens: list[tuple[str, int, int, int]] = []
    parts = list(_PART.finditer(compound))
    offset = 0
    for part in parts:
        if has_cjk(part.group()):
            # unsegmented scripts: one token per character, matched as phrases
            for i, char in enumerate(part.group()):
                at = part.start() + i
                tokens.append((term_of(char) or char, offset, at, at + 1))
                offset += 1
            continue
        for term in _part_terms(part.group()):
            tokens.append((term, offset, part.start(), part.end()))
        offset += 1
    if len(parts) > 1:
        joined = term_of("".join(p.group() for p in parts))
        if joined:
            tokens.append((joined, 0, 0, len(compound)))
    shape = (tuple(tokens), offset, compound.casefold() in LATEX_DEBRIS)
    if len(_SHAPES) < _SHAPES_MAX:
        _SHAPES[compound] = shape
    return shape


def _part_terms(word: str) -> tuple[str, ...]:
    """A word's index term, plus its letters alone for letters+digits words ("llama2")."""
    term = term_of(word)
    if not term:
        return ()
    folded = word.casefold()
    letters = _LETTERS_THEN_DIGITS.match(folded) or _DIGITS_THEN_LETTERS.match(folded)
    if letters:
        alias = term_of(letters.group(1))
        if alias and alias != term:
            return (term, alias)
    return (term,)
