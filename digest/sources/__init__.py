"""Sources of dumps: one module per input format or origin, all yielding `ParsedDump`.

    textdump.py   the plain-text page dumps ("Get trending papers ..." pages)
    hf_api.py     the Hugging Face daily_papers JSON, from a file or over HTTP
    folder.py     which files in the watched folder are ready to be read

Sources only turn bytes into plain values; `digest.ingest` stores them. Only
this package talks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


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


@dataclass(frozen=True, slots=True)
class ParsedDump:
    """What a source read from one dump, before anything is stored.

    `month_day` is a date line without a year (text dumps); `issue_date` a full
    date the source itself knows (the Hugging Face day). Ingest turns either
    into the dump's issue date.
    """

    source: str  # "text" or "hf"
    papers: tuple[ParsedPaper, ...]
    month_day: tuple[int, int] | None = None
    issue_date: date | None = None
    warnings: tuple[str, ...] = ()
