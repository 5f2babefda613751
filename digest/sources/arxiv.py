"""arXiv: its RSS/Atom announcement feeds and its API's Atom listing, from a file or over HTTP.

Two shapes come in, both read by `parse_arxiv_feed`:

* the announcement feed `{arxiv_rss_url}/cs.CL+cs.LG` (RSS 2.0; Atom at
  rss.arxiv.org/atom reads the same): one item per announced paper, its
  description `arXiv:<id>v<n> Announce Type: <type> Abstract: ...`,
  `arxiv:announce_type`, one `category` per category (primary first) and the
  authors comma-separated in `dc:creator`;
* the API's listing `{arxiv_api_url}?search_query=...` (Atom): one entry per
  paper, `id` the abstract URL with its version, `author/name` each,
  `arxiv:primary_category` and `category@term`, `published`/`updated`.

An announcement of type `replace` or `replace-cross` is a new *version* of a
paper announced before, not a new paper: it is left out of the dump (and
counted in `ParsedDump.unlisted`), so it can neither be stored as new nor be
listed among a window's candidates. A `cross` (a cross-list into a followed
category) is a new paper here.

Each paper keeps its categories in `extra["categories"]` (primary first) and
what else arXiv said in `extra["arxiv"]`.

Safety: a feed is at most `MAX_FEED_BYTES` and UTF-8 (declared or not: the
DTD check reads bytes, which another encoding could hide it from); a document
with a DTD is refused before parsing (arXiv sends none, and internal entities are how a
billion-laughs bomb expands); feedparser then parses strictly, and a feed it
had to read leniently (not well-formed) is refused, as is one whose items are
not arXiv papers.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx

from digest.config import SourceSettings
from digest.errors import BadInput, SourceError
from digest.keys import normalise_arxiv_id
from digest.sources import fetching
from digest.sources.sniff import xml_root
from digest.values import ParsedDump, ParsedPaper, arxiv_categories

MAX_FEED_BYTES = 20 * 2**20
_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
API_PAGE = 200  # entries per API request: several polite requests rather than one huge one
MAX_API_PAGES = 100
REPLACEMENTS = frozenset({"replace", "replace-cross"})

_ARXIV_REF = re.compile(r"arxiv\.org(?::|/abs/)(\S+?)/?$", re.I)
_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(\S+)\s*(?:Abstract:\s*)?", re.I)
_VERSION = re.compile(r"v(\d+)$")
_FEED_ROOTS = ("rss", "feed", "rdf")


@dataclass(frozen=True)
class ArxivFetch:
    """One fetch: the raw bytes (what the dump's SHA-256 is taken over), the dump, a label."""

    data: bytes
    parsed: ParsedDump
    source_ref: str


# --- parsing ---


def parse_arxiv_feed(data: bytes, *, name: str) -> ParsedDump:
    """Map an arXiv RSS/Atom feed or API listing to a ParsedDump; BadInput if it is not one."""
    _refuse_unsafe(data, name)
    # A file-like object: given bytes, feedparser would first try them as a file name.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        if not isinstance(exc, feedparser.CharacterEncodingOverride):
            raise BadInput(f"{name}: not well-formed XML{_where(exc)}: not a feed arXiv sent")
    if not parsed.get("version"):
        raise BadInput(f"{name}: not an RSS or Atom feed")
    entries = parsed.get("entries") or []
    if not entries and not _from_arxiv(parsed.get("feed") or {}):
        raise BadInput(f"{name}: a feed with no items that does not say it is from arXiv")
    papers: list[ParsedPaper] = []
    unlisted = 0
    days: Counter[date] = Counter()
    for number, entry in enumerate(entries, start=1):
        paper, announce = _paper(entry, number, name)
        if announce in REPLACEMENTS:
            unlisted += 1
            continue
        papers.append(paper)
        if paper.published_at is not None:
            days[paper.published_at.date()] += 1
    issue = _feed_day(parsed.get("feed") or {})
    if issue is None and days:
        issue = days.most_common(1)[0][0]
    return ParsedDump("arxiv", tuple(papers), issue_date=issue, unlisted=unlisted)


def _refuse_unsafe(data: bytes, name: str) -> None:
    if len(data) > MAX_FEED_BYTES:
        raise BadInput(
            f"{name}: {len(data) / 1e6:.1f} MB is too big for an arXiv feed "
            f"(at most {MAX_FEED_BYTES // 2**20} MiB)"
        )
    # The DTD check below reads bytes, so it holds only for UTF-8 (which arXiv sends):
    # a feed declared UTF-7 or UTF-16 could spell <!ENTITY so that only the parser
    # sees it. Anything else is refused before anything decodes it.
    declared = _ENCODING.search(data[:512])
    if declared and declared[1].decode("ascii", "replace").lower() not in _UTF8_NAMES:
        raise BadInput(
            f"{name}: declares the encoding {declared[1].decode('ascii', 'replace')!r}; "
            "arXiv feeds are UTF-8"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{name}: not UTF-8 (byte {exc.start}); arXiv feeds are UTF-8") from None
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    root = xml_root(head)
    if root == "html" or head[:14].lower() == b"<!doctype html":
        raise BadInput(f"{name}: looks like an HTML page, not an RSS or Atom feed")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadInput(
            f"{name}: declares a DTD (<!DOCTYPE or <!ENTITY), which arXiv feeds never do; "
            "refused unread, as expanding its entities can take the machine's memory"
        )
    if root not in _FEED_ROOTS:
        found = f"its root element is <{root}>" if root else "it does not start like XML"
        raise BadInput(f"{name}: not an RSS or Atom feed ({found})")


def _where(exc: Any) -> str:
    line = getattr(exc, "getLineNumber", None)
    message = getattr(exc, "getMessage", None)
    if callable(line) and callable(message):
        return f" (line {line()}: {message()})"
    return f" ({exc})" if exc else ""


def _from_arxiv(feed: Mapping[str, Any]) -> bool:
    said = " ".join(str(feed.get(key, "")) for key in ("link", "id", "title", "author"))
    return "arxiv" in said.lower()


def _paper(entry: Mapping[str, Any], number: int, name: str) -> tuple[ParsedPaper, str]:
    where = f"{name}: item {number}"
    if "arxiv.org/api/errors" in str(entry.get("id", "")):
        raise BadInput(f"{name}: the arXiv API answered with an error: {_text(entry, 'summary')}")
    ref = _arxiv_ref(entry)
    arxiv_id = normalise_arxiv_id(ref) if ref else None
    if arxiv_id is None:
        title = _text(entry, "title")[:60]
        raise BadInput(f"{where} ({title!r}) has no arXiv id: not an arXiv feed")
    title = _text(entry, "title")
    if not title:
        raise BadInput(f"{where} ({arxiv_id}) has no title")
    summary = _text(entry, "summary")
    prefix = _PREFIX.match(summary)
    announce = str(entry.get("arxiv_announce_type") or (prefix[1] if prefix else "")).lower()
    abstract = summary[prefix.end() :] if prefix else summary
    version = _VERSION.search(ref or "")
    info: dict[str, Any] = {
        key: value
        for key, value in {
            "announce_type": announce or None,
            "version": int(version[1]) if version else None,
            "updated": _iso(_stamp(entry, "updated")),
            "doi": entry.get("arxiv_doi"),
            "journal_ref": entry.get("arxiv_journal_ref"),
            "comment": entry.get("arxiv_comment"),
        }.items()
        if value
    }
    paper = ParsedPaper(
        title=title,
        abstract=abstract,
        line=number,
        arxiv_id=arxiv_id,
        authors=_authors(entry),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        published_at=_stamp(entry, "published"),
        extra={"categories": list(_categories(entry)), "arxiv": info},
    )
    return paper, announce


def _arxiv_ref(entry: Mapping[str, Any]) -> str | None:
    """What follows `arxiv.org/abs/` or `oai:arXiv.org:` in the entry's id or link."""
    for key in ("id", "link"):
        value = entry.get(key)
        if isinstance(value, str):
            match = _ARXIV_REF.search(value.strip())
            if match:
                return match[1]
    return None


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Each `author/name` (API), or the one comma-separated `dc:creator` (RSS) split."""
    names: list[str] = []
    for author in entry.get("authors") or []:
        text = author.get("name") if isinstance(author, Mapping) else None
        if not isinstance(text, str):
            continue
        parts = re.split(r",\s*|\s+and\s+", text) if "," in text else [text]
        names.extend(" ".join(part.split()) for part in parts if part.strip())
    return tuple(names)


def _categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Primary first (the API names it; the RSS lists it first), then the cross-lists."""
    found: list[str] = []
    primary = entry.get("arxiv_primary_category")
    if isinstance(primary, Mapping) and isinstance(primary.get("term"), str):
        found.append(primary["term"])
    for tag in entry.get("tags") or []:
        term = tag.get("term") if isinstance(tag, Mapping) else None
        if isinstance(term, str) and term.strip() and term.strip() not in found:
            found.append(term.strip())
    return tuple(found)


def _stamp(entry: Mapping[str, Any], key: str) -> datetime | None:
    # dict.get, not the entry's own: feedparser answers a missing `updated_parsed` with
    # `published_parsed` (and a DeprecationWarning), which would invent an update
    parsed = dict.get(entry, f"{key}_parsed") if isinstance(entry, dict) else None
    if not isinstance(parsed, time.struct_time):
        return None
    return datetime(*parsed[:6], tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _feed_day(feed: Mapping[str, Any]) -> date | None:
    """The announcement day an RSS channel states in its pubDate (arXiv's midnight, Eastern)."""
    raw = feed.get("published")
    if not isinstance(raw, str):
        return None
    try:
        return parsedate_to_datetime(raw).date()  # the day in the feed's own zone
    except (TypeError, ValueError, IndexError):
        return None


# --- over HTTP ---


def rss_url(sources: SourceSettings, categories: tuple[str, ...]) -> str:
    return f"{sources.arxiv_rss_url.rstrip('/')}/{'+'.join(categories)}"


def fetch_arxiv_rss(
    sources: SourceSettings,
    categories: tuple[str, ...],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ArxivFetch:
    """Today's announcements in `categories` (SourceError when arXiv cannot be read)."""
    url = rss_url(sources, _checked(categories))
    with fetching.client(sources.arxiv_timeout_seconds, accept=_XML) as http:
        body, shown = _get(http, url, {}, sources, sleep)
    return ArxivFetch(body, _parse_reply(body, shown), shown)


def fetch_arxiv_day(
    sources: SourceSettings,
    categories: tuple[str, ...],
    day: date,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    page_size: int = API_PAGE,
) -> ArxivFetch:
    """Every paper submitted on `day` (UTC) in `categories`, from the API, page by page.

    Requests are at least `arxiv_request_seconds` apart, as arXiv asks. The raw
    bytes are the pages joined by newlines. The listing is of submissions, so
    every entry is a new paper (the API has no announce type).
    """
    cats = _checked(categories)
    start, end = day.strftime("%Y%m%d0000"), day.strftime("%Y%m%d2359")
    either = " OR ".join(f"cat:{c}" for c in cats)
    query = f"({either}) AND submittedDate:[{start} TO {end}]"
    url = sources.arxiv_api_url
    bodies: list[bytes] = []
    papers: list[ParsedPaper] = []
    seen: set[str] = set()
    pace = fetching.Pace(sources.arxiv_request_seconds, sleep=sleep, clock=clock)
    total: int | None = None  # what the API says the query matches
    listed = 0  # entries read, repeats included
    with fetching.client(sources.arxiv_timeout_seconds, accept=_XML) as http:
        for page in range(MAX_API_PAGES):
            pace.wait()
            params = {
                "search_query": query,
                "start": str(page * page_size),
                "max_results": str(page_size),
                "sortBy": "submittedDate",
                "sortOrder": "ascending",
            }
            body, shown = _get(http, url, params, sources, sleep)
            pace.done()
            batch = _parse_reply(body, shown)
            if total is None:
                total = _total_results(body)
            listed += len(batch.papers) + batch.unlisted
            fresh = [p for p in batch.papers if p.arxiv_id not in seen]
            bodies.append(body)
            papers.extend(fresh)
            seen.update(p.arxiv_id for p in fresh if p.arxiv_id)
            # a short page is the last; a page of nothing new means the server ignores `start`
            if len(batch.papers) < page_size or not fresh:
                break
    shown_ref = str(httpx.URL(url, params={"search_query": query}))
    if total is not None and listed < total and len(papers) < total:
        # a page that came back short before the end (the API does so under load), or
        # a day beyond MAX_API_PAGES: storing part of a day would look like all of it
        raise SourceError(
            f"{shown_ref}: the arXiv API listed {listed} of the {total} papers it reports "
            f"for {day.isoformat()}; nothing stored, try again later"
        )
    return ArxivFetch(
        b"\n".join(bodies), ParsedDump("arxiv", tuple(papers), issue_date=day), shown_ref
    )


_XML = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1"


def _checked(categories: tuple[str, ...]) -> tuple[str, ...]:
    cats = arxiv_categories(",".join(categories))
    if not cats:
        raise BadInput("no arXiv categories given (e.g. --arxiv cs.CL,cs.LG)")
    return cats


def _get(
    http: httpx.Client,
    url: str,
    params: dict[str, str],
    sources: SourceSettings,
    sleep: Callable[[float], None],
) -> tuple[bytes, str]:
    return fetching.get(
        http, url, params, retries=sources.arxiv_retries, sleep=sleep, max_bytes=MAX_FEED_BYTES
    )


_TOTAL = re.compile(rb"<opensearch:totalResults[^>]*>\s*(\d{1,9})\s*<")


def _total_results(body: bytes) -> int | None:
    """The API's count of the query's matches (`opensearch:totalResults`), if it gave one."""
    found = _TOTAL.search(body[:8192])
    return int(found[1]) if found else None


def _parse_reply(body: bytes, shown: str) -> ParsedDump:
    """A reply that is not an arXiv feed is the source failing (exit 4), not the user's input."""
    try:
        return parse_arxiv_feed(body, name=shown)
    except BadInput as exc:
        raise SourceError(str(exc)) from None


__all__ = [
    "MAX_FEED_BYTES",
    "ArxivFetch",
    "fetch_arxiv_day",
    "fetch_arxiv_rss",
    "parse_arxiv_feed",
    "rss_url",
]
