"""`digest ingest`, `digest lookup-titles`, `digest papers`, `digest dumps`: getting dumps
in, learning who title-only papers are, seeing what is stored.

`digest ingest` keeps going when one dump fails, prints one line per dump and
exits non-zero if any failed, so cron can tell (exit 0 also when everything
was already there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from digest import ingest as ingesting
from digest.cli.app import app
from digest.cli.embed_commands import embed_stored
from digest.cli.options import (
    ConfigOption,
    JsonOption,
    NowOption,
    parse_now,
    settings_from,
    store_from,
    table_console,
)
from digest.cli.progress import progress_bar
from digest.config import Settings
from digest.errors import BadInput, DigestError, SourceError
from digest.sources.folder import DUMP_SUFFIXES, scan_folder
from digest.store.database import Store
from digest.store.schema import Dump, DumpPaper, Paper
from digest.values import arxiv_categories

PROGRESS_FROM = 4  # show a progress bar from this many dumps on

IngestDateOption = Annotated[
    str | None,
    typer.Option(
        "--date",
        help="Issue date (YYYY-MM-DD) to record instead of the one found in the dump; "
        "with --hf, the day to fetch (default: today, UTC); with --arxiv, the day whose "
        "submissions to fetch from the arXiv API.",
        show_default=False,
    ),
]
PapersDateOption = Annotated[
    str | None,
    typer.Option(
        "--date", help="Only the papers of this issue date (YYYY-MM-DD).", show_default=False
    ),
]


def parse_date(value: str | None) -> date | None:
    """`--date` as a date; None when not given."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"--date: not a date: {value!r} (use YYYY-MM-DD)") from None


@dataclass
class _Job:
    label: str
    run: Callable[[], ingesting.IngestResult]


@app.command("ingest")
def ingest_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATH|URL",
            help="Dump files (.txt page dumps, .json daily-papers lists, .xml saved arXiv "
            "feeds), folders of them, or http(s) URLs.",
            show_default=False,
        ),
    ] = None,
    hf: Annotated[
        bool, typer.Option("--hf", help="Fetch the Hugging Face daily papers list.")
    ] = False,
    folder: Annotated[
        bool, typer.Option("--folder", help="Ingest new files in dumps_dir (see config).")
    ] = False,
    arxiv: Annotated[
        str | None,
        typer.Option(
            "--arxiv",
            metavar="CATEGORIES",
            help="Fetch arXiv's announcements in these categories (e.g. cs.CL,cs.LG): "
            "today's RSS feed, or with --date the API's listing of that day's submissions.",
            show_default=False,
        ),
    ] = None,
    date_: IngestDateOption = None,
    config: ConfigOption = None,
    now: NowOption = None,
) -> None:
    """Ingest dumps: print new / already known / skipped papers per dump."""
    settings = settings_from(config)
    when = parse_now(now)
    day = parse_date(date_)
    categories = _arxiv_option(arxiv)
    if not sources and not hf and not folder and not categories:
        raise BadInput("nothing to ingest: give dump files or URLs, --hf, --arxiv or --folder")
    with store_from(settings) as store:
        jobs = _jobs(store, settings, sources or [], hf=hf, folder=folder, now=when, day=day)
        if categories:
            jobs.append(_arxiv_job(store, settings, categories, now=when, day=day))
        failures = _run(jobs)
        embedded, model = embed_stored(store, settings)
    if embedded:
        typer.echo(f"embedded {embedded} papers that had no vector, with {model}")
    if failures:
        if len(jobs) > 1:  # one dump's failure is already said by its error line
            typer.echo(f"{len(failures)} of {len(jobs)} dumps failed", err=True)
        raise typer.Exit(failures[0].exit_code)


