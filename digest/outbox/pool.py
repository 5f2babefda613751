"""The outbox worked by several processes on this machine, to use more than one core.

One delivering process is bound to one core: the GIL makes building messages,
recording outcomes and aiosmtplib's event loop take turns. DESIGN's way to
scale delivery is several workers claiming from one outbox (`claims.claim`
is safe for that); this module starts them here, as forked copies of the
calling process, each running the ordinary `deliver` with its own worker
name and its own database connections. No coordination is added: the claim
statement already keeps workers apart, and a worker that dies leaves only its
claimed batch, which its lease returns to the outbox.

The parent only watches: it relays each worker's outcomes to `on_outcome`
(a progress bar), passes a stop request on, and adds up the reports.

PostgreSQL only. SQLite has one writer at a time, and its file locks are per
process and do not survive fork(): a forked worker would inherit lock state
it does not really hold. `config.workers_problem` refuses the combination.

Fork, not spawn: a spawned worker would pay the interpreter's and the
imports' start-up before sending anything, often more than a whole batch
takes, where a forked one starts with everything loaded. A forked
worker first drops the database connections it inherited (SQLAlchemy's
`dispose(close=False)`; psycopg leaves a connection made by another process
alone), so parent and child never share a socket.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Unpack

from digest.config import Settings, workers_problem
from digest.errors import ConfigError, DeliveryError
from digest.mail import Mailer, Outcome
from digest.outbox.claims import due_count
from digest.outbox.delivery import deliver
from digest.outbox.types import Build, DeliveryReport, DeliveryRun, RunOptions
from digest.store.database import Store

MIN_SHARE = 100
"""Fewest due digests that justify one more process (each forks and opens its own connections)."""

CLAIMS_PER_WORKER = 4
"""Each worker's share is claimed in about this many batches, so that workers
finish together instead of one taking a whole `batch_size` while another idles."""

_POLL_SECONDS = 0.05


def plan_workers(
    due: int, workers: int, *, limit: int | None = None, rate_limited: bool = False
) -> int:
    """How many processes are worth starting for `due` digests (1 = deliver in-process).

    A rate-limited relay (`max_per_second`) gains nothing from more processes,
    and the limit is counted per process, so it keeps to one.
    """
    if rate_limited:
        return 1
    todo = due if limit is None else min(due, limit)
    return max(1, min(workers, todo // MIN_SHARE))


def deliver_due_in_processes(
    store: Store,
    settings: Settings,
    mailer: Mailer,
    build: Build,
    *,
    workers: int,
    now: datetime,
    **options: Unpack[RunOptions],
) -> DeliveryReport:
    """`deliver_in_processes` with the run's parts as arguments (see `DeliveryRun`)."""
    run = DeliveryRun(store, settings, mailer, build, now, **options)
    return deliver_in_processes(run, workers=workers)


