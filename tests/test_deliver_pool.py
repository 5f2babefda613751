"""Delivery in several forked processes: real workers, a real SMTP server, PostgreSQL.

What a user of `delivery.workers` would notice: every digest arrives once,
the progress bar sees every outcome, `--limit` still caps the total, a relay
that cannot be used or that refuses everything stops no one halfway and leaves
the outbox right, a worker that dies or crashes is reported instead of
silently leaving digests behind, and SQLite (one writer) is refused up front.
Needs DIGEST_TEST_DATABASE_URL (CI sets it); the SQLite refusals always run.
"""

from __future__ import annotations

import gc
import mailbox
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.config import DeliverySettings, Settings
from digest.errors import DeliveryError
from digest.gcpause import collector_paused
from digest.mail import Mailer, OnOutcome, Outcome, OutgoingMessage, SmtpMailer
from digest.outbox import WorkerCrashed, deliver_due_in_processes
from digest.outbox.pool import plan_workers
from digest.store.database import Store, open_store
from digest.store.schema import Digest, Subscriber
from tests.conftest import DATA, POSTGRES_URL, _reset_postgres, invoke
from tests.outbox_rows import T0, build, make_digests, states
from tests.smtpd import FaultyHandler, smtp_server

DUMP = "000_1a70928f5047d655.txt"


def mailer(port: int, security: str = "none") -> SmtpMailer:
    return SmtpMailer(
        host="127.0.0.1",
        port=port,
        security=security,  # type: ignore[arg-type]
        timeout=5,
        concurrency=2,
    )


def settings(workers: int = 2, batch_size: int = 500) -> Settings:
    return Settings(
        delivery=DeliverySettings(backend="smtp", workers=workers, batch_size=batch_size)
    )


def emails(count: int) -> list[str]:
    return [f"reader{i}@example.org" for i in range(count)]


@pytest.fixture
def store() -> Iterator[Store]:
    """A migrated store on an emptied PostgreSQL schema (workers need PostgreSQL)."""
    if not POSTGRES_URL:
        pytest.skip("needs DIGEST_TEST_DATABASE_URL (PostgreSQL)")
    _reset_postgres(POSTGRES_URL)
    opened = open_store(POSTGRES_URL)
    yield opened
    opened.dispose()


def claimed_by(store: Store) -> set[str | None]:
    with store.sessions() as session:
        return set(session.scalars(select(Digest.claimed_by)))


def test_how_many_processes_are_worth_starting() -> None:
    assert plan_workers(due=150, workers=4) == 1  # too little to share
    assert plan_workers(due=250, workers=4) == 2
    assert plan_workers(due=5000, workers=4) == 4
    assert plan_workers(due=5000, workers=4, limit=150) == 1
    assert plan_workers(due=5000, workers=4, rate_limited=True) == 1


def test_two_workers_deliver_every_digest_exactly_once(store: Store) -> None:
    addresses = emails(400)
    make_digests(store, addresses)
    handler = FaultyHandler()
    seen: list[Outcome] = []
    with smtp_server(handler) as port:
        report = deliver_due_in_processes(
            store, settings(), mailer(port), build, workers=2, now=T0, on_outcome=seen.append
        )
    assert report.sent == 400 and report.retry == report.failed == 0
    received = Counter(rcpt for rcpt, _ in handler.received)
    assert sorted(received) == sorted(addresses) and set(received.values()) == {1}
    assert len(seen) == 400 and {o.status for o in seen} == {"sent"}
    assert set(states(store).values()) == {"sent"}
    workers = claimed_by(store)
    assert len(workers) == 2 and f":{os.getpid()}" not in "".join(map(str, workers))


def test_workers_forked_while_the_planner_pauses_the_collector_collect_again(
    store: Store,
) -> None:
    """`digest run` plans in one thread with the cyclic collector paused while another
    may fork delivery workers: a worker must not live its whole life without it."""
    make_digests(store, emails(400))
    collecting: list[bool] = []

    def build_and_check(session: object, claimed: object) -> bytes:
        if not gc.isenabled():
            raise RuntimeError("the cyclic garbage collector is off in this worker")
        return build(session, claimed)  # type: ignore[arg-type]

    with smtp_server(FaultyHandler()) as port, collector_paused():
        collecting.append(gc.isenabled())
        report = deliver_due_in_processes(
            store, settings(), mailer(port), build_and_check, workers=2, now=T0
        )
    assert collecting == [False]  # the workers were forked from a paused process
    assert report.sent == 400


def test_limit_caps_the_total_over_all_workers(store: Store) -> None:
    make_digests(store, emails(400))
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        report = deliver_due_in_processes(
            store, settings(), mailer(port), build, workers=2, now=T0, limit=250
        )
    assert report.sent == 250 == len(handler.received)
    assert Counter(states(store).values()) == {"sent": 250, "pending": 150}


def test_an_unusable_relay_stops_every_worker_and_leaves_the_outbox_as_it_was(
    store: Store,
) -> None:
    make_digests(store, emails(300))
    handler = FaultyHandler()
    with (
        smtp_server(handler) as port,
        pytest.raises(DeliveryError, match="does not offer STARTTLS"),
    ):
        deliver_due_in_processes(
            store, settings(), mailer(port, "starttls"), build, workers=2, now=T0
        )
    assert handler.received == []
    with store.sessions() as session:
        rows = session.scalars(select(Digest)).all()
    assert {row.status for row in rows} <= {"pending", "retry"}
    assert all(row.attempts == 0 for row in rows)


