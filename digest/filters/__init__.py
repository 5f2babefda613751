"""The topic-filter language: what a subscriber types → a plain, hashable syntax tree.

Owns the grammar, the tree's canonical form and the refusals (syntax errors
with a caret, filters that can never match). Scoring evaluates the trees; the
subscriber and planner stages parse the texts they store. Pure: it may import
only `digest.text`, `digest.values` and `digest.errors` — no session, no
clock, no network.

    nodes.py    the tree (Word, Phrase, Category, Not, And, Or), its canonical builders, `to_text`
    parser.py   text → tree: lexer and recursive-descent parser, syntax errors with a caret
    checks.py   refusals of trees that can never match a paper (empty, only NOT, contradictions)
    meaning.py  what a filter means, as texts to embed (one per alternative)

Callers outside the package import from here: `from digest.filters import parse, Node`.
"""

from digest.filters.checks import check_matchable, operator_hints
from digest.filters.meaning import meaning_texts
from digest.filters.nodes import (
    FIELDS,
    And,
    Category,
    Node,
    Not,
    Or,
    Phrase,
    Word,
    categories_only,
    to_text,
)
from digest.filters.parser import MAX_QUERY_LENGTH, parse, parse_tree
from digest.values import TextField

__all__ = [
    "FIELDS",
    "MAX_QUERY_LENGTH",
    "And",
    "Category",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "TextField",
    "Word",
    "categories_only",
    "check_matchable",
    "meaning_texts",
    "operator_hints",
    "parse",
    "parse_tree",
    "to_text",
]
