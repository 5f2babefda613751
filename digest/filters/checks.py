"""Can a filter ever select a paper? The refusals `parse` adds to the grammar.

A filter that parses can still never match: empty or only stop words (nothing
left to search for), only exclusions (it would match nearly every paper,
which is not a topic), or a word both asked for and excluded. One that mixes,
as alternatives of one OR, categories alone and words is refused too: the
words rank, so papers that only the category let in would have nothing to
rank by and never be sent. Saying so when
the topic is saved, with the reason, beats a digest that is always empty or
always full. Only `parse` applies these; `parse_tree` checks the syntax alone.
"""

from __future__ import annotations

import re

from digest.errors import BadInput
from digest.filters.nodes import (
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
from digest.text import is_stop_word, words

__all__ = ["check_matchable", "operator_hints"]

_QUOTED = re.compile(r'"[^"]*"?')
_LOWER_OPERATOR = re.compile(r"(?<![\w:-])(not|or|and|Not|Or|And)(?![\w])")


def operator_hints(text: str) -> list[str]:
    """Notes for operators typed in lower case, which the grammar reads as ordinary words.

    `diffusion not video` searches for "diffusion" and "video" (`not` is a common
    word, dropped): the opposite of what was meant, and nothing says so. A filter
    with such a word still works as the README describes; these notes say how to
    write the operator that was probably meant.
    """
    found = dict.fromkeys(m.group(1) for m in _LOWER_OPERATOR.finditer(_QUOTED.sub(" ", text)))
    notes = []
    for word in found:
        upper = word.upper()
        if upper == "NOT":
            notes.append(
                f"{word!r} is an ordinary word here: to leave out papers with a word, "
                "write NOT word or -word"
            )
        else:
            notes.append(f"{word!r} is an ordinary word here: operators are upper case ({upper})")
    return notes


def check_matchable(node: Node | None, text: str) -> None:
    """Refuse a tree that can never select a paper, saying why."""
    if node is None:
        if not text.strip():
            raise BadInput("the topic filter is empty: type the words papers should contain")
        dropped = sorted({w for w in words(text) if is_stop_word(w)})
        detail = f" ({', '.join(dropped)})" if dropped else ""
        raise BadInput(
            f"nothing to search for in {text!r}: it has only common words{detail} or "
            "punctuation, which are ignored. Add a word that says what the papers are "
            'about, or quote a phrase ("the of") to keep common words. Operators are '
            "UPPERCASE: OR, AND, NOT."
        )
    problem = _never_matches(node)
    if problem:
        raise BadInput(f"the topic filter {text!r} can never match a paper: {problem}")
    mixed = _mixed_or(node)
    if mixed:
        raise BadInput(
            f"in the topic filter {text!r}, {mixed!r} is an OR alternative with no words: "
            "its papers would have nothing to rank by next to the others'. Make it a topic "
            "of its own, or give it words, as in (cat:cs.CL retrieval) OR rerank*"
        )


def _positive(node: Node) -> bool:
    """Whether the node asks for something to be present (not only absent)."""
    if isinstance(node, Word | Phrase | Category):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_positive(op) for op in node.operands)
    return all(_positive(op) for op in node.operands)


def _never_matches(node: Node) -> str | None:
    if not _positive(node):
        if isinstance(node, Or):
            branch = next(op for op in node.operands if not _positive(op))
            return (
                f"every alternative of OR needs a word to look for, but {to_text(branch)!r} "
                "only excludes (it would match nearly every paper)"
            )
        return "it only excludes words; add at least one word to look for, e.g. 'diffusion -video'"
    return _contradiction(node)


def _mixed_or(node: Node) -> str | None:
    if isinstance(node, Word | Phrase | Category | Not):
        return None
    if isinstance(node, Or):
        # (every alternative asks for something by now: `_never_matches` came first)
        bare = [op for op in node.operands if categories_only(op)]
        if bare and len(bare) < len(node.operands):
            return to_text(bare[0])
    for op in node.operands:
        found = _mixed_or(op)
        if found:
            return found
    return None


def _contradiction(node: Node) -> str | None:
    if isinstance(node, Word | Phrase | Category):
        return None
    if isinstance(node, Not):
        return _contradiction(node.operand)
    if isinstance(node, And):
        present = set(node.operands)
        for op in node.operands:
            if isinstance(op, Not) and op.operand in present:
                wanted = to_text(op.operand)
                return f"it asks for {wanted!r} and excludes it ({to_text(op)!r})"
    for op in node.operands:
        found = _contradiction(op)
        if found:
            return found
    return None
