"""Delivery under crashes and concurrency: real processes, a real SMTP server.

A worker killed with SIGKILL mid-run loses nothing and re-sends at most the
batch it had in flight; four workers on one PostgreSQL never send a digest twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from digest.config import Settings
from digest.mail import SmtpMailer
from digest.outbox import crash_bound, deliver_due
from digest.store.database import Store, open_store
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.outbox_rows import T0, build, make_digests, states
from tests.smtpd import FaultyHandler, smtp_server

ROOT = Path(__file__).parent.parent
COUNT = 2000
BATCH = 100
CONCURRENCY = 4


def _worker(
    url: str, port: int, *, now: str = T0.isoformat(), batch: int = BATCH, build_seconds: float = 0
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [url, str(port), now, str(batch), str(CONCURRENCY), str(build_seconds)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.deliver_worker", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_once_received(worker: subprocess.Popen[str], handler: FaultyHandler, count: int) -> int:
    """SIGKILL the worker once the server has `count` messages; how many it had then."""
    deadline = time.monotonic() + 60
    while len(handler.received) < count:
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "worker too slow to reach its kill point"
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()  # reaps it and closes its pipes
    return len(handler.received)


def _rerun_and_check(store: Store, port: int, handler: FaultyHandler, emails: list[str]) -> None:
    """The next run after the dead worker's lease: every digest sent, every reader got
    theirs, at most `crash_bound` twice, each copy with its first copy's Message-ID."""
    later = T0 + timedelta(seconds=Settings().delivery.lease_seconds, hours=1)
    mailer = SmtpMailer(host="127.0.0.1", port=port, security="none", concurrency=4)
    deliver_due(store, Settings(), mailer, build, now=later)
    final = states(store)
    assert set(final.values()) == {"sent"}
    received = Counter(address for address, _ in handler.received)
    assert set(received) == set(emails)
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= crash_bound(CONCURRENCY), f"{duplicates} re-sent"
    ids: dict[str, set[str]] = {}
    for address, message_id in handler.received:
        ids.setdefault(address, set()).add(message_id)
    assert all(len(found) == 1 for found in ids.values()), "a copy with another Message-ID"


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    store = open_store(url)
    emails = [f"reader{i}@example.org" for i in range(COUNT)]
    make_digests(store, emails)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        killed_at = _kill_once_received(_worker(url, port), handler, COUNT // 2)
        assert killed_at < COUNT
        _rerun_and_check(store, port, handler, emails)
    store.dispose()


@pytest.mark.slow
def test_a_kill_while_the_next_batch_is_built_resends_no_more_than_the_window(
    tmp_path: Path,
) -> None:
    """Outcomes keep being recorded while the next batch is claimed and built: a kill in
    the middle of a slow build re-sends only what was handed to the server and not yet
    recorded (at most `crash_bound`), each copy with its first copy's Message-ID."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    store = open_store(url)
    count, batch = 1200, 400
    emails = [f"reader{i}@example.org" for i in range(count)]
    make_digests(store, emails)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        # each batch takes 400 × 5 ms = 2 s to build; the second is built once half of
        # the first has been taken, and the other half is sent meanwhile
        worker = _worker(url, port, batch=batch, build_seconds=0.005)
        _kill_once_received(worker, handler, batch - 20)
        _rerun_and_check(store, port, handler, emails)
    store.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="needs DIGEST_TEST_DATABASE_URL (PostgreSQL)")
def test_four_workers_on_postgresql_never_send_twice() -> None:
    _reset_postgres(POSTGRES_URL)
    store = open_store(POSTGRES_URL)
    emails = [f"reader{i}@example.org" for i in range(COUNT)]
    make_digests(store, emails)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        workers = [_worker(POSTGRES_URL, port) for _ in range(4)]
        reports = [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    assert sum(r["sent"] for r in reports) == COUNT
    assert sum(1 for r in reports if r["sent"]) >= 2, "the work was not shared"
    final = states(store)
    store.dispose()
    assert set(final.values()) == {"sent"}
    received = Counter(address for address, _ in handler.received)
    assert set(received) == set(emails)
    assert max(received.values()) == 1
