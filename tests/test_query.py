"""The topic-filter language: grammar, canonical printing, refusals."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from digest.errors import BadInput, QuerySyntaxError
from digest.filters import (
    MAX_QUERY_LENGTH,
    And,
    Node,
    Not,
    Or,
    Phrase,
    Word,
    parse,
    parse_tree,
    to_text,
)
from digest.text import STOP_WORDS, words


def w(text: str, **kwargs: object) -> Word:
    return Word(text, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------- the grammar


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("diffusion", w("diffusion")),
        ("Diffusion MODELS", And((w("diffusion"), w("models")))),
        ("diffusion of models", And((w("diffusion"), w("models")))),
        ("+the diffusion", And((w("the", required=True), w("diffusion")))),
        ("quantiz*", w("quantiz", prefix=True)),
        ('"kv cache"', Phrase(("kv", "cache"))),
        ('"state of the art"', Phrase(("state", "of", "the", "art"))),
        ("gpt-4 vision", And((Phrase(("gpt", "4"), quoted=False), w("vision")))),
        ("llm OR vlm", Or((w("llm"), w("vlm")))),
        ("llm AND vlm", And((w("llm"), w("vlm")), explicit=True)),
        # One level for AND and juxtaposition: a typed AND makes the whole run explicit.
        ("kv cache AND llm", And((w("kv"), w("cache"), w("llm")), explicit=True)),
        # AND binds tighter than OR; NOT tighter than both.
        (
            "a1 b1 OR c1 AND d1",
            Or((And((w("a1"), w("b1"))), And((w("c1"), w("d1")), explicit=True))),
        ),
        ("x1 NOT y1", And((w("x1"), Not(w("y1"))))),
        ('x1 -y1 -"z z"', And((w("x1"), Not(w("y1")), Not(Phrase(("z", "z")))))),
        ("(llm OR vlm) agents", And((Or((w("llm"), w("vlm"))), w("agents")))),
        ("((llm))", w("llm")),
        ("title:diffusion", w("diffusion", field="title")),
        ("Title: diffusion", w("diffusion", field="title")),
        ('abstract:"kv cache"', Phrase(("kv", "cache"), field="abstract")),
        (
            "author:(hinton OR lecun)",
            Or((w("hinton", field="author"), w("lecun", field="author"))),
        ),
        ("+title:diffusion", w("diffusion", field="title", required=True)),
        ("-author:smith robots", And((Not(w("smith", field="author")), w("robots")))),
        # Stop words: dropped when bare, kept when scoped, required or quoted.
        ("author:will robots", And((w("will", field="author"), w("robots")))),
        ("title:(the robots)", w("robots", field="title")),
        # Lowercase operators are words (stop words, here).
        ("llm or vlm", And((w("llm"), w("vlm")))),
        ("llm not vlm", And((w("llm"), w("vlm")))),
        # Canonical forms: flattening, dedupe, double negation.
        ("(a1 b1) c1", And((w("a1"), w("b1"), w("c1")))),
        ("(a1 AND b1) c1", And((And((w("a1"), w("b1")), explicit=True), w("c1")))),
        ("x1 OR (y1 OR z1)", Or((w("x1"), w("y1"), w("z1")))),
        ("llm llm LLM", w("llm")),
        ("x1 -(-y1)", And((w("x1"), w("y1")))),
        ("x1 NOT -y1", And((w("x1"), w("y1")))),
        ("diffusion - video", And((w("diffusion"), w("video")))),
    ],
)
def test_parses(text: str, tree: Node) -> None:
    assert parse(text) == tree


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ('"diffusion models', "unclosed quote", 0),
        ("llm (agents OR tools", "unclosed parenthesis", 4),
        ("llm agents)", "unmatched ')'", 10),
        ("()", "empty parentheses", 0),
        ('llm ""', "the quotes hold no words", 4),
        ("OR llm", "OR needs a term on its left", 0),
        ("llm OR", "OR needs a term on its right", 4),
        ("llm AND AND vlm", "AND needs a term on its right", 4),
        ("llm NOT", "NOT needs a term after it", 4),
        ("foo:bar", "unknown field foo:", 0),
        ("title:", "title: must be followed", 0),
        ("title:(llm author:smith)", "a term has one field only", 11),
        ("qu*ant", "* can only end a word", 2),
        ("ab*", "prefix ab* is too short", 0),
        ("gpt-4*", "* needs exactly one word", 0),
        ("+(llm vlm)", "+ applies to one word or phrase", 0),
        ("(" * 40 + "llm" + ")" * 40, "nested more than", 25),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(text)
    assert message in caught.value.reason
    assert caught.value.position == position
    shown = str(caught.value).splitlines()
    assert shown[1] == f"  {text}"
    assert shown[2] == "  " + " " * position + "^"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("the of and", "only common words (and, of, the)"),
        ("-video", "only excludes"),
        ("NOT video NOT audio", "only excludes"),
        ("llm OR -video", "every alternative of OR"),
        ("llm -llm", "asks for 'llm' and excludes it"),
        ("x" * (MAX_QUERY_LENGTH + 1), "limit is 1000"),
        ("llm\nagents", "line break at position 4"),
        ("llm\x00", "control character"),
        ("llm\u202eagents", "control character"),
    ],
)
def test_refuses_filters_that_can_never_match(text: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse(text)
    assert not isinstance(caught.value, QuerySyntaxError)
    assert message in str(caught.value)


def test_a_thousand_characters_is_still_fine() -> None:
    text = " ".join(["diffusion"] * 100)[:MAX_QUERY_LENGTH]
    assert len(text) <= MAX_QUERY_LENGTH
    assert parse(text) == w("diffusion")


def test_trees_are_hashable_values() -> None:
    assert hash(parse("llm agents")) == hash(parse("LLM  agents"))
    assert {parse("a1 OR b1"), parse("a1 OR b1")} == {parse("a1 OR b1")}


# ---------------------------------------------------------- property tests

_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzäéß0123456789"))
_word = st.text(_ALPHABET, min_size=1, max_size=8).filter(lambda t: words(t) == [t])
_fields = st.sampled_from([None, "title", "abstract", "author"])


@st.composite
def _words_(draw: st.DrawFn) -> Word:
    text = draw(_word | st.sampled_from(sorted(STOP_WORDS)))
    prefix = draw(st.booleans()) if len(text) >= 3 else False
    required = draw(st.booleans())
    field = draw(_fields)
    # A bare stop word is dropped by the parser; the canonical tree never holds one.
    assume(not (text in STOP_WORDS and not prefix and not required and field is None))
    return Word(text, field, prefix=prefix, required=required)


_phrases = st.builds(
    Phrase,
    st.lists(_word | st.sampled_from(["the", "of", "and"]), min_size=1, max_size=4).map(tuple),
    _fields,
)
_leaves: st.SearchStrategy[Node] = _words_() | _phrases


def _unique(nodes: list[Node]) -> tuple[Node, ...]:
    return tuple(dict.fromkeys(nodes))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def make_and(explicit: bool) -> st.SearchStrategy[Node]:
        def build(nodes: list[Node]) -> Node:
            flat: list[Node] = []
            for node in nodes:
                flat.extend(
                    node.operands if isinstance(node, And) and node.explicit == explicit else [node]
                )
            operands = _unique(flat)
            assume(len(operands) >= 2)
            return And(operands, explicit)

        return st.lists(children, min_size=2, max_size=4).map(build)

    def make_or(nodes: list[Node]) -> Node:
        flat: list[Node] = []
        for node in nodes:
            flat.extend(node.operands if isinstance(node, Or) else [node])
        operands = _unique(flat)
        assume(len(operands) >= 2)
        return Or(operands)

    def make_not(node: Node) -> Node:
        return node.operand if isinstance(node, Not) else Not(node)

    return (
        make_and(False)
        | make_and(True)
        | st.lists(children, min_size=2, max_size=4).map(make_or)
        | children.map(make_not)
    )


canonical_trees = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=250, suppress_health_check=[HealthCheck.filter_too_much])
@given(canonical_trees)
def test_printing_then_parsing_gives_the_same_tree(tree: Node) -> None:
    text = to_text(tree)
    assert parse_tree(text) == tree
    try:
        assert parse(text) == tree
    except BadInput as refused:  # only the can-never-match check may refuse it
        assert not isinstance(refused, QuerySyntaxError)


@settings(max_examples=100)
@given(canonical_trees)
def test_canonical_text_is_a_fixed_point(tree: Node) -> None:
    text = to_text(tree)
    reparsed = parse_tree(text)
    assert reparsed is not None
    assert to_text(reparsed) == text


_query_chars = st.sampled_from(list("abc xyz()\"+-*:ORANDNOT'!&é\n\t\x00\u202e")) | st.characters()


@settings(max_examples=500)
@given(st.text(_query_chars, max_size=60) | st.text(max_size=60))
def test_arbitrary_text_never_raises_anything_unexpected(text: str) -> None:
    try:
        tree = parse(text)
    except BadInput:
        return
    # Whatever parses prints to a text that parses to the same tree.
    assert parse(to_text(tree)) == tree


def test_readme_examples_parse() -> None:
    """Every filter in the README's table of examples is one the parser accepts."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Topic filters", 1)[1].split("\n## ", 1)[0]
    examples = [
        code
        for row in section.splitlines()
        if row.startswith("| `")
        for code in re.findall(r"`([^`]+)`", row.split(" | ")[0])
    ]
    assert len(examples) >= 12
    for example in examples:
        parse(example)
    assert parse("llm agents OR robot*") == parse("(llm agents) OR robot*")
    for quoted in re.findall(r"-t '([^']+)'", section):
        parse(quoted)