def _jobs(
    store: Store,
    settings: Settings,
    sources: list[str],
    *,
    hf: bool,
    folder: bool,
    now: datetime,
    day: date | None,
) -> list[_Job]:
    jobs: list[_Job] = []

    def file_job(path: Path) -> _Job:
        most = settings.sources.max_papers_per_dump
        return _Job(
            str(path),
            lambda: ingesting.ingest_file(store, path, now=now, issue_date=day, max_papers=most),
        )

    def url_job(url: str) -> _Job:
        return _Job(
            url,
            lambda: ingesting.ingest_url(store, url, settings.sources, now=now, issue_date=day),
        )

    for source in sources:
        if source.startswith(("http://", "https://")):
            jobs.append(url_job(source))
        elif "://" in source:
            jobs.append(_Job(source, _refuse(f"{source}: only http:// and https:// URLs are read")))
        elif Path(source).is_dir():
            found = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in DUMP_SUFFIXES)
            if not found:
                typer.echo(f"{source}: no dump files ({', '.join(sorted(DUMP_SUFFIXES))})")
            jobs.extend(file_job(p) for p in found)
        else:
            jobs.append(file_job(Path(source)))
    if hf:
        hf_day = day or now.date()
        jobs.append(
            _Job(
                f"Hugging Face daily papers {hf_day}",
                lambda: ingesting.ingest_hf(store, settings.sources, day=hf_day, now=now),
            )
        )
    if folder:
        scan = scan_folder(Path(settings.dumps_dir), settle_seconds=settings.sources.settle_seconds)
        for path, reason in scan.waiting:
            typer.echo(f"{path}: left for the next pass ({reason})")
        jobs.extend(file_job(p) for p in scan.ready)
        if not scan.ready and not scan.waiting:
            typer.echo(f"{settings.dumps_dir}: no dump files")
    return jobs


