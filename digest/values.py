"""Plain values that cross stage boundaries: ingest → scoring → planner → render.

The pure stages (`query`, `scoring`, `render`) take and return these, never ORM
objects or sessions, so they can be tested and benchmarked without a database.
The words a subscriber's schedule is written in (weekday names, IANA time
zones) are here too, because the settings, the subscriber operations, the web
pages and the schedule math all read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, NamedTuple, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import BadInput

TextField = Literal["title", "abstract", "author"]


class CrlfBytes(bytes):
    """A message whose every line already ends in CRLF (no bare LF, no lone CR), as
    `digest.email.mime.build_message_bytes` writes it. The SMTP mailer checks the line
    ends of any other bytes before DATA (two counts and a search over every byte of
    every message); these it can send as they are."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class PaperText:
    """What the scorer sees of one candidate paper."""

    paper_id: int
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    upvotes: int | None = None
    categories: tuple[str, ...] = ()  # arXiv's, primary first; none from other sources


@dataclass(frozen=True, slots=True)
class VotedPaper:
    """A paper a reader voted on, as what scoring learns from: its text and stored vector."""

    paper_id: int
    title: str
    abstract: str
    vector: bytes | None = None  # float32 embedding, when the semantic signal stored one


@dataclass(frozen=True, slots=True)
class TopicVotes:
    """One subscriber's votes on one topic: the papers they want more and less of."""

    liked: tuple[VotedPaper, ...] = ()
    disliked: tuple[VotedPaper, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.liked or self.disliked)


@dataclass(frozen=True, slots=True)
class TopicQuery:
    """One of a subscriber's topics, parsed: what the scorer evaluates.

    `query` is a `digest.filters.Node`; typed loosely here to keep this module
    free of the parser.
    """

    topic_id: int
    label: str  # the topic's label, else its query text
    query: Any
    meaning: tuple[str, ...] = ()  # the filter's meaning texts, for the semantic signal
    votes: TopicVotes | None = None  # the subscriber's votes on this topic, if any


class MatchedTerm(NamedTuple):
    """One place a query term matched, for highlighting and explanations.

    `start`/`end` are character offsets into the paper's `field` text
    (for `author`, into the authors joined with ", "). `via` names the
    expansion used, e.g. "LLM → large language model", or is None.

    A named tuple: scoring makes one per matched span of every hit, and a tuple is
    cheap to build. (Unlike a plain tuple, a named tuple stays tracked by the garbage
    collector, as the dataclass was: CPython untracks exact tuples only.)
    """

    term: str
    field: TextField
    start: int
    end: int
    via: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "via": self.via,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatchedTerm:
        return cls(data["term"], data["field"], data["start"], data["end"], data.get("via"))


class Hit(NamedTuple):
    """One paper a topic filter selects (above its cut-off), with its score and why.

    A named tuple of plain values: scoring makes one per selected paper per distinct
    filter, and every Pick of that paper refers to it.
    """

    paper_id: int
    score: float
    matched: tuple[MatchedTerm, ...]
    parts: Mapping[str, float]


class Pick(NamedTuple):
    """A paper chosen for a subscriber: which topic chose it, how well, and why.

    The filter's Hit plus what is the subscriber's own (their topic, the rank in
    their digest). Subscribers who share a filter share its Hit: a planning run
    makes one Pick per chosen paper per subscriber (~10^6 for 100,000 subscribers),
    so a Pick is three references, built from a ready tuple (bench/scoring.py).
    """

    hit: Hit
    topic_id: int
    rank: int

    @property
    def paper_id(self) -> int:
        return self.hit.paper_id

    @property
    def score(self) -> float:
        return self.hit.score

    @property
    def matched(self) -> tuple[MatchedTerm, ...]:
        return self.hit.matched

    @property
    def parts(self) -> Mapping[str, float]:
        return self.hit.parts


@dataclass(frozen=True, slots=True)
class PaperCard:
    """One paper as an email shows it."""

    title: str
    url: str
    abstract: str
    authors: tuple[str, ...]
    topic_label: str
    score: float
    arxiv_id: str | None = None
    upvotes: int | None = None
    matched: tuple[MatchedTerm, ...] = ()
    # what the reader's votes had to do with it, e.g. "like 2 papers you liked"
    why: str = ""
    code_url: str | None = None  # the code repository, when the source named one
    on_hf: bool = False  # listed on Hugging Face's daily papers (it has a page there)
    # the signed "More like this" / "Less like this" links (a recorded digest only)
    more_url: str | None = None
    less_url: str | None = None


@dataclass(frozen=True, slots=True)
class DigestView:
    """Everything needed to render one digest email, and nothing that needs a database.

    Built from a `digests` row (delivery, view-in-browser) or from an unsaved
    plan (preview); rendering the same view twice gives the same message.
    """

    email: str
    period: str  # "2026-11-22" or "2026-W47"
    issued_at: datetime  # planning time (UTC); the Date header
    message_id: str  # with angle brackets: "<...@domain>"
    topics: tuple[str, ...]  # labels (or queries) of all the subscriber's topics
    papers: tuple[PaperCard, ...]  # best first
    unsubscribe_url: str
    manage_url: str
    view_url: str | None = None
    unsubscribe_mailto: str | None = None  # "mailto:...?subject=unsubscribe"


# --- what a source read from one dump (sources → ingest → store) ---


@dataclass(frozen=True, slots=True)
class ParsedPaper:
    """One listing of a paper in a dump, as the source told it."""

    title: str
    abstract: str
    line: int = 0  # 1-based line (text dumps) or 1-based item number (JSON) of the listing
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    url: str | None = None
    upvotes: int | None = None
    published_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    withdrawn: bool = False  # the source says the paper was withdrawn: it is never stored


