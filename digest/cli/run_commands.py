"""`digest run`, `digest send`, `digest status`: the mailer as a daemon, once, and its state."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from digest.cli.app import app
from digest.cli.options import (
    ConfigOption,
    NowOption,
    parse_now,
    settings_from,
    store_from,
)
from digest.cli.outbox_commands import lease_lines
from digest.cli.progress import progress_bar, working
from digest.daemon import Daemon, Jobs, single_instance
from digest.errors import DeliveryError
from digest.logs import configure_logging
from digest.mail import Outcome
from digest.outbox import due_count, leases, view_for_plan
from digest.pipeline import Pipeline


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("run")
def run(
    config: ConfigOption = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="text for people, json for log collectors.")
    ] = LogFormat.text,
) -> None:
    """Run the mailer until SIGTERM/SIGINT: ingest new dumps, plan and send due digests.

    Jobs: the dumps folder every sources.poll_minutes, the Hugging Face list daily at
    sources.hf_fetch_time (UTC), the arXiv feed of sources.arxiv_categories (if any)
    daily at sources.arxiv_fetch_time (UTC), and a plan+deliver tick every
    schedule.tick_seconds.
    On SIGTERM it stops claiming work, lets in-flight sends finish within
    schedule.shutdown_timeout_seconds, releases the rest and exits 0.
    """
    settings = settings_from(config)
    configure_logging(log_format.value)
    with single_instance(settings.database_url):
        store = store_from(settings)
        pipeline = Pipeline.from_settings(settings, store)
        jobs = Jobs(
            ingest_folder=pipeline.ingest_folder,
            fetch_hf=pipeline.fetch_hf,
            tick=pipeline.run_tick,
            release=pipeline.release,
            stop=pipeline.stop,
            record=pipeline.record_run,
            seen=pipeline.record_seen,
            fetch_arxiv=pipeline.fetch_arxiv,
            look_up_titles=pipeline.look_up_titles,
        )
        stop = threading.Event()

        def request_stop(signum: int, _frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if not Daemon(settings, jobs).run_until(stop):
            # A delivery round is still sending past shutdown_timeout_seconds. Its rows
            # keep their lease; waiting for the round (what a normal exit does, joining
            # the scheduler's threads) would ignore the timeout the operator set.
            logging.shutdown()
            os._exit(0)
        store.dispose()


@app.command("send")
def send(
    config: ConfigOption = None,
    now: NowOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and render, but send and record nothing.")
    ] = False,
    email: Annotated[
        str | None, typer.Option("--email", help="Only this subscriber.", show_default=False)
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Send at most N digests this time.")
    ] = None,
) -> None:
    """Plan the digests that are due and deliver them, once (what each `digest run` tick does).

    Exits 5, naming the server's last reply, when nothing could be delivered (the relay
    is down or misconfigured; the digests wait in the outbox for a retry) or when a
    server refused a digest for good.
    """
    settings = settings_from(config)
    moment = parse_now(now)
    with store_from(settings) as store:
        pipeline = Pipeline.from_settings(settings, store)
        if dry_run:
            _dry_run(pipeline, moment, email)
            return
        # SIGTERM (systemd stopping a sender, `docker stop`): claim nothing more, let
        # the messages on the wire finish and be recorded, put the rest back, exit.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: pipeline.stop())
        with working("planning"):
            plans = pipeline.plan(moment, email=email)
        with store.sessions() as session:
            due = due_count(session, now=moment, email=email)
        # while another process plans, more becomes due as it goes: no total to show
        total: int | None = None if plans.elsewhere else due if limit is None else min(due, limit)
        with progress_bar("delivering", hidden=total == 0) as progress:
            task = progress.add_task("deliver", total=total)
            # the last reply per outcome, for the error line: it must quote a reply of
            # the outcome it reports (a 550 for "failed", not the 451 that came last)
            last_reply: dict[str, str] = {}

            def on_outcome(outcome: Outcome) -> None:
                if outcome.status != "sent":
                    last_reply[outcome.status] = outcome.reply
                progress.advance(task)

            delivered = pipeline.deliver(moment, email=email, limit=limit, on_outcome=on_outcome)
        with store.sessions() as session:
            held = leases(session, now=moment)
    for who, reason in plans.skipped if email else ():
        typer.echo(f"{who}: {reason}")
    # a sender beside another one's pass: that pass planned what this one sent
    planned = (
        "planning left to another process" if plans.elsewhere else f"planned {plans.pending_count}"
    )
    typer.echo(
        f"{planned}, sent {delivered.sent}, retry {delivered.retry}, "
        f"failed {delivered.failed}, skipped-empty {plans.empty_count}"
    )
    for line in lease_lines(held):  # a sender that crashed (or runs beside this one)
        typer.echo(line)
    if delivered.failed or (delivered.retry and not delivered.sent):
        # Nothing got through (a wrong host, a relay that is down) or a server refused
        # for good: say so on stderr and exit non-zero, so cron and shells notice.
        reported = "failed" if delivered.failed else "retry"
        # a retry past its age is recorded failed: then the last retry reply is the cause
        raw = last_reply.get(reported) or last_reply.get("retry") or "no reply"
        reply = " ".join(raw.split())
        what = (
            f"{delivered.failed} digest(s) failed permanently (digest outbox --status failed)"
            if delivered.failed
            else f"no digest was delivered; {delivered.retry} left for retry (digest outbox)"
        )
        raise DeliveryError(f"{what}; last server reply: {reply}")


def _dry_run(pipeline: Pipeline, now: datetime, email: str | None) -> None:
    from digest.planner import plan_due

    with pipeline.store.sessions() as session:
        report = plan_due(session, pipeline.settings, now=now, email=email, dry_run=True)
        for plan in report.planned:
            if plan.status != "pending":
                typer.echo(f"{plan.email}: {plan.period}: nothing matched; would be skipped")
                continue
            view = view_for_plan(session, plan, pipeline.settings, pipeline.secret)
            size = len(pipeline.renderer.message_bytes(view))
            subject = pipeline.renderer.subject(view)
            typer.echo(
                f"{plan.email}: {plan.period}: {len(plan.picks)} papers, {size} bytes: {subject}"
            )
        session.rollback()
    for who, reason in report.skipped:
        typer.echo(f"{who}: not sent: {reason}")
    typer.echo("dry run: nothing was sent or recorded")
