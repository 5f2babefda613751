"""The topic-filter language: the syntax tree (and, with issue 4, the parser).

A topic is parsed once, when it is saved, into the tree below; scoring
evaluates the tree against its index. The tree is a plain, hashable value so
identical filters of different subscribers can be evaluated once per run.

Grammar (user-facing):
    diffusion models        bare words: all must match (scoring may relax this
                            for long queries; see README)
    +word                   strictly required word
    "exact phrase"          words adjacent, in order
    quantiz*                prefix
    a OR b, a AND b         boolean operators (AND binds tighter than OR)
    NOT word, -word         exclusion
    ( ... )                 grouping
    title: abstract: author:   field scopes, on a word, phrase or group
"""

from __future__ import annotations

from dataclasses import dataclass

from digest.domain import TextField

__all__ = ["And", "Node", "Not", "Or", "Phrase", "TextField", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    """One word as typed (not yet stemmed), optionally field-scoped."""

    text: str
    field: TextField | None = None
    prefix: bool = False  # typed as `word*`
    required: bool = False  # typed as `+word`


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear adjacent and in order."""

    words: tuple[str, ...]
    field: TextField | None = None


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """All operands must match.

    `explicit` is False for bare juxtaposition (`kv cache`) and True for a typed
    `AND`: scoring may relax only the implicit kind for long queries.
    """

    operands: tuple[Node, ...]
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Word | Phrase | Not | And | Or
