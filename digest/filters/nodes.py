"""The topic-filter syntax tree: its nodes, its canonical form and its printer.

A topic is parsed once, when it is saved, into these nodes; scoring evaluates
the tree against its index. The tree is a plain, hashable value so identical
filters of different subscribers can be evaluated once per run.

The tree is kept canonical, one tree per meaning the parser can see: the
builders below collapse single-operand groups, flatten nested groups of the
same kind, drop duplicate operands and cancel double negation. `to_text`
prints that tree so that `parse(to_text(node)) == node`, which is why the
printer and the builders live together: each relies on the other's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from digest.values import TextField


@dataclass(frozen=True, slots=True)
class Word:
    """One word as typed (not yet stemmed), optionally field-scoped."""

    text: str
    field: TextField | None = None
    prefix: bool = False  # typed as `word*`
    required: bool = False  # typed as `+word`


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear adjacent and in order.

    `quoted` tells a phrase typed in quotes (`"kv cache"`: required, as `+word` is,
    even where a long topic's bare words match loosely) from one the parser made
    of a word with inner punctuation (`gpt-4`, `low-resource`), which is a word
    like any other and may be missing from a paper that carries enough of the rest.
    """

    words: tuple[str, ...]
    field: TextField | None = None
    quoted: bool = True


@dataclass(frozen=True, slots=True)
class Category:
    """`cat:cs.CL` (one arXiv category) or `cat:cs.*` (every category of an archive).

    A hard rule, like a field scope: it decides which papers may match and adds
    nothing to their score; the words rank. Papers whose source names no
    categories (page dumps, Hugging Face) are in none. `name` is spelled as arXiv
    does (the parser puts `cat:cs.cl` right), so equal filters are equal trees;
    papers' categories are still compared without case.
    """

    name: str

    def matches(self, categories: Iterable[str]) -> bool:
        wanted = self.name.casefold()
        if wanted.endswith(".*"):
            archive = wanted[:-1]  # "cs." : cs.CL, cs.LG, ... but not "csx.AB"
            return any(c.casefold().startswith(archive) for c in categories)
        return any(c.casefold() == wanted for c in categories)


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


Node = Word | Phrase | Category | Not | And | Or


def categories_only(node: Node) -> bool:
    """Whether a node asks for categories and no words (what it excludes aside):
    `cat:cs.CL`, `(cat:cs.CL OR cat:cs.IR)`, `cat:cs.* -cat:cs.CV`. Such a node is a
    hard rule with nothing to rank by."""
    if isinstance(node, Category):
        return True
    if isinstance(node, Word | Phrase | Not):
        return False
    positive = [op for op in node.operands if not isinstance(op, Not)]
    return bool(positive) and all(categories_only(op) for op in positive)


FIELDS: tuple[TextField, ...] = ("title", "abstract", "author")


def to_text(node: Node) -> str:
    """The canonical text of a tree: what `parse` turns back into the same tree."""
    if isinstance(node, Word):
        return (
            ("+" if node.required else "")
            + (f"{node.field}:" if node.field else "")
            + node.text
            + ("*" if node.prefix else "")
        )
    if isinstance(node, Phrase):
        said = '"' + " ".join(node.words) + '"' if node.quoted else "-".join(node.words)
        return (f"{node.field}:" if node.field else "") + said
    if isinstance(node, Category):
        return f"cat:{node.name}"
    if isinstance(node, Not):
        inner = node.operand
        if isinstance(inner, And | Or):
            return f"-({to_text(inner)})"
        return "-" + to_text(inner)
    if isinstance(node, Or):
        return " OR ".join(to_text(op) for op in node.operands)
    joiner = " AND " if node.explicit else " "
    parts = []
    for op in node.operands:
        # An Or, or an And of the other kind, would merge into this run unless grouped.
        grouped = isinstance(op, Or) or (isinstance(op, And) and op.explicit != node.explicit)
        parts.append(f"({to_text(op)})" if grouped else to_text(op))
    return joiner.join(parts)


# ------------------------------------------------------------ canonical builders
# (the parser builds every group through these, so the tree it returns is canonical)


def _dedupe(nodes: list[Node]) -> tuple[Node, ...]:
    return tuple(dict.fromkeys(nodes))


def make_not(node: Node | None) -> Node | None:
    """NOT of a node (None: nothing to negate); a double negation cancels."""
    if node is None:
        return None
    if isinstance(node, Not):
        return node.operand
    return Not(node)


def _flatten(operands: list[Node | None], same_kind: Callable[[Node], bool]) -> tuple[Node, ...]:
    """Operands with nested groups of the same kind spliced in, empties and repeats dropped."""
    flat: list[Node] = []
    for op in operands:
        if op is None:
            continue
        if isinstance(op, And | Or) and same_kind(op):
            flat.extend(op.operands)
        else:
            flat.append(op)
    return _dedupe(flat)


def make_and(operands: list[Node | None], explicit: bool) -> Node | None:
    """AND of the operands in canonical form (None when nothing is left)."""
    unique = _flatten(operands, lambda op: isinstance(op, And) and op.explicit == explicit)
    if len(unique) <= 1:
        return unique[0] if unique else None
    return And(unique, explicit)


def make_or(operands: list[Node | None]) -> Node | None:
    """OR of the operands in canonical form (None when nothing is left)."""
    unique = _flatten(operands, lambda op: isinstance(op, Or))
    if len(unique) <= 1:
        return unique[0] if unique else None
    return Or(unique)
