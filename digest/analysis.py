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
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

from digest.text import STOP_WORDS

__all__ = ["Token", "analyse", "is_indexed", "stem", "term_of"]

_STEMMER = Stemmer.Stemmer("english")

# A word, or a hyphenated compound of words ("near-lossless", "GPT-4o").
_COMPOUND = re.compile(r"[^\W_]+(?:[-‐‑][^\W_]+)*", re.UNICODE)
_PART = re.compile(r"[^\W_]+", re.UNICODE)
_LETTERS_THEN_DIGITS = re.compile(r"^([^\W\d_]{3,})\d+[^\W\d_]?$")  # llama2, gpt4o
_DIGITS_THEN_LETTERS = re.compile(r"^\d+(?:[.,]\d+)?([^\W\d_]{3,})$")  # 1times, 4bit

_VOWEL = re.compile(r"[aeiouy]")

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


@dataclass(frozen=True, slots=True)
class Token:
    """One index term at a word position, with the character span it came from.

    Several tokens can share a position (a compound's joined form, a word's
    letter part).
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


def is_indexed(word: str) -> bool:
    """Whether a word can match anything (stop words and markup cannot)."""
    return term_of(word) != ""


def analyse(text: str) -> list[Token]:
    """Tokens of a field's text, positions counted over all words (stop words too)."""
    out: list[Token] = []
    position = 0
    for compound in _COMPOUND.finditer(text):
        start = compound.start()
        if start > 0 and text[start - 1] == "\\" and compound.group().casefold() in LATEX_DEBRIS:
            continue  # \mathcal, \frac: a command, not a word
        parts = list(_PART.finditer(compound.group()))
        first = position
        for part in parts:
            _emit(out, part.group(), position, start + part.start(), start + part.end())
            position += 1
        if len(parts) > 1:
            joined = term_of("".join(p.group() for p in parts))
            if joined:
                out.append(Token(joined, first, compound.start(), compound.end()))
    return out


def _emit(out: list[Token], word: str, position: int, start: int, end: int) -> None:
    term = term_of(word)
    if not term:
        return
    out.append(Token(term, position, start, end))
    folded = word.casefold()
    letters = _LETTERS_THEN_DIGITS.match(folded) or _DIGITS_THEN_LETTERS.match(folded)
    if letters:
        alias = term_of(letters.group(1))
        if alias and alias != term:
            out.append(Token(alias, position, start, end))
