"""Ingest: read a dump (a file, a URL, a Hugging Face day, arXiv, a watched folder), store it.

The one place that joins `digest.sources` (bytes → plain values) to
`digest.store.dumps` (plain values → rows, once and whole). Which parser a
dump gets is decided here from its content and name.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from digest.config import SourceSettings
from digest.errors import BadInput, DigestError, SourceError
from digest.sources.arxiv import MAX_FEED_BYTES, fetch_arxiv_day, fetch_arxiv_rss, parse_arxiv_feed
from digest.sources.folder import scan_folder
from digest.sources.hf_api import (
    MAX_JSON_BYTES,
    fetch_daily_papers,
    fetch_url,
    parse_hf_json,
)
from digest.sources.lookup import TitleLookup, TitleRefused
from digest.sources.sniff import FEEDS, not_a_dump
from digest.sources.textdump import MAX_TEXT_BYTES, parse_text_dump
from digest.store.database import Store
from digest.store.dumps import (
    IngestResult,
    infer_issue_date,
    known_dump,
    learn_identity,
    store_dump,
    titles_to_look_up,
)
from digest.values import ParsedDump

log = logging.getLogger(__name__)

MAX_PAPERS = SourceSettings().max_papers_per_dump


# --- entry points ---


def ingest_file(
    store: Store,
    path: Path,
    *,
    now: datetime,
    issue_date: date | None = None,
    max_papers: int = MAX_PAPERS,
) -> IngestResult:
    """Ingest a `.txt` page dump, a `.json` daily-papers file or a saved `.xml` arXiv feed."""
    data = _read(path)
    return ingest_bytes(
        store, data, source_ref=str(path), now=now, issue_date=issue_date, max_papers=max_papers
    )


def ingest_bytes(
    store: Store,
    data: bytes,
    *,
    source_ref: str,
    now: datetime,
    issue_date: date | None = None,
    max_papers: int = MAX_PAPERS,
) -> IngestResult:
    """Ingest one dump given as bytes; a `.xml` name is an arXiv feed, JSON or text is told
    by the content."""
    sha = hashlib.sha256(data).hexdigest()
    known = known_dump(store, sha, source_ref)
    if known is not None:
        return known
    parsed = parse_dump(data, name=source_ref)
    _refuse_too_many(parsed, source_ref, max_papers)
    return store_dump(
        store, parsed, sha256=sha, source_ref=source_ref, now=now, issue_date=issue_date
    )


def ingest_url(
    store: Store,
    url: str,
    sources: SourceSettings,
    *,
    now: datetime,
    issue_date: date | None = None,
) -> IngestResult:
    """Ingest a dump (text or JSON) fetched from an http(s) URL."""
    data = fetch_url(url, sources)
    return ingest_bytes(
        store,
        data,
        source_ref=url,
        now=now,
        issue_date=issue_date,
        max_papers=sources.max_papers_per_dump,
    )


def ingest_hf(store: Store, sources: SourceSettings, *, day: date, now: datetime) -> IngestResult:
    """Fetch and ingest the Hugging Face daily list of `day`."""
    data, parsed, url = fetch_daily_papers(sources, day)
    _refuse_too_many(parsed, url, sources.max_papers_per_dump)
    # The day is part of the identity: two empty days' replies are the same bytes ("[]").
    sha = hashlib.sha256(f"{url}\n".encode() + data).hexdigest()
    return store_dump(store, parsed, sha256=sha, source_ref=url, now=now, issue_date=day)


def ingest_arxiv(
    store: Store,
    sources: SourceSettings,
    categories: tuple[str, ...],
    *,
    now: datetime,
    day: date | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestResult:
    """Fetch and ingest arXiv's announcements in `categories`: today's RSS feed, or with
    `day` the API's listing of that day's submissions."""
    if day is None:
        fetched = fetch_arxiv_rss(sources, categories, sleep=sleep)
    else:
        fetched = fetch_arxiv_day(sources, categories, day, sleep=sleep)
    _refuse_too_many(fetched.parsed, fetched.source_ref, sources.max_papers_per_dump)
    # The URL is part of the identity, as for the HF list: empty replies can be equal bytes.
    sha = hashlib.sha256(f"{fetched.source_ref}\n".encode() + fetched.data).hexdigest()
    return store_dump(
        store,
        fetched.parsed,
        sha256=sha,
        source_ref=fetched.source_ref,
        now=now,
        issue_date=day,
    )


@dataclass(frozen=True)
class LookupReport:
    """What one run of title lookups did; `error` is why it stopped early, if it did."""

    asked: int
    found: int
    waiting: int  # titles left for a later run
    refused: int = 0  # titles the search refused or answered with something unusable
    error: str | None = None

    def summary(self) -> str:
        said = f"looked up {self.asked} title{'s' * (self.asked != 1)}: {self.found} found"
        if self.refused:
            said += f", {self.refused} refused by the search"
        if self.waiting:
            said += f", {self.waiting} left for the next run"
        return said


def look_up_titles(
    store: Store,
    sources: SourceSettings,
    *,
    now: datetime,
    limit: int,
    again: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int], None] = lambda done, total: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> LookupReport:
    """Ask Hugging Face, by exact title, who the papers without an arXiv id are.

    Each answer is stored as it comes (a found paper takes its id, authors and
    links at once), so a run stopped by a failing source, or by `should_stop`
    (shutdown), keeps what it learned; the titles it did not reach stay
    untried for the next run. A title the search refuses is recorded as
    refused and the run goes on.
    """
    todo, total = titles_to_look_up(store, limit=limit, again=again)
    asked = found = refused = 0
    with TitleLookup(sources, sleep=sleep) as lookup:
        for paper_id, title in todo:
            if should_stop():
                break
            error: str | None = None
            try:
                paper = lookup.find(title)
            except TitleRefused as exc:
                paper, error = None, str(exc)
                refused += 1
            except SourceError as exc:
                return LookupReport(asked, found, total - asked, refused, str(exc))
            asked += 1
            if learn_identity(store, paper_id, paper, now, error=error) and paper is not None:
                found += 1
            progress(asked, len(todo))
    return LookupReport(asked, found, total - asked, refused)


def ingest_folder(
    store: Store,
    folder: Path,
    *,
    now: datetime,
    settle_seconds: float,
    on_error: Callable[[Path, DigestError], None] | None = None,
    clock: Callable[[], float] = time.time,
    max_papers: int = MAX_PAPERS,
) -> list[IngestResult]:
    """Ingest every settled `.txt`/`.json`/`.xml` file in `folder`; seen content is a no-op.

    A file that fails is reported to `on_error` (logged when none is given)
    and the others still go in. Files that are skipped (another extension)
    or refused are logged once per version of the file, not at every poll.
    """
    results: list[IngestResult] = []
    scan = scan_folder(folder, settle_seconds=settle_seconds, clock=clock)
    for path, why in scan.skipped:
        _log_once(path, f"dumps folder: skipped {path}: {why}")
    for path in scan.ready:
        try:
            results.append(ingest_file(store, path, now=now, max_papers=max_papers))
        except DigestError as exc:
            if on_error is None:
                _log_once(path, f"dump {path} not ingested: {exc}", logging.WARNING)
            else:
                on_error(path, exc)
    return results


_REPORTED: dict[str, tuple[int, float]] = {}
"""Per folder file reported in this process, the (size, mtime) it had: one entry per
path, so a daemon watching a file rewritten for months keeps one entry, not one per
version."""


def _log_once(path: Path, message: str, level: int = logging.INFO) -> None:
    """Log `message` about a folder file once per version of it (size and mtime)."""
    try:
        stat = path.stat()
    except OSError:
        return
    version = (stat.st_size, stat.st_mtime)
    if _REPORTED.get(str(path)) != version:
        _REPORTED[str(path)] = version
        log.log(level, "%s", message)


def parse_dump(data: bytes, *, name: str) -> ParsedDump:
    """Parse dump bytes with the parser their content calls for; refuse what is neither.

    A `.xml` file is an arXiv RSS/Atom feed (or API listing). Otherwise BadInput
    (exit 2, nothing written) for a feed, an HTML page, a PDF or a binary file,
    whatever its name: the text parser would read their lines as papers.
    """
    if name.lower().endswith(".xml"):
        return parse_arxiv_feed(data, name=name)
    kind = not_a_dump(data)
    if kind in FEEDS:
        raise BadInput(
            f"{name}: looks like {kind}: name a saved arXiv feed .xml to ingest it, "
            "or fetch one with `digest ingest --arxiv cs.CL,cs.LG`"
        )
    if kind is not None:
        raise BadInput(
            f"{name}: looks like {kind}, not a dump: digest reads page dumps (text) "
            "and Hugging Face daily-papers lists (JSON)"
        )
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"[", b"{") or name.lower().endswith(".json"):
        return parse_hf_json(data.removeprefix(b"\xef\xbb\xbf"), name=name)
    return parse_text_dump(data, name=name)


# --- helpers ---


def _refuse_too_many(parsed: ParsedDump, name: str, most: int) -> None:
    """BadInput, before anything is written, for a dump listing more than `most` papers."""
    count = len(parsed.papers)
    if count > most:
        raise BadInput(
            f"{name}: {count:,} papers is more than one dump may list "
            f"(sources.max_papers_per_dump = {most:,}); planning holds every paper of a "
            "window in memory: split the file, or raise the limit on a bigger machine"
        )


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:  # a mistyped path is bad input (2), not a source that failed (4)
        raise BadInput(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    if path.is_dir():
        raise SourceError(f"{path}: is a folder, not a dump file (try --folder)")
    suffix = path.suffix.lower()
    limit = {".json": MAX_JSON_BYTES, ".xml": MAX_FEED_BYTES}.get(suffix, MAX_TEXT_BYTES)
    if size > limit:
        raise BadInput(
            f"{path}: {size / 1e6:.1f} MB is too big for a dump (at most "
            f"{limit // 2**20} MiB); is this the right file?"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None


__all__ = [
    "IngestResult",
    "infer_issue_date",
    "ingest_arxiv",
    "ingest_bytes",
    "ingest_file",
    "ingest_folder",
    "ingest_hf",
    "ingest_url",
    "parse_dump",
    "store_dump",
]
