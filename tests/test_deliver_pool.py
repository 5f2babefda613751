"""Delivery in several forked processes: real workers, a real SMTP server, a real database.

What a user of `delivery.workers` would notice: every digest arrives once,
the progress bar sees every outcome, `--limit` still caps the total, a relay
that cannot be used stops all workers and leaves the outbox as it was, and a
worker that dies is reported instead of silently leaving digests behind.
"""

from __future__ import annotations

import mailbox
import multiprocessing
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.config import DeliverySettings, Settings
from digest.db import Store
from digest.deliver_pool import deliver_due_in_processes, plan_workers
from digest.errors import DeliveryError
from digest.mail import Outcome, SmtpMailer
from digest.models import Digest
from tests.conftest import DATA, invoke
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
    counts = Counter(states(store).values())
    assert counts["sending"] > 0  # the dead worker's batch, until its lease runs out
    assert counts["sent"] <= len({rcpt for rcpt, _ in handler.received})


def test_send_with_workers_delivers_every_planned_digest_once(
    tmp_path: Path, database_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
        '[delivery]\nbackend = "maildir"\n'
        f'maildir_path = "{tmp_path / "maildir"}"\n'
        '[web]\nsecret = "test-secret"\n'
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
