"""Several senders on one database: one plans, the others send what it records.

`digest send` and `digest run` started N times to use N cores used to plan
every due subscriber N times over (all but one copy then refused by the
unique constraint). Now a full pass takes the planning turn; a sender that
cannot get it plans nothing and sends what the pass under way records.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from digest.config import DeliverySettings, Settings, load_settings
from digest.errors import DeliveryError
from digest.mail import Mailer, MessageFeed, OnOutcome, Outcome, OutgoingMessage
from digest.outbox import deliver_due
from digest.pipeline import Pipeline
from digest.planner import plan_due
from digest.store.database import Store, open_store
from digest.store.planning import PlanningTurn, planning_turn
from tests.conftest import DATA
from tests.outbox_rows import T0, build, make_digests
from tests.test_send_cli import TOPIC, inbox, ingest, send_config, subscribe

__all__ = ["send_config"]  # a fixture, used by name

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).parent.parent


@pytest.mark.usefixtures("send_config")
def test_a_sender_that_finds_a_pass_under_way_sends_what_that_pass_records(
    cli: CliRunner, tmp_path: Path, database_url: str
) -> None:
    ingest(cli, DATA / "dumps", "2026-11-20T07:00:00+00:00")
    readers = [f"reader{i}@example.org" for i in range(3)]
    for reader in readers:
        subscribe(cli, reader, "UTC", 8, TOPIC, "2026-11-19T12:00:00+00:00")
    settings = load_settings(tmp_path / "config.toml")
    with open_store(database_url) as store:
        taken = threading.Event()

        def plan_elsewhere() -> None:
            """Another process's pass: it holds the turn a while before it records."""
            with planning_turn(store.engine, wait=False) as mine:
                assert mine
                taken.set()
                time.sleep(0.5)
                with store.sessions() as session:
                    plan_due(session, settings, now=NOW)

        other = threading.Thread(target=plan_elsewhere)
        other.start()
        try:
            assert taken.wait(10)
            this = Pipeline.from_settings(settings, store)
            report = this.plan(NOW)
            delivered = this.deliver(NOW)
        finally:
            other.join()
    assert report.elsewhere and not report.planned, "planned beside a pass under way"
    # it did not end on the empty queue it first found: it waited for the pass
    assert delivered.sent == len(readers)
    assert sorted(m["To"] for m in inbox(tmp_path)) == readers


def test_the_turn_is_one_at_a_time_and_visible_to_the_others(database_url: str) -> None:
    with open_store(database_url) as store:
        first, second = PlanningTurn(store.engine), PlanningTurn(store.engine)
        assert not second.taken_elsewhere()
        assert first.take(wait=False)
        try:
            assert not first.taken_elsewhere()  # its own turn is not someone else's
            assert second.taken_elsewhere()
            assert not second.take(wait=False)
        finally:
            first.give_back()
        assert not second.taken_elsewhere()
        assert second.take(wait=False)
        second.give_back()


def test_a_planner_killed_mid_pass_leaves_the_turn_free(database_url: str, tmp_path: Path) -> None:
    """No lease to wait out after a SIGKILL: the lock goes with the process."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from digest.store.database import open_store\n"
            "from digest.store.planning import PlanningTurn\n"
            "turn = PlanningTurn(open_store(sys.argv[1]).engine)\n"
            "assert turn.take(wait=False)\n"
            "print('taken', flush=True)\n"
            "time.sleep(60)\n",
            database_url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "taken"
        with open_store(database_url) as store:
            turn = PlanningTurn(store.engine)
            assert turn.taken_elsewhere()
            holder.kill()
            holder.wait()
            deadline = time.monotonic() + 10
            while turn.taken_elsewhere():  # the server notices a dropped connection at once
                assert time.monotonic() < deadline, "the dead planner's turn was never freed"
                time.sleep(0.05)
            assert turn.take(wait=False)
            turn.give_back()
    finally:
        holder.kill()
        holder.communicate()  # reaps it and closes its pipe


class FailsAfterFirstBatch(Mailer):
    """Sends the first batch, then the relay becomes unusable (a login refused)."""

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        raise NotImplementedError

    async def send_feed(self, feed: MessageFeed, on_outcome: OnOutcome) -> None:
        for message in await feed.next_batch():
            on_outcome(Outcome(message.digest_id, "sent", "250 ok"))
        await asyncio.sleep(0.5)  # recorded; meanwhile the next batch is being waited for
        raise DeliveryError("SMTP relay: login refused")


def test_a_relay_that_fails_while_another_process_plans_is_reported_at_once(
    store: Store,
) -> None:
    """(Found in review: the wait for the pass elsewhere ignored that sending had
    ended, and the error came only when that pass did.)"""
    make_digests(store, ["a@example.org", "b@example.org"])
    holding, release = threading.Event(), threading.Event()

    def plan_elsewhere() -> None:
        with planning_turn(store.engine, wait=False) as mine:
            assert mine
            holding.set()
            release.wait(10)

    other = threading.Thread(target=plan_elsewhere)
    other.start()
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=10))
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="login refused"):
            deliver_due(
                store,
                settings,
                FailsAfterFirstBatch(),
                build,
                now=T0,
                planning_elsewhere=PlanningTurn(store.engine).taken_elsewhere,
            )
        waited = time.monotonic() - started
    finally:
        release.set()
        other.join()
    assert waited < 5, f"the relay's failure waited {waited:.1f} s for the pass elsewhere"


def test_a_pass_whose_lock_connection_died_still_ends_well(store: Store) -> None:
    """PostgreSQL frees a session lock with its connection (a restart, an idle
    timeout); the pass that held it has recorded its digests, and giving the turn
    back must not fail it. (Found in review: it raised, and `digest send` sent nothing.)"""
    if store.engine.url.get_backend_name() != "postgresql":
        pytest.skip("a session lock is PostgreSQL's")
    with planning_turn(store.engine, wait=False) as mine:
        assert mine
        with store.engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND classid = 1684629349 AND objid = 1"
                )
            )
    turn = PlanningTurn(store.engine)
    assert turn.take(wait=False)
    turn.give_back()
