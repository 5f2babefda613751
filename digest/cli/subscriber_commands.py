"""Subscribers from the command line: subscribe, confirm, unsubscribe, topics, import/export.

Each command opens the store, calls one function of `digest.subscribers.manage`
(or `digest.subscribers.csvfile`) inside one transaction and prints the outcome;
any `BadInput` rolls the transaction back, so a refused command leaves the
database as it was.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from digest.cli.app import app
from digest.cli.options import (
    ConfigOption,
    JsonOption,
    NowOption,
    parse_now,
    settings_from,
    store_from,
    table_console,
)
from digest.config import Settings
from digest.errors import BadInput
from digest.filters import operator_hints
from digest.store.schema import Digest, Subscriber
from digest.subscribers import csvfile as subscriber_csv
from digest.subscribers import manage as subscriptions
from digest.subscribers.confirmation import send_confirmation
from digest.subscribers.votes import list_votes, votes_of_many

topics_app = typer.Typer(help="List, add or remove one subscriber's topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

EmailArgument = Annotated[str, typer.Argument(help="The subscriber's email address.")]


@contextmanager
def _transaction(config: Path | None) -> Iterator[tuple[Settings, Session]]:
    settings = settings_from(config)
    with store_from(settings) as store, store.transaction() as session:
        yield settings, session


# ------------------------------------------------------------------ subscribe


def _operator_notes(queries: list[str]) -> None:
    """Say when a filter has a lower-case `not`/`or`/`and` (an ordinary word, not the operator)."""
    for query in queries:
        for hint in operator_hints(query):
            typer.echo(f"note: in {query!r}, {hint}", err=True)


@app.command("subscribe")
def subscribe_command(
    email: EmailArgument,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            "-t",
            help="A topic filter, e.g. '\"diffusion models\" -video'. Repeat for several. "
            "See README, Topic filters.",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="A short name for the --topic at the same position (shown in the email).",
            show_default=False,
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA timezone, e.g. Europe/Berlin.", show_default=False),
    ] = None,
    hour: Annotated[
        int | None,
        typer.Option("--hour", help="Local hour (0-23) the digest is sent.", show_default=False),
    ] = None,
    weekly: Annotated[bool, typer.Option("--weekly", help="One digest a week.")] = False,
    daily: Annotated[bool, typer.Option("--daily", help="One digest a day.")] = False,
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="Weekday of a weekly digest (mon..sun); implies --weekly.",
            show_default=False,
        ),
    ] = None,
    max_papers: Annotated[
        int | None,
        typer.Option("--max-papers", help="Most papers in one digest (1-100).", show_default=False),
    ] = None,
    confirmed: Annotated[
        bool,
        typer.Option("--confirmed", help="The address is known to be theirs: start active."),
    ] = False,
    config: ConfigOption = None,
    now: NowOption = None,
) -> None:
    """Subscribe an address, or update an existing subscription (never a duplicate).

    Settings not given keep their value (new subscribers get the schedule
    defaults); topics are added to the ones already there. New subscribers
    are pending until confirmed, unless --confirmed. An address that had
    unsubscribed is subscribed again. Exits 1 when nothing changed.
    """
    if weekly and daily:
        raise BadInput("--weekly and --daily exclude each other")
    if daily and day is not None:
        raise BadInput("--day sets the weekday of weekly digests; it cannot go with --daily")
    frequency = "weekly" if weekly or day is not None else "daily" if daily else None
    moment = parse_now(now)
    _operator_notes(topic or [])
    with _transaction(config) as (settings, session):
        outcome = subscriptions.subscribe(
            session,
            email,
            topic or [],
            now=moment,
            defaults=settings.schedule,
            timezone=timezone,
            send_hour=hour,
            frequency=frequency,
            weekday=day,
            max_papers=max_papers,
            confirmed=confirmed,
            labels=label,
        )
        subscriber = session.get_one(Subscriber, outcome.subscriber_id)
        needs_confirmation = (
            settings.web.double_opt_in
            and subscriber.status == "pending"
            and (outcome.created or outcome.reactivated)
        )
        confirmation = (subscriber.id, subscriber.email, [t.query for t in subscriber.topics])
        if outcome.created:
            typer.echo(f"subscribed {subscriber.email} ({_status_note(subscriber)})")
            typer.echo(f"  {_schedule(subscriber)}")
            for t in subscriber.topics:
                typer.echo(f"  topic #{t.id}: {t.query}" + (f"  [{t.label}]" if t.label else ""))
        elif not outcome.changes:
            stored = (
                f" (the address is stored as {subscriber.email}; addresses are compared "
                "without regard to case)"
                if email.strip() != subscriber.email
                else ""
            )
            typer.echo(
                f"{subscriber.email} is already subscribed ({subscriber.status}) with these "
                f"topics and settings; nothing changed{stored}",
                err=True,
            )
            raise typer.Exit(1)
        else:
            verb = "re-subscribed" if outcome.reactivated else "updated"
            typer.echo(f"{verb} {subscriber.email} ({_status_note(subscriber)}):")
            for change in outcome.changes:
                typer.echo(f"  - {change}")
    if needs_confirmation:
        # After the commit, so the link's row exists even if sending fails.
        subscriber_id, address, queries = confirmation
        send_confirmation(
            settings, subscriber_id=subscriber_id, email=address, topics=queries, now=moment
        )
        typer.echo(f"sent a confirmation link to {address}; digests start once it is clicked")


@app.command("confirm")
def confirm_command(
    email: EmailArgument, config: ConfigOption = None, now: NowOption = None
) -> None:
    """Confirm a pending subscriber, so digests start going out."""
    moment = parse_now(now)
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        if subscriptions.confirm(session, subscriber, now=moment):
            typer.echo(f"confirmed {subscriber.email}; digests start: {_schedule(subscriber)}")
        else:
            typer.echo(f"{subscriber.email} was already confirmed")


@app.command("unsubscribe")
def unsubscribe_command(
    email: EmailArgument, config: ConfigOption = None, now: NowOption = None
) -> None:
    """Stop all mail to an address; its history is kept, planned digests are cancelled."""
    moment = parse_now(now)
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        planned = subscriptions.count_open_digests(session, subscriber)
        if not subscriptions.unsubscribe(session, subscriber, now=moment):
            when = subscriber.unsubscribed_at
            since = f" since {when:%Y-%m-%d %H:%M} UTC" if when else ""
            typer.echo(f"{subscriber.email} was already unsubscribed{since}")
            return
        note = f"; cancelled {planned} planned digest{'s' * (planned != 1)}" if planned else ""
        typer.echo(f"unsubscribed {subscriber.email}{note}")


# --------------------------------------------------------------------- topics


@topics_app.command("list")
def topics_list(
    email: EmailArgument, config: ConfigOption = None, json_: JsonOption = False
) -> None:
    """Show a subscriber's topics with their numbers (for `topics remove`)."""
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        if json_:
            typer.echo(json.dumps([_topic_json(t) for t in subscriber.topics], indent=2))
            return
        if not subscriber.topics:
            typer.echo(f"{subscriber.email} has no topics")
        for t in subscriber.topics:
            typer.echo(f"#{t.id}  {t.query}" + (f"  [{t.label}]" if t.label else ""))


