"""The topic-filter language: text → syntax tree, or an error with a caret.

Grammar (user-facing; the README's "Topic filters" section is the manual):
    diffusion models        bare words: all must match (scoring may relax this
                            for long queries; see README)
    +word                   strictly required word (also keeps a stop word)
    "exact phrase"          words adjacent, in order
    quantiz*                prefix (at least 3 letters)
    a OR b, a AND b         boolean operators, UPPERCASE only: lowercase
                            `or`/`and`/`not` are ordinary (stop) words
    NOT word, -word         exclusion
    ( ... )                 grouping
    title: abstract: author:   field scopes, on a word, phrase or group
    cat:cs.CL  cat:cs.*     an arXiv category (or every category of an archive):
                            a hard rule, like a field; the words rank

Precedence: NOT/- binds tightest, then AND and juxtaposition (one level: a run
`a b AND c` is a single explicit And of three operands), then OR.

Words are those of `digest.text.words` (case-folded, not stemmed; stemming and
acronyms are scoring's job). A bare token that holds several words
(`gpt-4`, `state-of-the-art`) becomes a phrase. Bare stop words are dropped
unless quoted, `+`-required or directly field-scoped (`author:will`).

Syntax errors carry their position (`QuerySyntaxError` prints the filter with a
caret under it). `parse` also refuses, with the reason, a filter that parses
but can never match a paper (`checks.py`). The tree itself, its canonical
form and its printer are `nodes.py`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from digest.errors import BadInput, QuerySyntaxError
from digest.filters.checks import check_matchable
from digest.filters.nodes import (
    FIELDS,
    Category,
    Node,
    Phrase,
    Word,
    make_and,
    make_not,
    make_or,
)
from digest.text import is_stop_word, words
from digest.values import TextField, arxiv_category

__all__ = ["MAX_QUERY_LENGTH", "parse", "parse_tree"]

_FIELD_NAMES: dict[str, TextField] = {name: name for name in FIELDS}
MAX_QUERY_LENGTH = 1000
MIN_PREFIX_LENGTH = 3  # `a*` would match half the vocabulary
MAX_DEPTH = 24  # nested groups / negations; keeps recursion far from Python's limit
_OPERATORS = frozenset(["OR", "AND", "NOT"])
_FIELD_PREFIX = re.compile(r"([^\W\d_]+):")
_CATEGORY = "cat"
# Control characters, invisible format characters (bidi overrides, zero-width
# joiners) and lone surrogates (undecodable argv bytes) have no place in a filter.
_FORBIDDEN_CATEGORIES = frozenset(["Cc", "Cf", "Cs"])


# --------------------------------------------------------------------------- API


def parse(text: str) -> Node:
    """Parse a topic filter as typed by a user; refuse one that can never match.

    Raises `QuerySyntaxError` (with the position) for text that does not parse
    and `BadInput` for a filter that is too long, holds control characters, or
    could never match a paper (empty, only stop words, only exclusions, a word
    both required and excluded).
    """
    node = parse_tree(text)
    check_matchable(node, text)
    assert node is not None  # check_matchable refuses None
    return node


def parse_tree(text: str) -> Node | None:
    """The syntax tree of `text`, or None when nothing is left to search for.

    Only checks syntax (and length / characters); `parse` adds the can-match
    check. None means the text had no words once stop words and punctuation
    were dropped.
    """
    _check_characters(text)
    return _Parser(text, _lex(text)).parse()


# ------------------------------------------------------------------------- lexer


def _check_characters(text: str) -> None:
    if len(text) > MAX_QUERY_LENGTH:
        raise BadInput(
            f"the topic filter is {len(text)} characters long; the limit is "
            f"{MAX_QUERY_LENGTH}. Split it into several topics."
        )
    for index, char in enumerate(text):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            kind = "a line break" if char in "\r\n" else f"the control character {char!r}"
            raise BadInput(
                f"the topic filter contains {kind} at position {index + 1}; "
                "a topic is one line of plain text"
            )


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # ( ) phrase term field category OR AND NOT - + end
    pos: int
    text: str = ""


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, i))
            i += 1
        elif char == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError("unclosed quote", query, i)
            tokens.append(_Token("phrase", i, query[i + 1 : end]))
            i = end + 1
        elif char in "+-":
            following = query[i + 1] if i + 1 < n else " "
            if not following.isspace() and following != ")":
                tokens.append(_Token(char, i))
            # else: a lone sign, as in "diffusion - video", is punctuation.
            i += 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in '()"':
                j += 1
            run = query[i:j]
            field = _FIELD_PREFIX.match(run)
            if run in _OPERATORS:
                tokens.append(_Token(run, i))
                i = j
            elif field and field[1].casefold() == _CATEGORY:
                tokens.append(_category(query, i, run[len(field[0]) :]))
                i = j
            elif field:
                name = field[1].casefold()
                if name not in FIELDS:
                    raise QuerySyntaxError(
                        f"unknown field {field[1]}: (fields are title:, abstract:, author:, "
                        "and cat: for arXiv categories; put text with a colon in quotes)",
                        query,
                        i,
                    )
                tokens.append(_Token("field", i, name))
                i += len(field[0])
            else:
                tokens.append(_Token("term", i, run))
                i = j
    tokens.append(_Token("end", n))
    return tokens


def _category(query: str, at: int, name: str) -> _Token:
    """The token of `cat:NAME`: one arXiv category, or `archive.*` for all of an archive,
    spelled as arXiv does (`cat:cs.cl` is `cat:cs.CL`)."""
    if not name:
        raise QuerySyntaxError(
            "cat: must be followed by an arXiv category, as in cat:cs.CL or cat:cs.*", query, at
        )
    try:
        category = arxiv_category(name)
    except BadInput as exc:
        raise QuerySyntaxError(str(exc), query, at + len(_CATEGORY) + 1) from None
    return _Token("category", at, category)


# ------------------------------------------------------------------------ parser

_STOPS_TERM = frozenset(["OR", "AND", ")", "end"])
_DESCRIBE = {
    "OR": "OR",
    "AND": "AND",
    "NOT": "NOT",
    ")": "')'",
    "end": "the end of the filter",
    "-": "'-'",
    "+": "'+'",
    "field": "a field scope",
}


class _Parser:
    """Recursive descent over the tokens; each level returns None for "nothing left"."""

    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.index = 0

    def error(self, message: str, position: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.query, position)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node | None:
        if self.peek().kind == "end":
            return None
        node = self.or_expr(None, 0)
        token = self.peek()
        if token.kind == ")":
            raise self.error("unmatched ')'", token.pos)
        return node

    def or_expr(self, field: TextField | None, depth: int) -> Node | None:
        operands = [self.and_expr(field, depth)]
        while self.peek().kind == "OR":
            operator = self.advance()
            if self.peek().kind in _STOPS_TERM:
                raise self.error("OR needs a term on its right", operator.pos)
            operands.append(self.and_expr(field, depth))
        return make_or(operands)

    def and_expr(self, field: TextField | None, depth: int) -> Node | None:
        token = self.peek()
        if token.kind in ("OR", "AND"):
            raise self.error(f"{token.kind} needs a term on its left", token.pos)
        operands = [self.unary(field, depth)]
        explicit = False
        while True:
            token = self.peek()
            if token.kind in ("OR", ")", "end"):
                break
            if token.kind == "AND":
                self.advance()
                explicit = True
                if self.peek().kind in _STOPS_TERM:
                    raise self.error("AND needs a term on its right", token.pos)
            operands.append(self.unary(field, depth))
        return make_and(operands, explicit)

    def unary(self, field: TextField | None, depth: int) -> Node | None:
        token = self.peek()
        if depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep", token.pos)
        if token.kind in ("NOT", "-"):
            self.advance()
            following = self.peek()
            if following.kind in _STOPS_TERM:
                raise self.error(f"{token.kind} needs a term after it", token.pos)
            return make_not(self.unary(field, depth + 1))
        if token.kind == "+":
            self.advance()
            return self.scoped(field, depth, plus=token)
        return self.scoped(field, depth, plus=None)

    def scoped(self, field: TextField | None, depth: int, plus: _Token | None) -> Node | None:
        token = self.peek()
        direct = False
        if token.kind == "field":
            self.advance()
            if field is not None and token.text != field:
                raise self.error(
                    f"{token.text}: inside {field}:( ... ): a term has one field only",
                    token.pos,
                )
            field = _FIELD_NAMES[token.text]  # the lexer let only known fields through
            direct = True
            following = self.peek()
            if following.kind not in ("term", "phrase", "("):
                raise self.error(
                    f'{token.text}: must be followed by a word, a "phrase" or ( ... )',
                    token.pos,
                )
        return self.primary(field, depth, plus=plus, keep_stop_word=direct or plus is not None)

    def primary(
        self,
        field: TextField | None,
        depth: int,
        *,
        plus: _Token | None,
        keep_stop_word: bool,
    ) -> Node | None:
        token = self.advance()
        if token.kind == "(":
            if plus is not None:
                raise self.error(
                    "+ applies to one word or phrase; put + before words inside the group",
                    plus.pos,
                )
            if self.peek().kind == ")":
                raise self.error("empty parentheses", token.pos)
            node = self.or_expr(field, depth + 1)
            if self.peek().kind != ")":
                raise self.error("unclosed parenthesis", token.pos)
            self.advance()
            return node
        if token.kind == "phrase":
            phrase_words = tuple(words(token.text))
            if not phrase_words:
                raise self.error("the quotes hold no words", token.pos)
            return Phrase(phrase_words, field)
        if token.kind == "term":
            return self.term(token, field, required=plus is not None, keep_stop_word=keep_stop_word)
        if token.kind == "category":
            if field is not None:
                raise self.error(f"cat: inside {field}:( ... ): a category is not text", token.pos)
            return Category(token.text)  # required or not, a category is a hard rule
        if plus is not None:
            raise self.error("+ must be followed by a word or a phrase", plus.pos)
        found = _DESCRIBE[token.kind]
        raise self.error(f"expected a word, phrase or ( here, not {found}", token.pos)

    def term(
        self, token: _Token, field: TextField | None, *, required: bool, keep_stop_word: bool
    ) -> Node | None:
        raw = token.text
        prefix = raw.endswith("*")
        core = raw[:-1] if prefix else raw
        star = core.find("*")
        if star >= 0:
            raise self.error("* can only end a word, as in quantiz*", token.pos + star)
        found = words(core)
        if prefix:
            if len(found) != 1:
                raise self.error("* needs exactly one word before it, as in quantiz*", token.pos)
            if len(found[0]) < MIN_PREFIX_LENGTH:
                raise self.error(
                    f"prefix {found[0]}* is too short: give at least {MIN_PREFIX_LENGTH} letters",
                    token.pos,
                )
            return Word(found[0], field, prefix=True, required=required)
        if not found:
            return None  # punctuation only, such as "&" or "--"
        if len(found) > 1:
            return Phrase(tuple(found), field, quoted=False)  # gpt-4, state-of-the-art
        if is_stop_word(found[0]) and not keep_stop_word:
            return None
        return Word(found[0], field, required=required)