@dataclass(frozen=True, slots=True)
class ParsedDump:
    """What a source read from one dump, before anything is stored.

    `month_day` is a date line without a year (text dumps); `issue_date` a full
    date the source itself knows (the Hugging Face day). Ingest turns either
    into the dump's issue date.
    """

    source: str  # "text", "hf" or "arxiv"
    papers: tuple[ParsedPaper, ...]
    month_day: tuple[int, int] | None = None
    issue_date: date | None = None
    warnings: tuple[str, ...] = ()
    # listings the source read and left out on purpose (arXiv `replace` announcements:
    # new versions of old papers); reported as skipped
    unlisted: int = 0


# --- arXiv categories (settings, the arXiv source, the CLI, `cat:` in filters) ---

ARXIV_CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]+(?:-[a-z]+)?)?")
"""`cs.CL`, `stat.ML`, `hep-th`, `astro-ph.GA`, `cond-mat.str-el`: archive, then subject class."""

# arXiv's archives today. Those in the first set are divided into subject classes
# (`cs.CL`); the others are categories on their own (`hep-th`). A name outside these
# is a typo (`cat:retrieval`, `cs.CL` typed `cs,CL`), and would match or fetch nothing.
ARXIV_DIVIDED = frozenset(
    [
        *("astro-ph", "cond-mat", "cs", "econ", "eess", "math"),
        *("nlin", "physics", "q-bio", "q-fin", "stat"),
    ]
)
ARXIV_WHOLE = frozenset(
    [
        *("gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th"),
        *("math-ph", "nucl-ex", "nucl-th", "quant-ph"),
    ]
)
_LOWER_CLASSES = frozenset(["cond-mat", "physics"])  # cond-mat.str-el, physics.optics


def arxiv_category(name: str) -> str:
    """One category as arXiv spells it (`CS.cl` → `cs.CL`; `cs.*` for a whole archive);
    BadInput saying what is wrong with one that is not arXiv's.

    arXiv's names are case-sensitive (a feed of `cs.cl` is empty), so the case is
    put right rather than kept as typed: archives in lower case, subject classes in
    upper case but for cond-mat's and physics' (`cond-mat.str-el`).
    """
    archive, dot, rest = name.partition(".")
    archive = archive.lower()
    if not ARXIV_CATEGORY.fullmatch(archive) and archive:
        raise BadInput(_not_a_category(name))
    if archive not in ARXIV_DIVIDED | ARXIV_WHOLE:
        raise BadInput(_not_a_category(name, f"no arXiv archive is called {archive!r}"))
    if not dot:
        if archive in ARXIV_DIVIDED:
            raise BadInput(
                f"{name!r} is an arXiv archive, not a category: write {archive}.* for all of "
                f"it, or one category such as {archive}.XX"
            )
        return archive
    if archive in ARXIV_WHOLE:
        raise BadInput(_not_a_category(name, f"{archive} has no subject classes"))
    if rest == "*":
        return f"{archive}.*"
    if not ARXIV_CATEGORY.fullmatch(f"{archive}.{rest}".lower()):
        raise BadInput(_not_a_category(name))
    return f"{archive}.{rest.lower() if archive in _LOWER_CLASSES else rest.upper()}"


def _not_a_category(name: str, why: str = "") -> str:
    said = f"{why}; " if why else ""
    return f"not an arXiv category: {name!r} ({said}categories look like cs.CL, stat.ML, hep-th)"


def arxiv_categories(text: str) -> tuple[str, ...]:
    """`"cs.CL, cs.LG"` → `("cs.CL", "cs.LG")`, spelled as arXiv does; BadInput naming the
    first that is not one. (`archive.*` is for filters only: feeds are per category.)"""
    found: list[str] = []
    for part in text.replace("+", ",").split(","):
        name = part.strip()
        if not name:
            continue
        category = arxiv_category(name)
        if category.endswith(".*"):
            raise BadInput(f"{name!r}: name the categories to fetch, e.g. cs.CL,cs.LG")
        if category not in found:
            found.append(category)
    return tuple(found)


# --- the words of a schedule (settings, subscribers, web, schedule math) ---

Frequency = Literal["daily", "weekly"]
FREQUENCIES: tuple[Frequency, ...] = get_args(Frequency)
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
"""Weekday names by number, as stored in `subscribers.weekday`: 0 is Monday."""


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone `name`; BadInput if this machine's tz database does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        near = zone_suggestions(name)
        hint = f"did you mean {' or '.join(repr(z) for z in near)}?" if near else ""
        raise BadInput(
            f"unknown timezone {name!r}: "
            + (hint or "use an IANA name such as 'Europe/Berlin' or 'UTC'")
        ) from None


def zone_suggestions(name: str, most: int = 3) -> list[str]:
    """Known zones a mistyped `name` may mean: 'berlin' → 'Europe/Berlin'.

    Matched on the city part, ignoring case, spaces and underscores, then by
    closeness of spelling over whole names.
    """
    import difflib
    from zoneinfo import available_timezones

    zones = sorted(available_timezones())

    def fold(text: str) -> str:
        return text.casefold().replace(" ", "_").replace("-", "_")

    wanted = fold(name.strip())
    exact = [z for z in zones if fold(z) == wanted or fold(z.rsplit("/", 1)[-1]) == wanted]
    if exact:
        return exact[:most]
    folded = {fold(z): z for z in zones}
    cities = {fold(z.rsplit("/", 1)[-1]): z for z in zones}
    close = difflib.get_close_matches(wanted, list(cities), n=most, cutoff=0.8)
    close += difflib.get_close_matches(wanted, list(folded), n=most, cutoff=0.8)
    found = [cities.get(c) or folded[c] for c in close]
    return list(dict.fromkeys(found))[:most]