@topics_app.command("add")
def topics_add(
    email: EmailArgument,
    query: Annotated[str, typer.Argument(help="The topic filter (quote it in the shell).")],
    label: Annotated[
        str | None, typer.Option("--label", help="A short name for it.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    now: NowOption = None,
) -> None:
    """Add a topic filter to a subscriber."""
    moment = parse_now(now)
    _operator_notes([query])
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        topic = subscriptions.add_topic(session, subscriber, query, now=moment, label=label)
        typer.echo(f"added topic #{topic.id} to {subscriber.email}: {topic.query}")


@topics_app.command("remove")
def topics_remove(
    email: EmailArgument,
    topic: Annotated[
        str, typer.Argument(help="The topic's number (#3 or 3), its exact text or its label.")
    ],
    config: ConfigOption = None,
) -> None:
    """Remove one of a subscriber's topics."""
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        found = subscriptions.find_topic(subscriber, topic)
        subscriptions.remove_topic(session, subscriber, found.id if found else topic)
        assert found is not None  # remove_topic raised otherwise
        typer.echo(f"removed topic #{found.id} from {subscriber.email}: {found.query}")
        if not subscriber.topics:
            typer.echo(
                f"note: {subscriber.email} has no topics left; no digests until one is added",
                err=True,
            )


# ---------------------------------------------------------------------- reads


@app.command("subscribers")
def subscribers_command(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only this status: pending, active, unsubscribed or bounced.",
            show_default=False,
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", help="Only addresses containing this text (any case).", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Show at most N (the count still says how many).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """List subscribers with their status, schedule and number of topics."""
    with _transaction(config) as (_, session):
        found, total = subscriptions.list_subscribers(
            session, status=status, search=search, limit=limit
        )
        if json_:
            typer.echo(json.dumps([_subscriber_json(s) for s in found], indent=2))
            return
        table = Table("email", "status", "schedule", "topics", "since")
        for s in found:
            table.add_row(
                s.email, s.status, _schedule(s), str(len(s.topics)), f"{s.subscribed_at:%Y-%m-%d}"
            )
        if found:
            table_console().print(table)
        shown = f" (showing {len(found)}: --limit)" if len(found) < total else ""
        typer.echo(f"{total} subscriber{'s' * (total != 1)}{shown}")


@app.command("show")
def show_command(
    email: EmailArgument, config: ConfigOption = None, json_: JsonOption = False
) -> None:
    """Show one subscriber: settings, topics and their last digests."""
    with _transaction(config) as (_, session):
        subscriber = subscriptions.get_subscriber(session, email)
        digests = subscriptions.recent_digests(session, subscriber)
        votes = list_votes(session, subscriber)
        if json_:
            data = _subscriber_json(subscriber)
            data["digests"] = [_digest_json(d) for d in digests]
            data["votes"] = [vote.as_json() for vote in votes]
            typer.echo(json.dumps(data, indent=2))
            return
        console = Console(soft_wrap=True)
        typer.echo(f"{subscriber.email}  ({_status_note(subscriber)})")
        typer.echo(f"  schedule:   {_schedule(subscriber)}")
        typer.echo(f"  subscribed: {_when(subscriber.subscribed_at)}")
        if subscriber.confirmed_at:
            typer.echo(f"  confirmed:  {_when(subscriber.confirmed_at)}")
        if subscriber.unsubscribed_at:
            typer.echo(f"  left:       {_when(subscriber.unsubscribed_at)}")
        if subscriber.paused_until:
            typer.echo(f"  paused until {_when(subscriber.paused_until)}")
        typer.echo("topics:")
        for t in subscriber.topics:
            typer.echo(f"  #{t.id}  {t.query}" + (f"  [{t.label}]" if t.label else ""))
        if votes:
            typer.echo(f"votes ({len(votes)}; `digest feedback --undo` removes one):")
            for vote in votes:
                sign = "+" if vote.vote == "up" else "-"
                typer.echo(f"  {sign} #{vote.topic_id}  {vote.arxiv_id or vote.title}")
        if not digests:
            typer.echo("no digests yet")
            return
        table = Table("period", "status", "papers", "planned", "sent", "attempts", "last error")
        for d in digests:
            table.add_row(
                d.period,
                d.status,
                str(len(d.items)),
                _when(d.planned_at),
                _when(d.sent_at),
                str(d.attempts),
                d.last_error or "",
            )
        console.print(table)


# -------------------------------------------------------------- import/export


@app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: email, topics (';'-separated), timezone, "
            "hour, frequency[, weekday, max_papers]."
        ),
    ],
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="New subscribers start active, not pending.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and report; write nothing.")
    ] = False,
    config: ConfigOption = None,
    now: NowOption = None,
) -> None:
    """Import subscribers from CSV: all rows or none (a bad row names its line)."""
    moment = parse_now(now)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(f"{file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror}") from None
    try:
        rows = subscriber_csv.read_rows(text)
    except BadInput as exc:  # "line 3: ..." -> "people.csv line 3: ..."
        message = str(exc)
        raise BadInput(
            f"{file} {message}" if message.startswith("line ") else f"{file}: {message}"
        ) from None
    if not rows:
        raise BadInput(f"{file}: no subscriber rows")
    settings = settings_from(config)
    # Closing the session without a commit rolls back.
    with store_from(settings) as store, store.sessions() as session:
        try:
            report = subscriber_csv.import_rows(
                session, rows, now=moment, defaults=settings.schedule, confirmed=confirmed
            )
        except BadInput as exc:
            raise BadInput(f"{file} {exc}") from None
        if dry_run:
            session.rollback()
        else:
            session.commit()
    prefix = "would import" if dry_run else "imported"
    typer.echo(
        f"{prefix} {len(rows)} rows: {len(report.created)} new, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped"
    )
    for address, status in report.skipped:
        typer.echo(
            f"  skipped {address}: {status} (re-subscribe with `digest subscribe` if they asked)"
        )
    if report.votes or report.votes_left_out:
        typer.echo(f"  votes: {report.votes} recorded, {len(report.votes_left_out)} left out")
    for address, paper in report.votes_left_out[:20]:
        typer.echo(f"  left out a vote of {address}: no stored paper {paper!r} (ingest it first)")


@app.command("export")
def export_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write to this file instead of stdout.", dir_okay=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only this status (default: pending and active).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Export subscribers as CSV, in the format `digest import` reads."""
    with _transaction(config) as (_, session):
        found, _ = subscriptions.list_subscribers(session, status=status)
        if status is None:
            found = [s for s in found if s.status not in subscriptions.ENDED_STATUSES]
        text = subscriber_csv.export_csv(found, votes_of_many(session, [s.id for s in found]))
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{out}: cannot write it: {exc.strerror}") from None
    typer.echo(f"exported {len(found)} subscribers to {out}", err=True)


# -------------------------------------------------------------------- helpers


def _status_note(subscriber: Subscriber) -> str:
    if subscriber.status == "pending":
        return f"pending until confirmed: digest confirm {subscriber.email}"
    return subscriber.status


def _schedule(subscriber: Subscriber) -> str:
    when = (
        f"weekly on {subscriptions.weekday_name(subscriber.weekday)}"
        if subscriber.frequency == "weekly"
        else "daily"
    )
    return (
        f"{when} at {subscriber.send_hour:02d}:00 {subscriber.timezone}, "
        f"up to {subscriber.max_papers} papers"
    )


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _topic_json(topic: Any) -> dict[str, Any]:
    return {"id": topic.id, "query": topic.query, "label": topic.label}


def _subscriber_json(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "timezone": subscriber.timezone,
        "send_hour": subscriber.send_hour,
        "frequency": subscriber.frequency,
        "weekday": subscriptions.weekday_name(subscriber.weekday),
        "max_papers": subscriber.max_papers,
        "topics": [_topic_json(t) for t in subscriber.topics],
        "subscribed_at": _iso(subscriber.subscribed_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "paused_until": _iso(subscriber.paused_until),
    }


def _digest_json(digest: Digest) -> dict[str, Any]:
    return {
        "period": digest.period,
        "status": digest.status,
        "papers": len(digest.items),
        "planned_at": _iso(digest.planned_at),
        "sent_at": _iso(digest.sent_at),
        "attempts": digest.attempts,
        "last_error": digest.last_error,
    }