def deliver_in_processes(run: DeliveryRun, *, workers: int) -> DeliveryReport:
    """`deliver` over up to `workers` forked processes; returns the summed report.

    Delivers in this process when one is asked for, for one subscriber's
    digests (`run.email`: never worth a second process), or when there is too
    little due to share (see `plan_workers`); `run.worker` names this process's
    claims then, as each forked worker's claims carry its own pid. Raises
    DeliveryError when a worker found the mail system unusable (the others are
    told to stop; unsent digests are back in the outbox) or when a worker died;
    in the second case its claimed digests return when their lease runs out.
    Raises WorkerCrashed when a worker failed for any other reason (its
    traceback is on stderr). Several workers need PostgreSQL (ConfigError on
    SQLite, see `config.workers_problem`).
    """
    store, limit = run.store, run.limit
    count = 1
    if workers > 1 and run.email is None:
        problem = workers_problem(workers, store.engine.url.render_as_string())
        if problem:
            raise ConfigError(f"{workers} delivery workers: {problem}")
        with store.sessions() as session:
            due = due_count(session, now=run.now)
        count = plan_workers(
            due, workers, limit=limit, rate_limited=run.settings.delivery.max_per_second > 0
        )
    if count <= 1:
        return deliver(run)
    todo = due if limit is None else min(due, limit)
    batch = max(1, min(run.settings.delivery.batch_size, todo // (count * CLAIMS_PER_WORKER)))
    shared = replace(run.settings, delivery=replace(run.settings.delivery, batch_size=batch))
    shares: list[int | None] = (
        [None] * count
        if limit is None
        else [limit * (k + 1) // count - limit * k // count for k in range(count)]
    )
    context = multiprocessing.get_context("fork")
    # A plain shared byte, not a multiprocessing.Event: the Event's semaphore,
    # held by a worker killed at the wrong moment, would block everyone for good.
    stop = context.RawValue(ctypes.c_byte, 0)
    parent = os.getpid()
    parent_ends: list[Connection] = []

    def work(channel: Connection, share: int | None) -> None:
        # Ctrl-C reaches the whole process group, and systemd signals the whole
        # cgroup: only the parent decides to stop, and tells the workers, so they
        # finish what is in flight and put the rest back instead of dying mid-batch.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # forked while another thread of `digest run` may be planning with the cyclic
        # collector paused (digest.gcpause): that pause is not this process's
        gc.enable()
        for end in parent_ends:  # siblings' pipes are the parent's business
            end.close()
        store.engine.dispose(close=False)  # the parent's connections stay the parent's
        relay = _Relay(channel)
        try:
            own = replace(
                run,
                settings=shared,
                limit=share,
                worker=None,  # claims under this process's own pid
                on_outcome=relay.add,
                should_stop=lambda: bool(stop.value) or relay.lost or os.getppid() != parent,
            )
            report = deliver(own)
            relay.flush()
            relay.send(("done", report.as_json()))
        except DeliveryError as exc:
            relay.flush()
            relay.send(("unusable", str(exc)))
        except BaseException as exc:
            traceback.print_exc()  # the whole story, on the worker's stderr
            relay.flush()
            summary = " ".join(traceback.format_exception_only(type(exc), exc)[0].split())
            relay.send(("crashed", f"delivery worker {os.getpid()} crashed: {summary[:300]}"))
        finally:
            channel.close()

    processes: list[tuple[BaseProcess, Connection]] = []
    try:
        for share in shares:
            reader, writer = context.Pipe(duplex=False)
            parent_ends.append(reader)
            child = context.Process(
                target=work, args=(writer, share), name="digest-deliver", daemon=True
            )
            child.start()
            writer.close()  # the child holds the only writing end: EOF when it ends
            processes.append((child, reader))
        return _watch(processes, stop, run.on_outcome, run.should_stop)
    finally:
        stop.value = 1  # an exception here (a failing progress bar) must not leave workers on
        for process, reader in processes:
            process.join()
            reader.close()


class WorkerCrashed(RuntimeError):
    """A delivery worker failed for a reason other than the mail system (a bug, the
    database): not a DeliveryError, so it is reported as the crash it is."""


class _Relay:
    """Passes a worker's outcomes to the parent a group at a time.

    A pipe write per outcome would be a system call per message, in the
    process that also records them; a progress bar needs no more than ten
    updates a second.
    """

    def __init__(self, channel: Connection, every: float = 0.1) -> None:
        self.channel = channel
        self.every = every
        self.waiting: list[Outcome] = []
        self.last = time.monotonic()
        self.lost = False

    def add(self, outcome: Outcome) -> None:
        self.waiting.append(outcome)
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.waiting:
            self.send(self.waiting)
            self.waiting = []
        self.last = time.monotonic()

    def send(self, item: object) -> None:
        """Send unless the parent is gone; then `lost` tells the worker to stop."""
        if self.lost:
            return
        try:
            self.channel.send(item)
        except OSError:
            self.lost = True


def _watch(
    processes: list[tuple[BaseProcess, Connection]],
    stop: ctypes.c_byte,
    on_outcome: Callable[[Outcome], None] | None,
    should_stop: Callable[[], bool] | None,
) -> DeliveryReport:
    """Relay outcomes and stop requests until every worker has ended; sum their reports."""
    report = DeliveryReport()
    problems: list[tuple[str, str]] = []
    finished: set[BaseProcess] = set()
    open_channels = {reader: process for process, reader in processes}
    while open_channels:
        for ready in wait(list(open_channels), timeout=_POLL_SECONDS):
            assert isinstance(ready, Connection)
            try:
                item = ready.recv()
            except EOFError:
                del open_channels[ready]
                continue
            if isinstance(item, list):
                for outcome in item:
                    if on_outcome is not None:
                        on_outcome(outcome)
                continue
            kind, detail = item
            if kind == "done":
                finished.add(open_channels[ready])
                for status, number in detail.items():
                    setattr(report, status, getattr(report, status) + number)
            else:
                finished.add(open_channels[ready])
                problems.append((kind, detail))
                stop.value = 1  # a mail system that refuses one worker refuses them all
        if should_stop is not None and should_stop():
            stop.value = 1
    for process, _ in processes:
        process.join()
        if process not in finished:
            problems.append(
                (
                    "died",
                    f"delivery worker {process.pid} ended unexpectedly (exit code "
                    f"{process.exitcode}); its claimed digests are retried once their "
                    "lease ends",
                )
            )
    for kind, detail in problems:
        if kind == "crashed":
            raise WorkerCrashed(detail)
    if problems:
        raise DeliveryError(problems[0][1])
    return report
