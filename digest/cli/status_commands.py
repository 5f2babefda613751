"""`digest status`: is the service healthy? The daemon, its jobs, the sources, the outbox.

Everything shown is what the service recorded (`digest.health`); the next
run times are the schedule's. Exit 1 when something needs attention, so a
monitor can run it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
from digest.cli.outbox_commands import lease_json, lease_lines
from digest.daemon import next_fire_times
from digest.health import Health, as_json, read_health
from digest.outbox import Lease, due_count, leases, status_counts


@app.command("status")
def status(
    config: ConfigOption = None, now: NowOption = None, as_json_: JsonOption = False
) -> None:
    """Is `digest run` alive; each job's last run, success and error; sources; the outbox.

    Exits 1 when something needs attention (no new dump for two days, a daemon
    that stopped ticking, a job whose last run failed, digests waiting to be
    retried), so a monitor can run it.
    """
    settings = settings_from(config)
    moment = parse_now(now)
    with store_from(settings) as store, store.sessions() as session:
        health = read_health(session, now=moment, tick_seconds=settings.schedule.tick_seconds)
        counts = {name: n for name, n in status_counts(session).items() if n}
        due = due_count(session, now=moment)
        held = leases(session, now=moment)
    upcoming = next_fire_times(settings, moment)
    data = {
        **as_json(health),
        "next_runs": {name: when.isoformat() if when else None for name, when in upcoming.items()},
        "outbox": {name: int(count) for name, count in sorted(counts.items())},
        "due_now": due,
        "leases": [lease_json(lease) for lease in held],
    }
    if as_json_:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(health, data, upcoming, held, due)
    if health.warnings:
        raise typer.Exit(1)


def _print(
    health: Health,
    data: dict[str, Any],
    upcoming: Mapping[str, datetime | None],
    held: list[Lease],
    due: int,
) -> None:
    console = table_console()
    console.print(f"digest run: {health.daemon['said']}", highlight=False)
    last = health.last_ingest
    if last is None:
        console.print("last ingest: never (run `digest ingest` or drop dumps into dumps_dir)")
    else:
        at, ref, papers = last["at"], last["source_ref"], last["papers"]
        console.print(f"last ingest: {at:%Y-%m-%d %H:%M}Z  {ref}  ({papers} papers)")
    for source, entry in sorted(health.sources.items()):
        if len(health.sources) > 1:
            console.print(f"  {source}: {entry['at']:%Y-%m-%d %H:%M}Z ({entry['papers']} papers)")
    table = Table(
        "job", "last started (UTC)", "last success", "last error", "next run", title="jobs"
    )
    for name, when in upcoming.items():
        run = health.runs.get(name)
        started = "never"
        success = "-"
        if run is not None:
            started = _when(run.started_at) + ("" if run.finished_at else " (running)")
            success = _when(run.ok_at) + (f" ({run.result})" if run.result else "")
        table.add_row(
            name,
            started,
            success,
            (run.error or "") if run else "",
            f"{when:%Y-%m-%d %H:%M:%S}" if when else "-",
        )
    console.print(table)
    outbox = Table("status", "digests", title=f"outbox ({due} due now)")
    for name, count in data["outbox"].items():
        outbox.add_row(name, str(count))
    console.print(outbox if data["outbox"] else "outbox: empty")
    for line in lease_lines(held):
        console.print(line, highlight=False)
    for warning in health.warnings:
        console.print(f"warning: {warning}", highlight=False)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"
