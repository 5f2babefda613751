"""What a filter means, as text to embed: one text per alternative the filter offers.

The semantic signal compares a paper's embedding with the filter's, so the
filter must first be said as text. The syntax tree drops stop words and case,
which a sentence encoder needs ("papers that question how methods are
benchmarked"), so the texts come from the filter's tokens instead:

- an exclusion (`-word`, `NOT x`) adds nothing: its meaning is not wanted;
- `OR` gives alternatives, and juxtaposition or `AND` joins them, so
  `(llm OR vlm) agents` means "llm agents" or "vlm agents": a paper close to
  either is close to the filter (the best alternative counts);
- `title:`/`abstract:` scopes, `+` and quotes are syntax, not meaning; an
  `author:` term is a name, not a subject, and adds nothing; nor does a
  `cat:` category, which is a label, not prose;
- the lead-in of an interest written as a sentence ("papers on", "anything
  about") is dropped: every candidate is a paper;
- a filter with more alternatives than MAX_ALTERNATIVES gets none: some of
  its alternatives would go unheard, and a paper matched through one of those
  would be cut for it; such a filter ranks by words alone.
"""

from __future__ import annotations

import re

from digest.errors import BadInput
from digest.filters.parser import _lex, _Token

MAX_ALTERNATIVES = 8  # `(a OR b) (c OR d) (e OR f) ...` multiplies
_LEAD_IN = re.compile(
    r"^(?:(?:papers|work|research)\s+(?:on|about|that|which)\s+"
    r"|anything\s+(?:about|on)\s+|anything\s+)",
    re.IGNORECASE,
)

Alternatives = list[list[str]]


def meaning_texts(text: str) -> tuple[str, ...]:
    """The texts a filter's meaning is embedded as, one per alternative; () if none."""
    try:
        tokens = _lex(text)
    except BadInput:
        return ()
    reader = _Reader(tokens)
    alternatives = reader.any_of()
    if reader.overflow:
        return ()
    out: dict[str, None] = {}
    for words in alternatives:
        said = _LEAD_IN.sub("", " ".join(w for w in words if w)).strip()
        if said:
            out.setdefault(" ".join(said.split()), None)
    return tuple(out)


class _Reader:
    """The filter grammar once more, keeping words as typed and dropping what is excluded."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.overflow = False  # more alternatives than MAX_ALTERNATIVES

    def peek(self) -> str:
        return self.tokens[self.at].kind

    def take(self) -> _Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def any_of(self) -> Alternatives:
        """OR: the alternatives of either side."""
        alternatives = self.all_of()
        while self.peek() == "OR":
            self.take()
            alternatives = self.capped(alternatives + self.all_of())
        return alternatives

    def capped(self, alternatives: Alternatives) -> Alternatives:
        if len(alternatives) > MAX_ALTERNATIVES:
            self.overflow = True
            return alternatives[:MAX_ALTERNATIVES]
        return alternatives

    def all_of(self) -> Alternatives:
        """Juxtaposition and AND: every combination of the parts' alternatives."""
        alternatives: Alternatives = [[]]
        while self.peek() not in ("OR", ")", "end"):
            if self.peek() == "AND":
                self.take()
                continue
            part = self.one()
            alternatives = self.capped([a + b for a in alternatives for b in part])
        return alternatives

    def one(self) -> Alternatives:
        token = self.take()
        if token.kind in ("-", "NOT"):
            self.one()  # excluded: its meaning is not the filter's
            return [[]]
        if token.kind == "field" and token.text == "author":
            self.one()  # a name, not a subject
            return [[]]
        if token.kind == "category":
            return [[]]  # a label, not prose: the encoder would read "cs.CL" as noise
        if token.kind in ("+", "field"):
            return self.one()
        if token.kind == "(":
            inner = self.any_of()
            if self.peek() == ")":
                self.take()
            return inner
        if token.kind in ("term", "phrase"):
            return [[token.text.rstrip("*")]]
        return [[]]  # a stray `)` or operator: the parser refuses such filters anyway