def _arxiv_option(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    try:
        categories = arxiv_categories(value)
    except BadInput as exc:
        raise BadInput(f"--arxiv: {exc}") from None
    if not categories:
        raise BadInput("--arxiv: give one or more categories, e.g. --arxiv cs.CL,cs.LG")
    return categories


def _arxiv_job(
    store: Store,
    settings: Settings,
    categories: tuple[str, ...],
    *,
    now: datetime,
    day: date | None,
) -> _Job:
    label = f"arXiv {'+'.join(categories)} " + (f"submitted {day}" if day else "today's feed")
    return _Job(
        label,
        lambda: ingesting.ingest_arxiv(store, settings.sources, categories, now=now, day=day),
    )


def _refuse(message: str) -> Callable[[], ingesting.IngestResult]:
    """A job that fails with `message`, so a bad source is reported in turn with the rest."""

    def run() -> ingesting.IngestResult:
        raise BadInput(message)

    return run


def _run(jobs: list[_Job]) -> list[DigestError]:
    failures: list[DigestError] = []
    progress = progress_bar("ingesting", hidden=len(jobs) < PROGRESS_FROM)
    with progress:
        task = progress.add_task("ingesting", total=len(jobs))
        for job in jobs:
            try:
                result = job.run()
            except DigestError as exc:
                failures.append(exc)
                typer.echo(f"error: {exc}", err=True)
            else:
                for warning in result.warnings:
                    typer.echo(f"warning: {warning}", err=True)
                typer.echo(_describe(job.label, result))
            progress.advance(task)
    return failures


def _describe(label: str, result: ingesting.IngestResult) -> str:
    where = f"dump #{result.dump_id}, issue date {result.issue_date}"
    if result.already_ingested:
        return f"{label}: already ingested ({where}); nothing changed"
    return (
        f"{label}: {result.new_papers} new papers / {result.known_papers} already known / "
        f"{result.skipped} skipped ({where})"
    )


@app.command("lookup-titles")
def lookup_titles_command(
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Look up at most this many titles (default: sources.title_lookup_per_run).",
            show_default=False,
        ),
    ] = None,
    again: Annotated[
        bool,
        typer.Option("--again", help="Also ask again for titles an earlier lookup did not find."),
    ] = False,
    config: ConfigOption = None,
    now: NowOption = None,
) -> None:
    """Find the arXiv id, authors and links of papers that came without an id (page
    dumps), by exact title on Hugging Face's paper search (sources.hf_base_url).

    Only a result with the same title (case and punctuation aside) is taken. Each title
    is asked once (see --again), at most one request per sources.title_lookup_seconds.
    `digest run` does the same every poll_minutes when sources.title_lookup is on.
    Exit 4 if Hugging Face fails; what was found before that is kept.
    """
    settings = settings_from(config)
    when = parse_now(now)
    with store_from(settings) as store:
        progress = progress_bar("looking up titles")
        with progress:
            task = progress.add_task("looking up", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = ingesting.look_up_titles(
                store,
                settings.sources,
                now=when,
                limit=limit or settings.sources.title_lookup_per_run,
                again=again,
                progress=advance,
            )
    if report.asked == 0 and report.error is None:
        typer.echo("no paper without an arXiv id is waiting for a lookup")
        return
    typer.echo(report.summary())
    if report.error is not None:
        raise SourceError(report.error)


@app.command("papers")
def papers_command(
    date_: PapersDateOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show at most this many (0: all).")
    ] = 100,
    json_: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List stored papers: those of one issue date, or the newest first."""
    settings = settings_from(config)
    day = parse_date(date_)
    with store_from(settings) as store:
        rows = _papers(store, day, limit)
    if json_:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no papers{f' for {day}' if day else ''}")
        return
    table = Table("id", "title", "arXiv", "upvotes", "first seen")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["title"],
            row["arxiv_id"] or "",
            "" if row["upvotes"] is None else str(row["upvotes"]),
            row["first_seen"][:16].replace("T", " "),
        )
    table_console().print(table)


def _papers(store: Store, day: date | None, limit: int) -> list[dict[str, Any]]:
    upvotes = func.max(DumpPaper.upvotes).label("upvotes")
    query = select(Paper, upvotes).join(DumpPaper, DumpPaper.paper_id == Paper.id)
    if day is not None:
        query = (
            query.join(Dump, Dump.id == DumpPaper.dump_id)
            .where(Dump.issue_date == day)
            .group_by(Paper.id)
            .order_by(func.min(DumpPaper.position), Paper.id)
        )
    else:
        query = query.group_by(Paper.id).order_by(Paper.first_seen.desc(), Paper.id.desc())
    if limit:
        query = query.limit(limit)
    with store.sessions() as session:
        return [
            {
                "id": paper.id,
                "key": paper.key,
                "arxiv_id": paper.arxiv_id,
                "title": paper.title,
                "abstract": paper.abstract,
                "authors": paper.authors,
                "url": paper.url,
                "upvotes": votes,
                "published_at": paper.published_at.isoformat() if paper.published_at else None,
                "first_seen": paper.first_seen.isoformat(),
            }
            for paper, votes in session.execute(query)
        ]


@app.command("dumps")
def dumps_command(json_: JsonOption = False, config: ConfigOption = None) -> None:
    """List ingested dumps, newest first."""
    settings = settings_from(config)
    with store_from(settings) as store, store.sessions() as session:
        dumps = session.scalars(select(Dump).order_by(Dump.id.desc())).all()
    rows: list[dict[str, Any]] = [
        {
            "id": d.id,
            "issue_date": d.issue_date.isoformat(),
            "source": d.source,
            "source_ref": d.source_ref,
            "papers": d.paper_count,
            "new_papers": d.new_paper_count,
            "ingested_at": d.ingested_at.isoformat(),
            "sha256": d.sha256,
        }
        for d in dumps
    ]
    if json_:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no dumps ingested yet")
        return
    table = Table("id", "issue date", "source", "papers", "new", "ingested at", "from")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["issue_date"],
            row["source"],
            str(row["papers"]),
            str(row["new_papers"]),
            row["ingested_at"][:16].replace("T", " "),
            row["source_ref"],
        )
    table_console().print(table)
