"""Moving a subscriber list in and out as CSV, all or nothing.

Columns: email, topics (separated by `;`), timezone, hour, frequency, and
optionally weekday, max_papers and votes. A first row naming the columns is
optional; with it the columns may come in any order. Empty cells mean "the
default" (new subscribers) or "unchanged" (existing ones). A votes cell
carries a reader's "more / less like this", separated by `;`, each
`up|down <topic number> <paper>`: the topic's place in the row's topics
(from 1) and the paper's arXiv id or key. A vote for a paper this store does
not hold is reported and left out (lists move between installations before
their dumps do); anything else wrong refuses the file.

`read_rows` checks every row without a database, so a bad row refuses the
whole file, naming its line, before anything is written; `import_rows` then
applies all rows in the caller's one transaction. Addresses that have
unsubscribed or bounced are left alone: an old list must not bring back
people who left.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import ScheduleSettings
from digest.errors import BadInput
from digest.filters import parse, to_text
from digest.store.reads import chunks, find_paper
from digest.store.schema import Subscriber
from digest.subscribers import manage as subscriptions
from digest.subscribers.votes import VoteRow, cast_vote

COLUMNS = ("email", "topics", "timezone", "hour", "frequency", "weekday", "max_papers", "votes")
REQUIRED_COLUMNS = ("email", "topics")
TOPIC_SEPARATOR = ";"
T = TypeVar("T")


@dataclass(frozen=True)
class CsvRow:
    """One checked row; None means the cell was empty."""

    line: int
    email: str
    topics: tuple[str, ...]
    timezone: str | None = None
    hour: int | None = None
    frequency: str | None = None
    weekday: int | None = None
    max_papers: int | None = None
    votes: tuple[tuple[str, int, str], ...] = ()  # (up/down, topic number from 1, paper)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (email, why)
    votes: int = 0  # votes recorded (new or changed)
    votes_left_out: list[tuple[str, str]] = field(default_factory=list)  # (email, paper)


MAX_REPORTED_ROWS = 20
"""Bad rows listed in one refusal; the rest are counted."""


def read_rows(text: str) -> list[CsvRow]:
    """Parse and check a whole CSV text; BadInput naming every bad row's line (up to
    MAX_REPORTED_ROWS), so a list with several mistakes is fixed in one pass."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[CsvRow] = []
    problems: list[str] = []
    columns: Sequence[str] = COLUMNS
    first_line_of: dict[str, int] = {}
    seen_data = False
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if not seen_data and cells[0].strip().lower() in COLUMNS:  # a header row
                columns = _header(cells, line)
                continue
            seen_data = True
            try:
                row = _row(cells, columns, line)
            except BadInput as exc:
                problems.append(str(exc))
                continue
            if row.email in first_line_of:
                problems.append(
                    f"line {line}: {row.email} already appears on line {first_line_of[row.email]} "
                    "(addresses are compared without regard to case)"
                )
                continue
            first_line_of[row.email] = line
            rows.append(row)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV: {exc}")
    if len(problems) == 1:
        raise BadInput(problems[0])
    if problems:
        listed = problems[:MAX_REPORTED_ROWS]
        more = len(problems) - len(listed)
        tail = f"\n  … and {more} more" if more else ""
        raise BadInput(
            f"{len(problems)} rows are wrong; nothing was imported:\n  "
            + "\n  ".join(listed)
            + tail
        )
    return rows


def import_rows(
    session: Session,
    rows: Iterable[CsvRow],
    *,
    now: datetime,
    defaults: ScheduleSettings,
    confirmed: bool = False,
) -> ImportReport:
    """Create or update a subscriber per row in the caller's transaction.

    New addresses (most of a first import) are checked one by one, so an
    error still names its line, then created together (`create_many`);
    addresses already known go through `subscribe`, which merges topics and
    settings.
    """
    report = ImportReport()
    rows = list(rows)
    known: dict[str, Subscriber] = {}
    for part in chunks(sorted({row.email for row in rows})):
        found = session.scalars(select(Subscriber).where(Subscriber.email.in_(part)))
        known.update((subscriber.email, subscriber) for subscriber in found)
    fresh = []
    for row in rows:
        existing = known.get(row.email)
        if existing is not None and existing.status in subscriptions.ENDED_STATUSES:
            report.skipped.append((row.email, existing.status))
            continue
        entry = subscriptions.NewSubscription(
            row.email,
            row.topics,
            timezone=row.timezone,
            send_hour=row.hour,
            frequency=row.frequency,
            weekday=row.weekday,
            max_papers=row.max_papers,
        )
        try:
            if existing is None:
                fresh.append(
                    subscriptions.checked_new(
                        entry, now=now, defaults=defaults, confirmed=confirmed
                    )
                )
                report.created.append(row.email)
                continue
            outcome = subscriptions.subscribe(
                session,
                row.email,
                row.topics,
                now=now,
                defaults=defaults,
                timezone=row.timezone,
                send_hour=row.hour,
                frequency=row.frequency,
                weekday=row.weekday,
                max_papers=row.max_papers,
                confirmed=confirmed,
            )
        except BadInput as exc:
            raise BadInput(f"line {row.line}: {exc}") from None
        if outcome.changes:
            report.updated.append(row.email)
        else:
            report.unchanged.append(row.email)
    subscriptions.create_many(session, fresh, now=now)
    _import_votes(session, [row for row in rows if row.votes], report, now=now)
    return report


