"""Storing dumps: a parsed dump → its papers in the store, once, whole, without duplicates.

This module owns writing dumps and papers. The rules:

* A dump is identified by the SHA-256 of its bytes. One dump is one
  transaction: the `dumps` row, new `papers`, and its `dump_papers` listings
  commit together or not at all, so a parse error or a crash stores nothing.
* The same bytes twice change nothing, also when two processes ingest them at
  the same moment: the loser of the race hits the unique SHA-256 (or paper
  key), rolls back and, retrying, finds the dump already there.
* Papers are deduplicated across dumps by `digest.keys.paper_key` (the arXiv id
  when known, else the normalised title). A source that knows the arXiv id of a
  paper stored from a title-only dump fills the id in (and if both rows exist,
  merges the title-only row into the arXiv one, moving its listings).
* The issue date is `--date` when given, else the day a source states, else
  the page's `Aug 11` line with the latest year not after the ingest time,
  else the ingest date.

Rows are written with Core bulk inserts (`executemany`) rather than ORM unit of
work: a 10,000-paper dump is one round trip per table, not per row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from digest.errors import BadInput
from digest.keys import paper_key, title_key
from digest.store.database import Store
from digest.store.reads import chunks
from digest.store.schema import DigestItem, Dump, DumpPaper, Paper, PaperVector, Vote
from digest.values import ParsedDump, ParsedPaper

# Core tables: executemany without the ORM's per-row bookkeeping
PAPERS = cast(Table, Paper.__table__)
ATTEMPTS = 5  # a transaction that lost a race (unique key, SQLite lock) is retried


@dataclass(frozen=True)
class IngestResult:
    """What ingesting one dump did."""

    dump_id: int
    sha256: str
    source_ref: str
    new_papers: int
    known_papers: int
    skipped: int
    already_ingested: bool
    issue_date: date | None = None
    warnings: tuple[str, ...] = ()


def infer_issue_date(month: int, day: int, *, now: datetime) -> date:
    """The latest `month`/`day` not after `now` (so `Dec 31` read on Jan 2 is last year's)."""
    today = now.date()
    for year in range(today.year, today.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:  # Feb 29 outside a leap year
            continue
        if candidate <= today:
            return candidate
    raise BadInput(f"{month:02d}-{day:02d} is not a date")


# --- storing ---


def store_dump(
    store: Store,
    parsed: ParsedDump,
    *,
    sha256: str,
    source_ref: str,
    now: datetime,
    issue_date: date | None = None,
) -> IngestResult:
    """Store a parsed dump in one transaction (see the module docstring)."""
    day = issue_date or parsed.issue_date
    if day is None:
        day = infer_issue_date(*parsed.month_day, now=now) if parsed.month_day else now.date()
    result = _retried(store, lambda session: _store(session, parsed, sha256, source_ref, now, day))
    return replace(result, warnings=parsed.warnings)


T = TypeVar("T")


def _retried(store: Store, work: Callable[[Session], T]) -> T:
    """`work` in one transaction, run again on fresh data when it lost a race: another
    writer committed the same dump or paper first (IntegrityError), or the database
    refused a lock (SQLite's read-lock upgrade, a PostgreSQL deadlock)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with store.transaction() as session:
                return work(session)
        except (IntegrityError, OperationalError) as exc:
            retryable = isinstance(exc, IntegrityError) or any(
                word in str(exc.orig) for word in ("locked", "deadlock", "could not serialize")
            )
            if attempt == ATTEMPTS or not retryable:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


@dataclass
class _Row:
    """The columns of an existing paper that ingest may fill in."""

    id: int
    key: str
    arxiv_id: str | None
    title_key: str | None
    abstract: str
    authors: list[Any]
    url: str | None
    published_at: datetime | None
    extra: dict[str, Any]
    first_seen: datetime


_ROW_COLUMNS = (
    Paper.id,
    Paper.key,
    Paper.arxiv_id,
    Paper.title_key,
    Paper.abstract,
    Paper.authors,
    Paper.url,
    Paper.published_at,
    Paper.extra,
    Paper.first_seen,
)


def _store(
    session: Session,
    parsed: ParsedDump,
    sha256: str,
    source_ref: str,
    now: datetime,
    day: date,
) -> IngestResult:
    existing = session.execute(select(Dump.id).where(Dump.sha256 == sha256)).scalar()
    if existing is not None:
        return IngestResult(existing, sha256, source_ref, 0, 0, 0, True, day)

    listings, skipped = _listings(parsed)
    by_key, by_title = _existing(session, listings)
    _mark_withdrawn(session, parsed, now)

    dump = Dump(
        sha256=sha256,
        source=parsed.source,
        source_ref=source_ref,
        issue_date=day,
        ingested_at=now,
        paper_count=len(listings),
    )
    session.add(dump)
    session.flush()

    paper_ids: list[int | None] = []
    new_rows: list[dict[str, Any]] = []
    new_at: list[int] = []
    for index, (key, tkey, paper) in enumerate(listings):
        row = by_key.get(key)
        if paper.arxiv_id:
            title_row = by_key.get(f"title:{tkey}")
            if row is None and title_row is not None:
                row = _upgrade(session, title_row, key, paper)
                by_key[key] = row
            elif row is not None and title_row is not None and title_row.id != row.id:
                _merge(session, title_row, row)
            by_key.pop(f"title:{tkey}", None)
        elif row is None:
            row = by_title.get(tkey)
        if row is not None:
            _fill(session, row, paper)
            paper_ids.append(row.id)
        else:
            paper_ids.append(None)
            new_at.append(index)
            new_rows.append(_new_row(key, tkey, paper, now))

    if new_rows:
        # One executemany; RETURNING rows come back in any order, so match them by key.
        # (Asking for parameter order makes SQLAlchemy send one statement per row.)
        # Key order makes concurrent PostgreSQL ingests wait on each other, not deadlock.
        inserted = session.execute(
            insert(PAPERS).returning(PAPERS.c.key, PAPERS.c.id),
            sorted(new_rows, key=lambda new: str(new["key"])),
        ).tuples()
        ids = dict(inserted.all())
        for index, new in zip(new_at, new_rows, strict=True):
            paper_ids[index] = ids[new["key"]]

    # Plain integers: hand them to the driver's executemany directly, skipping
    # SQLAlchemy's per-row parameter processing (a third of the store time).
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    if listings:
        connection.exec_driver_sql(
            "INSERT INTO dump_papers (dump_id, paper_id, position, upvotes) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            [
                (dump.id, paper_id, position, paper.upvotes)
                for position, (paper_id, (_, _, paper)) in enumerate(
                    zip(paper_ids, listings, strict=True), start=1
                )
            ],
        )
    dump.new_paper_count = len(new_rows)
    known = len(listings) - len(new_rows)
    return IngestResult(dump.id, sha256, source_ref, len(new_rows), known, skipped, False, day)


def _mark_withdrawn(session: Session, parsed: ParsedDump, now: datetime) -> None:
    """Stored papers the source now says were withdrawn get `extra["withdrawn_at"]`: the
    planner never offers them again (a withdrawn paper is not stored in the first place,
    but one stored earlier must not go out from an older dump either)."""
    gone = [paper for paper in parsed.papers if paper.withdrawn]
    if not gone:
        return
    keys = {paper_key(p.arxiv_id, p.title) for p in gone if p.arxiv_id}
    titles = {title_key(p.title) for p in gone}
    rows = session.scalars(
        select(Paper).where(Paper.key.in_(sorted(keys)) | Paper.title_key.in_(sorted(titles)))
    )
    for row in rows:
        if "withdrawn_at" not in (row.extra or {}):
            row.extra = {**(row.extra or {}), "withdrawn_at": now.isoformat()}


def _listings(parsed: ParsedDump) -> tuple[list[tuple[str, str, ParsedPaper]], int]:
    """The dump's listings as (key, title key, paper), without repeats or withdrawn papers."""
    listings: list[tuple[str, str, ParsedPaper]] = []
    seen: set[str] = set()
    skipped = parsed.unlisted
    for paper in parsed.papers:
        tkey = title_key(paper.title)
        # paper_key() without normalising the title a second time
        key = paper_key(paper.arxiv_id, paper.title) if paper.arxiv_id else f"title:{tkey}"
        if not tkey or key in seen or f"title:{tkey}" in seen or paper.withdrawn:
            skipped += 1
            continue
        seen.add(key)
        seen.add(f"title:{tkey}")
        listings.append((key, tkey, paper))
    return listings, skipped


def _existing(
    session: Session, listings: Sequence[tuple[str, str, ParsedPaper]]
) -> tuple[dict[str, _Row], dict[str, _Row]]:
    """Stored papers these listings may be: by key, and by normalised title."""
    keys = {key for key, _, _ in listings} | {f"title:{tkey}" for _, tkey, _ in listings}
    title_keys = {tkey for key, tkey, _ in listings if key.startswith("title:")}
    by_key: dict[str, _Row] = {}
    by_title: dict[str, _Row] = {}
    for chunk in chunks(sorted(keys)):
        for values in session.execute(select(*_ROW_COLUMNS).where(Paper.key.in_(chunk))):
            row = _Row(*values)
            by_key[row.key] = row
    for chunk in chunks(sorted(title_keys)):
        query = select(*_ROW_COLUMNS).where(Paper.title_key.in_(chunk)).order_by(Paper.id)
        for values in session.execute(query):
            row = _Row(*values)
            if row.title_key is not None and (
                row.title_key not in by_title or by_title[row.title_key].arxiv_id is None
            ):
                by_title[row.title_key] = row
    for key, row in by_key.items():
        if key.startswith("title:"):
            by_title.setdefault(key.removeprefix("title:"), row)
    return by_key, by_title


def _new_row(key: str, tkey: str, paper: ParsedPaper, now: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "title_key": tkey,
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "url": paper.url,
        "published_at": paper.published_at,
        "extra": paper.extra,
        "first_seen": now,
    }


def _upgrade(session: Session, row: _Row, key: str, paper: ParsedPaper) -> _Row:
    """A title-only paper learns its arXiv id: it becomes that paper's row."""
    session.execute(
        update(Paper).where(Paper.id == row.id).values(key=key, arxiv_id=paper.arxiv_id)
    )
    row.key, row.arxiv_id = key, paper.arxiv_id
    return row


def _fill(session: Session, row: _Row, paper: ParsedPaper) -> None:
    """Fill what a stored paper lacks from a later listing; never overwrite what it has."""
    values: dict[str, Any] = {}
    if not row.abstract and paper.abstract:
        values["abstract"] = row.abstract = paper.abstract
    if not row.authors and paper.authors:
        values["authors"] = row.authors = list(paper.authors)
    if not row.url and paper.url:
        values["url"] = row.url = paper.url
    if row.published_at is None and paper.published_at is not None:
        values["published_at"] = row.published_at = paper.published_at
    if row.title_key is None:
        values["title_key"] = row.title_key = title_key(paper.title)
    new_extra = {k: v for k, v in paper.extra.items() if k not in row.extra}
    if new_extra:
        values["extra"] = row.extra = {**row.extra, **new_extra}
    if values:
        session.execute(update(Paper).where(Paper.id == row.id).values(**values))
    if "abstract" in values:
        _forget_vector(session, row.id)


def _merge(session: Session, loser: _Row, winner: _Row) -> None:
    """Fold a title-only row into the arXiv row of the same paper, keeping its history."""
    links: tuple[tuple[Any, Any, Any], ...] = (
        (DumpPaper, DumpPaper.paper_id, DumpPaper.dump_id),
        (DigestItem, DigestItem.paper_id, DigestItem.digest_id),
    )
    for table, column, owner in links:
        taken = select(owner).where(column == winner.id).scalar_subquery()
        session.execute(
            update(table).where(column == loser.id, owner.not_in(taken)).values(paper_id=winner.id)
        )
        session.execute(delete(table).where(column == loser.id))
    # A reader's votes are about the paper, whichever row they were cast on (deleting the
    # loser would cascade them away); where the reader voted on both rows for one topic,
    # the later vote is kept.
    kept = aliased(Vote)
    session.execute(  # the later of two votes on the same topic is the reader's word
        delete(Vote).where(
            Vote.paper_id == winner.id,
            exists().where(
                kept.paper_id == loser.id,
                kept.subscriber_id == Vote.subscriber_id,
                kept.topic_id == Vote.topic_id,
                kept.voted_at > Vote.voted_at,
            ),
        )
    )
    session.execute(
        update(Vote)
        .where(
            Vote.paper_id == loser.id,
            ~exists().where(
                kept.paper_id == winner.id,
                kept.subscriber_id == Vote.subscriber_id,
                kept.topic_id == Vote.topic_id,
            ),
        )
        .values(paper_id=winner.id)
    )
    values: dict[str, Any] = {}
    if not winner.abstract and loser.abstract:
        values["abstract"] = winner.abstract = loser.abstract
    if loser.first_seen < winner.first_seen:
        values["first_seen"] = winner.first_seen = loser.first_seen
    extra = {k: v for k, v in loser.extra.items() if k not in winner.extra}
    if extra:
        values["extra"] = winner.extra = {**winner.extra, **extra}
    session.execute(delete(Paper).where(Paper.id == loser.id))
    if values:
        session.execute(update(Paper).where(Paper.id == winner.id).values(**values))
    if "abstract" in values:
        _forget_vector(session, winner.id)


def _forget_vector(session: Session, paper_id: int) -> None:
    """A paper whose text grew is embedded again (`digest embed`, the next ingest)."""
    session.execute(delete(PaperVector).where(PaperVector.paper_id == paper_id))


def known_dump(store: Store, sha256: str, source_ref: str) -> IngestResult | None:
    with store.sessions() as session:
        found = session.execute(
            select(Dump.id, Dump.issue_date).where(Dump.sha256 == sha256)
        ).first()
    if found is None:
        return None
    return IngestResult(found[0], sha256, source_ref, 0, 0, 0, True, found[1])


# --- title lookups: a title-only paper learns who it is, outside any dump ---

LOOKUP = "title_lookup"  # extra[LOOKUP] = {"at": ISO time, "found": arXiv id or None, ...}


def _waiting(again: bool) -> Any:
    """The papers a lookup run may ask about: without an arXiv id and (unless `again`)
    never looked up. Filtered in SQL (a JSON path): title-only papers a lookup did not
    find stay title-only for good, and a poll should not read them all every time."""
    condition = Paper.arxiv_id.is_(None)
    if not again:
        condition = condition & Paper.extra[LOOKUP].as_string().is_(None)
    return condition


def titles_to_look_up(
    store: Store, *, limit: int, again: bool = False
) -> tuple[list[tuple[int, str]], int]:
    """((paper id, title) of at most `limit` papers to look up, newest first; how many
    are waiting in all)."""
    query = (
        select(Paper.id, Paper.title)
        .where(_waiting(again))
        .order_by(Paper.first_seen.desc(), Paper.id.desc())
        .limit(limit)
    )
    with store.sessions() as session:
        todo = [(paper_id, title) for paper_id, title in session.execute(query)]
        total = session.scalar(select(func.count()).select_from(Paper).where(_waiting(again)))
    return todo, int(total or 0)


def learn_identity(
    store: Store,
    paper_id: int,
    paper: ParsedPaper | None,
    now: datetime,
    *,
    error: str | None = None,
) -> bool:
    """Record a title lookup of a title-only paper (`error`: why it got no answer).

    With `paper` (the same title, with an arXiv id) the row takes its id and fills
    what it lacks, or folds into the row already stored under that id; a paper the
    source says was withdrawn is marked so, and never sent. False when the row is
    gone or has an id by now (an ingest got there first).
    """
    return _retried(store, lambda session: _learn(session, paper_id, paper, now, error))


def _learn(
    session: Session, paper_id: int, paper: ParsedPaper | None, now: datetime, error: str | None
) -> bool:
    # Locked while read: an ingest may be giving this very row its id at this moment
    # (PostgreSQL); read without the lock, the row would look title-only and be merged
    # into itself, and deleted.
    values = session.execute(
        select(*_ROW_COLUMNS).where(Paper.id == paper_id).with_for_update()
    ).first()
    if values is None or values.arxiv_id is not None:
        return False
    row = _Row(*values)
    mark: dict[str, Any] = {"at": now.isoformat(), "found": paper.arxiv_id if paper else None}
    if error is not None:
        mark["error"] = error[:300]
    row.extra = {**row.extra, LOOKUP: mark}
    if paper is not None and paper.withdrawn and "withdrawn_at" not in row.extra:
        row.extra["withdrawn_at"] = now.isoformat()
    session.execute(update(Paper).where(Paper.id == row.id).values(extra=row.extra))
    if paper is None or paper.arxiv_id is None:
        return True
    key = paper_key(paper.arxiv_id, paper.title)
    stored = session.execute(
        select(*_ROW_COLUMNS).where(Paper.key == key).with_for_update()
    ).first()
    if stored is None:
        target = _upgrade(session, row, key, paper)
    elif stored.id == row.id:  # cannot happen under the lock; never merge a row into itself
        return False
    else:
        target = _Row(*stored)
        _merge(session, row, target)
    _fill(session, target, paper)
    return True


__all__ = [
    "LOOKUP",
    "IngestResult",
    "infer_issue_date",
    "known_dump",
    "learn_identity",
    "store_dump",
    "titles_to_look_up",
]
