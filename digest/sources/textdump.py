"""The plain-text page dumps: a saved "trending papers" page, one line per item.

A dump is a few page-header lines (`new`, `Get trending papers in your email
inbox!`, `Subscribe`, `Daily Papers`, `byAK and the research community`, in
any set and order), an optional date line without a year (`Aug 11`), then
title/abstract pairs, separated by blank lines or by nothing. `Subscribe` may
be glued to the first title. Pages saved on other days carry short metadata
lines around an entry (`· 5 authors`, `Published on Aug 11, 2024`, an upvote
count, an organisation name).

How a title is told from an abstract. No single length decides it: every
free-text line gets a *prose score* from its shape (words, whether it ends like
a sentence, how many sentence breaks it has), and the lines are labelled title,
abstract or metadata by the cheapest labelling that keeps the structure of the
page: an abstract always follows its title, a title normally gets an
abstract. So an unusually short abstract right after a title still pairs with
it, a long title stays a title, and an organisation name between two entries
becomes metadata instead of shifting every later pair. Lines that match a
metadata pattern (counts, dates, `·`) never take part in the pairing at all.

Decoding is strict: a dump must be UTF-8 (a BOM is fine), CRLF or LF, and not
binary; anything else is a `BadInput` naming the file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from digest.errors import BadInput
from digest.values import ParsedDump, ParsedPaper

# A day's page is ~150 kB (~1.6 kB a paper); 32 MiB is ~20,000 papers. Much more is not a
# page dump but the wrong file.
MAX_TEXT_BYTES = 32 * 1024 * 1024

# Page-header lines, compared by their letters only ("by AK" == "byAK").
HEADER_KEYS = frozenset(
    {
        "new",
        "gettrendingpapersinyouremailinbox",
        "gettrendingpapersinyouremailinboxonceaday",
        "subscribe",
        "dailypapers",
        "trendingpapers",
        "byakandtheresearchcommunity",
    }
)
_NOT_LETTER = re.compile(r"[^a-z]+")
_GLUED_SUBSCRIBE = re.compile(r"^Subscribe(?=[A-Z0-9\"'(\[])")

_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_PREFIX = r"(?:(?:published|submitted|updated|posted)(?:\s+on)?\s+)?"
_DAY_MONTH = re.compile(rf"^{_DATE_PREFIX}{_MONTH}\s+(?P<day>\d{{1,2}})$", re.I)
_DATE_LINE = re.compile(rf"^{_MONTH}\s+(?P<day>\d{{1,2}})$", re.I)  # the page's `Aug 11`
_DATE_WITH_YEAR = (
    re.compile(rf"^{_DATE_PREFIX}{_MONTH}\s+(?P<day>\d{{1,2}}),?\s+(?P<year>\d{{4}})$", re.I),
    re.compile(rf"^{_DATE_PREFIX}(?P<day>\d{{1,2}})\s+{_MONTH},?\s+(?P<year>\d{{4}})$", re.I),
    re.compile(rf"^{_DATE_PREFIX}(?P<year>\d{{4}})-(?P<month>\d{{2}})-(?P<day>\d{{2}})$", re.I),
)
_UPVOTES = (
    re.compile(r"^(?P<n>\d{1,6})$"),
    re.compile(r"^(?P<n>\d{1,6})\s+upvotes?$", re.I),
    re.compile(r"^upvotes?\s*:?\s*(?P<n>\d{1,6})$", re.I),
    re.compile(r"^[▲⬆↑]\s*(?P<n>\d{1,6})$"),
)
_OTHER_META = re.compile(
    r"^(?:\d[\d,]*\s+(?:authors?|comments?)|authors?\s*:?\s*\d+|submitted\s+by\s+\S+"
    r"|\d+(?:\.\d+)?[km]|upvote)$",
    re.I,
)
_SEPARATORS = re.compile(r"\s*[·•]\s*")
# Every metadata line has one of these; other lines skip the patterns.
_META_HINT = re.compile(r"[\d·•▲⬆↑]|^(?:submitted|upvote)", re.I)
# Words that mark a short line as an organisation rather than a paper title.
_ORG_WORDS = frozenset(
    """university universität université institute institut lab labs laboratory laboratories
    research inc inc. ltd llc corp corporation group academy college school center centre team
    foundation ai deepmind google meta microsoft nvidia openai anthropic alibaba tencent
    bytedance huawei apple amazon ibm salesforce baidu qwen mistral huggingface allen""".split()  # noqa: SIM905
)
_WORD_SPLIT = re.compile(r"[\s,()/&-]+")
_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]?\s+[A-Z(]")

# Costs of the labelling (see the module docstring).
MISSING_ABSTRACT = 5.0  # a title followed by another title
FINAL_WITHOUT_ABSTRACT = 2.0  # the last title of a truncated page
HOPELESS_TITLE = 4.0  # a line this prose-like labelled title: two abstracts in a row


@dataclass(slots=True)
class _Line:
    number: int  # 1-based line number in the file
    text: str
    words: int = 0
    score: float = 0.0  # > 0: reads like an abstract, < 0: like a title


@dataclass(slots=True)
class _Meta:
    index: int  # position among the dump's content lines
    text: str
    upvotes: int | None = None
    published: date | None = None


@dataclass(slots=True)
class _Entry:
    title: _Line
    title_index: int
    abstract: _Line | None = None
    end_index: int = 0
    meta: list[_Meta] = field(default_factory=list)


def parse_text_dump(data: bytes, *, name: str) -> ParsedDump:
    """Parse one page dump; `name` (the file or URL) prefixes every error and warning."""
    if len(data) > MAX_TEXT_BYTES:
        raise BadInput(
            f"{name}: {len(data) / 1e6:.1f} MB is too big for a page dump "
            f"(at most {MAX_TEXT_BYTES // 2**20} MiB); is this the right file?"
        )
    lines = _decode_lines(data, name)
    if not any(text for _, text in lines):
        raise BadInput(f"{name}: empty file, no papers in it")

    month_day: tuple[int, int] | None = None
    free: list[_Line] = []  # title/abstract/organisation candidates
    free_index: list[int] = []  # their positions in `order`
    metas: list[_Meta] = []
    order = 0
    header_lines: list[int] = []
    for number, text in lines:
        if not text:
            continue
        if not free and text.startswith("Subscribe"):
            glued = _GLUED_SUBSCRIBE.match(text)
            if glued:
                text = text[glued.end() :]
        if len(text) <= 80:
            if len(text) <= 64 and _NOT_LETTER.sub("", text.casefold()) in HEADER_KEYS:
                header_lines.append(number)
                continue
            if not free and month_day is None:
                day = _DATE_LINE.match(text)
                if day:
                    month_day = _month_day(day, number, name)
                    header_lines.append(number)
                    continue
            meta = _meta(text, order) if _META_HINT.search(text) else None
            if meta is not None:
                metas.append(meta)
                order += 1
                continue
        free.append(_Line(number, " ".join(text.split()) if len(text) <= 400 else text))
        free_index.append(order)
        order += 1

    if not free:
        where = f"lines {header_lines[0]}-{header_lines[-1]}" if header_lines else "anywhere"
        raise BadInput(f"{name}: no papers found: only page headers and metadata ({where})")

    labels = _label(free)
    entries, organisations, warnings = _entries(free, free_index, labels, name)
    _attach_meta(entries, sorted([*metas, *organisations], key=lambda m: m.index))
    papers = tuple(_paper(entry) for entry in entries)
    return ParsedDump("text", papers, month_day=month_day, warnings=tuple(warnings))


def _decode_lines(data: bytes, name: str) -> list[tuple[int, str]]:
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise BadInput(f"{name}: line {line}: binary data (a NUL byte), not a text page dump")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        before = data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start]
        column = len(before.decode("utf-8", errors="replace")) + 1
        raise BadInput(
            f"{name}: line {line}, column {column}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the dump as UTF-8"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return [(number, raw.strip()) for number, raw in enumerate(text.split("\n"), start=1)]


def _month_day(match: re.Match[str], number: int, name: str) -> tuple[int, int]:
    month = _MONTHS[match["mon"][:3].lower()]
    day = int(match["day"])
    try:
        date(2000, month, day)  # a leap year: Feb 29 is a valid month/day
    except ValueError:
        raise BadInput(f"{name}: line {number}: {match.group()!r} is not a date") from None
    return month, day


def _meta(text: str, index: int) -> _Meta | None:
    """A metadata line (every `·`-separated part a count, date, ...), or None."""
    upvotes: int | None = None
    published: date | None = None
    for part in _SEPARATORS.split(text):
        if not part:
            continue
        if part.count(" ") > 4:  # longer than any count or date
            return None
        for pattern in _UPVOTES:
            match = pattern.match(part)
            if match:
                upvotes = int(match["n"])
                break
        else:
            found = _date_with_year(part)
            if found is not None:
                published = found
            elif not (_OTHER_META.match(part) or _DAY_MONTH.match(part)):
                return None
    return _Meta(index, text, upvotes, published)


def _date_with_year(text: str) -> date | None:
    for pattern in _DATE_WITH_YEAR:
        match = pattern.match(text)
        if match:
            groups = match.groupdict()
            month = (
                int(groups["month"]) if groups.get("month") else _MONTHS[groups["mon"][:3].lower()]
            )
            try:
                return date(int(match["year"]), month, int(match["day"]))
            except ValueError:
                return None
    return None


def prose_score(text: str, words: int = 0) -> float:
    """How much a line reads like an abstract (> 0) rather than a title (< 0)."""
    words = words or text.count(" ") + 1
    score = 2.0 * math.log2(words / 30)
    last = text[-1]
    if last == ".":
        score += 2.5
    elif last not in "!)":
        score -= 1.0
    if score >= 4.0:  # already plainly prose; sentence breaks could only add to it
        return score + 4.5 if _SENTENCE_BREAK.search(text) else score
    breaks = 0
    for _ in _SENTENCE_BREAK.finditer(text):
        breaks += 1
        if breaks == 3:
            break
    return score + 1.5 * breaks


def _organisation_cost(line: _Line) -> float:
    """What labelling a free-text line as metadata (an organisation name) costs."""
    text = line.text
    words = line.words
    cost = 1.5 + 0.6 * words + 2.0 * max(0.0, line.score)
    if words > 6 or cost > 12.0:  # too long or prose-like for an organisation name
        return cost
    if ":" in text or "?" in text:
        cost += 2.0
    if not _ORG_WORDS.isdisjoint(_WORD_SPLIT.split(text.casefold())):
        cost -= 2.0
    return max(cost, 0.1)


def _label(lines: Sequence[_Line]) -> list[str]:
    """Label each free-text line T(itle), A(bstract) or M(etadata): cheapest valid sequence.

    Two states: 0 = no title waiting for its abstract, 1 = a title waiting.
    An abstract is only possible in state 1.
    """
    inf = math.inf
    best = (0.0, inf)
    back: list[tuple[tuple[int, str], tuple[int, str]]] = []
    for line in lines:
        line.words = line.text.count(" ") + 1
        line.score = score = prose_score(line.text, line.words)
        cost_t = max(0.0, score)
        cost_a = max(0.0, -score)
        cost_m = _organisation_cost(line)
        # into state 0: metadata while nothing waits, or the waiting title's abstract
        to0, from0 = best[0] + cost_m, (0, "M")
        if best[1] + cost_a < to0:
            to0, from0 = best[1] + cost_a, (1, "A")
        # into state 1: a new title, or metadata between a title and its abstract
        to1, from1 = best[0] + cost_t, (0, "T")
        if best[1] + cost_m < to1:
            to1, from1 = best[1] + cost_m, (1, "M")
        if best[1] + cost_t + MISSING_ABSTRACT < to1:
            to1, from1 = best[1] + cost_t + MISSING_ABSTRACT, (1, "T")
        best = (to0, to1)
        back.append((from0, from1))
    state = 0 if best[0] <= best[1] + FINAL_WITHOUT_ABSTRACT else 1
    labels = [""] * len(lines)
    for i in range(len(lines) - 1, -1, -1):
        state, labels[i] = back[i][state]
    return labels


def _entries(
    free: Sequence[_Line], free_index: Sequence[int], labels: Sequence[str], name: str
) -> tuple[list[_Entry], list[_Meta], list[str]]:
    """Entries from the labelled lines; also the lines labelled metadata, and warnings."""
    entries: list[_Entry] = []
    warnings: list[str] = []
    metas: list[_Meta] = []
    for line, index, label in zip(free, free_index, labels, strict=True):
        if label == "T":
            if line.score >= HOPELESS_TITLE:
                last = entries[-1] if entries else None
                before = (
                    f"line {(last.abstract or last.title).number}" if last else "the page headers"
                )
                raise BadInput(
                    f"{name}: line {line.number}: an abstract with no title before it "
                    f"(right after {before}); a title line is missing or an abstract is "
                    "split over two lines"
                )
            entries.append(_Entry(line, index, end_index=index))
        elif label == "A":
            entries[-1].abstract = line
            entries[-1].end_index = index
        else:
            metas.append(_Meta(index, line.text))
    if entries and all(entry.abstract is None for entry in entries):
        # Not one title/abstract pair: a log, a listing, base64... not a page dump.
        # Storing its lines as abstract-less "papers" would only pollute the store.
        raise BadInput(
            f"{name}: no paper with an abstract in {len(free)} lines of text; "
            "is this a trending-papers page dump?"
        )
    for entry in entries:
        if entry.abstract is None:
            warnings.append(
                f"{name}: line {entry.title.number}: {entry.title.text!r} has no abstract; "
                "kept with an empty one"
            )
    return entries, metas, warnings


def _attach_meta(entries: list[_Entry], metas: list[_Meta]) -> None:
    """Give each entry the metadata lines around it.

    Pages put metadata either after an entry's title (up to the next title) or
    before it (since the previous entry ended). Metadata before the first title
    and none after the last entry means the second layout; otherwise the first.
    """
    if not metas:
        return
    before_first = metas[0].index < entries[0].title_index
    after_last = metas[-1].index > entries[-1].end_index
    preceding = before_first and not after_last
    position = 0
    for meta in metas:
        if preceding:
            while position < len(entries) - 1 and meta.index > entries[position].end_index:
                position += 1
        else:
            while position < len(entries) - 1 and meta.index > entries[position + 1].title_index:
                position += 1
        entries[position].meta.append(meta)


def _paper(entry: _Entry) -> ParsedPaper:
    if not entry.meta:
        return ParsedPaper(
            entry.title.text,
            entry.abstract.text if entry.abstract else "",
            entry.title.number,
            extra={},
        )
    upvotes = {m.upvotes for m in entry.meta if m.upvotes is not None}
    dates = {m.published for m in entry.meta if m.published is not None}
    extra: dict[str, object] = {}
    if entry.meta:
        extra["meta_lines"] = [m.text for m in entry.meta]
    published = (
        datetime(*next(iter(dates)).timetuple()[:3], tzinfo=UTC) if len(dates) == 1 else None
    )
    return ParsedPaper(
        title=entry.title.text,
        abstract=entry.abstract.text if entry.abstract else "",
        line=entry.title.number,
        upvotes=next(iter(upvotes)) if len(upvotes) == 1 else None,
        published_at=published,
        extra=extra,
    )
