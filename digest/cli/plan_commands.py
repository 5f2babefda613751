"""`digest plan`: decide who is due and record what goes into their digests."""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Annotated

import typer

from digest.cli.app import app
from digest.cli.options import (
    ConfigOption,
    JsonOption,
    NowOption,
    parse_now,
    settings_from,
    store_from,
)
from digest.cli.progress import working
from digest.planner import PlanReport, plan_due
from digest.store.planning import planning_turn

EmailOption = Annotated[
    str | None,
    typer.Option("--email", "-e", help="Only this subscriber.", show_default=False),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Work out the digests but record nothing.")
]


@app.command("plan")
def plan(
    config: ConfigOption = None,
    now: NowOption = None,
    email: EmailOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Plan the digests that are due now: choose their papers and record them for delivery."""
    settings = settings_from(config)
    moment = parse_now(now)
    with store_from(settings) as store, working("planning"):
        # A full pass waits for one running elsewhere (a sender's), then plans what
        # that one left; a dry run writes nothing and needs no turn.
        full = email is None and not dry_run
        with (
            planning_turn(store.engine, wait=True) if full else nullcontext(),
            store.sessions() as session,
        ):
            report = plan_due(session, settings, now=moment, email=email, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
        return
    print_report(report, dry_run=dry_run)


def report_json(report: PlanReport) -> dict[str, object]:
    return {
        "now": report.now.isoformat(),
        "planned": [
            {
                "digest_id": p.digest_id,
                "email": p.email,
                "period": p.period,
                "status": p.status,
                "papers": p.papers,
                "candidates": p.candidates,
                "window_start": p.window_start.isoformat(),
                "message_id": p.message_id,
                "reason": p.reason,
            }
            for p in report.planned
        ],
        "skipped": [{"email": email, "reason": reason} for email, reason in report.skipped],
    }


def print_report(report: PlanReport, *, dry_run: bool) -> None:
    """One line per subscriber (long reasons stay whole and greppable), then a summary.

    Plain writes, not Rich: a Rich console checks the terminal and measures each
    line, a large part of a big plan's time, for text that has no markup.
    """
    lines = []
    for p in report.planned:
        papers = f"{p.papers} paper{'s' if p.papers != 1 else ''}"
        if p.status == "pending":
            result = "would be sent" if dry_run else f"planned (digest {p.digest_id})"
        else:
            result = f"empty, not sent: {p.reason}"
        lines.append(f"{p.email}  {p.period}  {papers}  {result}")
    lines.extend(f"{email}  skipped: {reason}" for email, reason in report.skipped)
    verb = "would plan" if dry_run else "planned"
    lines.append(
        f"{verb} {report.pending_count} digest(s), {report.empty_count} empty, "
        f"{len(report.skipped)} subscriber(s) skipped"
        f" at {report.now:%Y-%m-%d %H:%M} UTC"
    )
    typer.echo("\n".join(lines))
