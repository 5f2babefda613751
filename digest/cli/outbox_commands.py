"""`digest outbox` and `digest retry`: look at the delivery queue and nudge it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

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
from digest.errors import BadInput
from digest.outbox import Lease, leases, outbox, requeue, status_counts, take_back_leases
from digest.subscribers.manage import get_subscriber

EmailOption = Annotated[
    str | None,
    typer.Option("--email", help="Only this subscriber's digests.", show_default=False),
]


@app.command("outbox")
def outbox_command(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only digests in this state: pending, sending, retry, sent, failed, "
            "skipped or cancelled.",
            show_default=False,
        ),
    ] = None,
    email: EmailOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
    as_json: JsonOption = False,
    now: NowOption = None,
    config: ConfigOption = None,
) -> None:
    """List digests and their delivery state, newest first, with a count per state.

    Also says which senders hold digests under a lease (after a crash they wait
    for it to run out; `digest retry --stale` takes them back now).
    """
    at = parse_now(now)
    with store_from(settings_from(config)) as store, store.sessions() as session:
        address = get_subscriber(session, email).email if email else None
        rows = outbox(session, status=status, email=address, limit=limit)
        counts = status_counts(session, email=address)
        held = leases(session, now=at)
    if as_json:
        payload = {
            "counts": counts,
            "digests": [row.as_json() for row in rows],
            "leases": [lease_json(lease) for lease in held],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    console = table_console()
    table = Table(
        "id", "email", "period", "status", "tries", "next try (UTC)", "sent (UTC)", "last error"
    )
    for row in rows:
        table.add_row(
            str(row.digest_id),
            row.email,
            row.period,
            row.status,
            str(row.attempts),
            _when(row.next_attempt_at) if row.status == "retry" else "",
            _when(row.sent_at),
            row.last_error or "",
        )
    if rows:
        console.print(table)
    summary = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    console.print(summary or "the outbox is empty")
    for line in lease_lines(held):
        console.print(line, highlight=False)


def lease_json(lease: Lease) -> dict[str, object]:
    return {
        "worker": lease.worker,
        "digests": lease.digests,
        "until": lease.until.isoformat(),
        "running": lease.running,
    }


def lease_lines(held: list[Lease]) -> list[str]:
    """What an operator needs after a crash: who holds what, until when, and the way out."""
    if not held:
        return []
    lines = [f"{lease.describe()}; they come back then" for lease in held]
    lines.append(
        "if that sender is dead, `digest retry --stale` makes them due now "
        "(if it is alive, what it is sending may arrive twice)"
    )
    return lines


@app.command("retry")
def retry_command(
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Also try failed digests again (and make a bounced subscriber active again).",
        ),
    ] = False,
    stale: Annotated[
        bool,
        typer.Option(
            "--stale",
            help="Also take back digests leased by a sender that died (a crash, a kill -9), "
            "instead of waiting for the lease to run out. A sender on this machine that "
            "still runs keeps its digests; one elsewhere cannot be checked: use this "
            "only when it is really gone, or what it is sending may arrive twice.",
        ),
    ] = False,
    email: EmailOption = None,
    now: NowOption = None,
    config: ConfigOption = None,
) -> None:
    """Make waiting retries due now, so the next `digest send` tries them at once."""
    at = parse_now(now)
    if stale and email:
        raise BadInput("--stale takes back every sender's leases; it cannot be used with --email")
    with store_from(settings_from(config)) as store, store.transaction() as session:
        held = leases(session, now=at) if stale else []
        # a holder known to be running (this host, its pid alive) is left alone: taking
        # its rows would send what it is sending a second time
        taken = [lease for lease in held if lease.running is not True]
        # now `retry`, due at once: counted by requeue below
        take_back_leases(session, now=at, workers=[lease.worker for lease in taken])
        address = get_subscriber(session, email).email if email else None
        count = requeue(session, now=at, include_failed=failed, email=address)
    for lease in held:
        if lease.running:
            typer.echo(f"left alone: {lease.describe()}: stop that sender first", err=True)
        else:
            typer.echo(f"warning: took back {lease.describe()}", err=True)
    noun = "digest" if count == 1 else "digests"
    typer.echo(f"{count} {noun} due again; the next `digest send` delivers them")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""
