"""Moving a subscriber list in and out as CSV, all or nothing.

Columns: email, topics (separated by `;`), timezone, hour, frequency, and
optionally weekday and max_papers. A first row naming the columns is
optional; with it the columns may come in any order. Empty cells mean "the
default" (new subscribers) or "unchanged" (existing ones).

`read_rows` checks every row without a database, so a bad row refuses the
whole file, naming its line, before anything is written; `import_rows` then
applies all rows in the caller's one transaction. Addresses that have
unsubscribed or bounced are left alone: an old list must not bring back
people who left.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import ScheduleSettings
from digest.errors import BadInput
from digest.filters import parse, to_text
from digest.store.reads import chunks
from digest.store.schema import Subscriber
from digest.subscribers import manage as subscriptions

COLUMNS = ("email", "topics", "timezone", "hour", "frequency", "weekday", "max_papers")
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


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (email, why)


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
    return report


def export_csv(subscribers: Iterable[Subscriber]) -> str:
    """The CSV `import_rows` reads back into the same subscribers, header first."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for subscriber in subscribers:
        cells = [
            subscriber.email,
            "; ".join(_exportable(topic.query) for topic in subscriber.topics),
            subscriber.timezone,
            subscriber.send_hour,
            subscriber.frequency,
            subscriptions.weekday_name(subscriber.weekday),
            subscriber.max_papers,
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
        )
    except BadInput as exc:
        raise BadInput(f"line {line}: {exc}") from None


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