def _import_votes(
    session: Session, rows: Sequence[CsvRow], report: ImportReport, *, now: datetime
) -> None:
    """Each row's votes, for the subscriber and topic the row names (after its topics
    were added); a paper not stored here is reported, not fatal."""
    left = {email for email, _ in report.skipped}
    for row in rows:
        if row.email in left:
            continue
        subscriber = subscriptions.get_subscriber(session, row.email)
        for direction, number, ref in row.votes:
            topic = subscriptions.find_topic(subscriber, row.topics[number - 1])
            paper = find_paper(session, ref)
            if paper is None or topic is None:
                report.votes_left_out.append((row.email, ref))
                continue
            if cast_vote(session, subscriber, paper, topic, direction, now=now):
                report.votes += 1


def export_csv(
    subscribers: Iterable[Subscriber], votes: Mapping[int, Sequence[VoteRow]] | None = None
) -> str:
    """The CSV `import_rows` reads back into the same subscribers, header first; with
    `votes` (per subscriber id, as `list_votes` gives them) their votes too."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for subscriber in subscribers:
        place = {topic.id: i for i, topic in enumerate(subscriber.topics, 1)}
        cast = "; ".join(
            f"{vote.vote} {place[vote.topic_id]} {vote.arxiv_id or vote.paper_key}"
            for vote in (votes or {}).get(subscriber.id, ())
            if vote.topic_id in place
        )
        cells = [
            subscriber.email,
            "; ".join(_exportable(topic.query) for topic in subscriber.topics),
            subscriber.timezone,
            subscriber.send_hour,
            subscriber.frequency,
            subscriptions.weekday_name(subscriber.weekday),
            subscriber.max_papers,
            cast,
        ]
        writer.writerow([_inert(cell) if isinstance(cell, str) else cell for cell in cells])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet run a cell as a formula (`-video diffusion` included)."""


def _inert(cell: str) -> str:
    """A cell a spreadsheet shows as text: a leading apostrophe before a formula start.

    The OWASP advice for CSV injection; `read_rows` removes the apostrophe
    again, so an exported list imports back with its topics as typed.
    """
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _as_typed(cell: str) -> str:
    """The cell before `_inert`: an apostrophe that guards a formula start goes."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def _exportable(query: str) -> str:
    """The topic as typed, unless it holds the separator: then its canonical form (never does)."""
    if TOPIC_SEPARATOR not in query:
        return query
    return to_text(parse(query))


def _header(cells: list[str], line: int) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise BadInput(
            f"line {line}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise BadInput(f"line {line}: the header has no {missing[0]!r} column")
    if len(set(names)) != len(names):
        raise BadInput(f"line {line}: a column is named twice")
    return names


def _row(cells: list[str], columns: Sequence[str], line: int) -> CsvRow:
    if len(cells) > len(columns):
        raise BadInput(
            f"line {line}: {len(cells)} cells, but only {len(columns)} columns "
            f"({', '.join(columns)}); put topics in one cell separated by ';'"
        )
    value = {name: _as_typed(cell.strip()) for name, cell in zip(columns, cells, strict=False)}
    try:
        email = subscriptions.normalise_email(value.get("email", ""))
        topics = tuple(
            _checked_topic(part)
            for part in value.get("topics", "").split(TOPIC_SEPARATOR)
            if part.strip()
        )
        return CsvRow(
            line=line,
            email=email,
            topics=topics,
            timezone=_optional(value, "timezone", subscriptions.check_timezone),
            hour=_optional(value, "hour", lambda v: subscriptions.check_hour(_int(v, "hour"))),
            frequency=_optional(value, "frequency", subscriptions.check_frequency),
            weekday=_optional(value, "weekday", subscriptions.parse_weekday),
            max_papers=_optional(
                value,
                "max_papers",
                lambda v: subscriptions.check_max_papers(_int(v, "max_papers")),
            ),
            votes=_votes(value.get("votes", ""), len(topics)),
        )
    except BadInput as exc:
        raise BadInput(f"line {line}: {exc}") from None


def _votes(cell: str, topics: int) -> tuple[tuple[str, int, str], ...]:
    """A votes cell: `up|down <topic number> <paper>` separated by `;`."""
    votes = []
    for part in cell.split(TOPIC_SEPARATOR):
        if not part.strip():
            continue
        words = part.split(maxsplit=2)
        if (
            len(words) != 3
            or words[0].lower() not in ("up", "down")
            or not (words[1].isascii() and words[1].isdigit())
        ):
            raise BadInput(
                f"vote {part.strip()!r}: write it as 'up|down <topic number> <paper>', "
                "e.g. 'up 1 2401.12345'"
            )
        number = int(words[1])
        if not 1 <= number <= topics:
            raise BadInput(
                f"vote {part.strip()!r}: topic number {number}, but the row has {topics} topics"
            )
        votes.append((words[0].lower(), number, words[2].strip()))
    return tuple(votes)


def _checked_topic(text: str) -> str:
    stored, _ = subscriptions.check_topic(text)
    return stored


def _optional(value: dict[str, str], name: str, check: Callable[[str], T]) -> T | None:
    cell = value.get(name, "")
    return check(cell) if cell else None


def _int(cell: str, name: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise BadInput(f"{name} must be a whole number, not {cell!r}") from None