def test_a_stop_request_reaches_the_workers_and_the_rest_is_put_back(store: Store) -> None:
    make_digests(store, emails(600))
    handler = FaultyHandler(delay=0.01)  # slow enough that stopping happens mid-run
    seen: list[Outcome] = []
    with smtp_server(handler) as port:
        report = deliver_due_in_processes(
            store,
            settings(batch_size=600),
            mailer(port),
            build,
            workers=2,
            now=T0,
            on_outcome=seen.append,
            should_stop=lambda: len(seen) >= 40,
        )
    counts = Counter(states(store).values())
    assert 40 <= report.sent < 600 and counts["sent"] == report.sent == len(handler.received)
    assert counts["sending"] == 0 and counts["pending"] == 600 - report.sent


def test_a_worker_that_dies_is_reported_and_its_claims_wait_for_their_lease(
    store: Store,
) -> None:
    make_digests(store, emails(400))
    handler = FaultyHandler(delay=0.01)
    killed: list[int] = []

    def kill_one_worker(outcome: Outcome) -> None:
        if not killed:
            victim = multiprocessing.active_children()[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    with smtp_server(handler) as port, pytest.raises(DeliveryError) as raised:
        deliver_due_in_processes(
            store,
            settings(),
            mailer(port),
            build,
            workers=2,
            now=T0,
            on_outcome=kill_one_worker,
        )
    assert f"worker {killed[0]} ended unexpectedly" in str(raised.value)
    with store.sessions() as session:
        rows = session.execute(
            select(Subscriber.email, Digest.status, Digest.claimed_by).join(Digest.subscriber)
        ).all()
    # the dead worker's batch waits for its lease; nobody else's row is left claimed
    waiting = [claimer for _, status, claimer in rows if status == "sending"]
    assert waiting and all(str(claimer).endswith(f":{killed[0]}") for claimer in waiting)
    received = {rcpt for rcpt, _ in handler.received}
    assert {email for email, status, _ in rows if status == "sent"} <= received


def test_a_relay_refusing_everything_for_now_is_recorded_by_every_worker(
    store: Store,
) -> None:
    """4xx to every recipient: each worker records its retries (read, then write)
    while the other commits its own; none of them may fail on the database."""
    addresses = emails(600)
    make_digests(store, addresses)
    handler = FaultyHandler(temp_rcpt=dict.fromkeys(addresses, 1))
    with smtp_server(handler) as port:
        report = deliver_due_in_processes(store, settings(), mailer(port), build, workers=2, now=T0)
    assert report.retry == 600 and report.sent == report.failed == 0
    assert set(states(store).values()) == {"retry"}


class BuggyMailer(Mailer):
    """A backend with a bug: it sends two messages, then fails in a way no mail
    system does (not a DeliveryError)."""

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        for message in list(messages)[:2]:
            on_outcome(Outcome(message.digest_id, "sent", "250 ok"))
        raise ZeroDivisionError("division by zero in the backend")


def test_a_worker_that_crashes_is_reported_as_a_crash_with_its_traceback(
    store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    make_digests(store, emails(400))
    with pytest.raises(WorkerCrashed) as raised:
        deliver_due_in_processes(store, settings(), BuggyMailer(), build, workers=2, now=T0)
    assert "crashed: ZeroDivisionError: division by zero in the backend" in str(raised.value)
    assert "Traceback" in capfd.readouterr().err  # the worker's own, on its stderr
    counts = Counter(states(store).values())
    assert counts["sent"] >= 2  # what was reported before the crash is recorded


def test_several_workers_on_sqlite_are_refused_before_anything_is_sent(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "d.db"}"\n')
    monkeypatch.setenv("DIGEST_CONFIG", str(config))
    code, _out, err = invoke(cli, "send", "--workers", "2")
    assert code == 2 and "--workers 2: several delivery processes need PostgreSQL" in err
    config.write_text(f'database_url = "sqlite:///{tmp_path / "d.db"}"\n[delivery]\nworkers = 2\n')
    code, _out, err = invoke(cli, "send")
    assert code == 3 and "delivery.workers = 2: several delivery processes need" in err
    assert not (tmp_path / "d.db").exists()


def test_send_with_workers_delivers_every_planned_digest_once(
    tmp_path: Path, store: Store, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{POSTGRES_URL}"\n'
        '[delivery]\nbackend = "maildir"\n'
        f'maildir_path = "{tmp_path / "maildir"}"\n'
        '[web]\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
    )
    monkeypatch.setenv("DIGEST_CONFIG", str(config))
    readers = emails(240)
    table = tmp_path / "readers.csv"
    table.write_text(
        "email,topics,timezone,hour\n"
        + "".join(f"{address},language models,UTC,7\n" for address in readers)
    )
    at = "2026-11-22T08:00:00+00:00"
    for command in (
        ("import", str(table), "--confirmed", "--now", "2026-11-21T12:00:00+00:00"),
        ("ingest", str(DATA / "dumps" / DUMP), "--now", "2026-11-22T06:00:00+00:00"),
    ):
        code, out, err = invoke(cli, *command)
        assert code == 0, out + err
    code, out, err = invoke(cli, "send", "--now", at, "--workers", "2")
    assert code == 0, out + err
    assert "planned 240, sent 240," in out
    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    recipients = Counter(box.get_message(key)["To"] for key in box.iterkeys())
    assert sorted(recipients) == sorted(readers) and set(recipients.values()) == {1}
