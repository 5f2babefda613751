"""The long-running mailer: APScheduler jobs over ingest, plan and deliver.

`Daemon` only decides *when* things run; *what* runs is handed in as `Jobs`
(three callables taking `now`), so the schedule, overlap and shutdown rules
are tested with plain functions and the real pipeline is wired in one place
(`digest.pipeline`). Rules:

- every job coalesces missed runs and never overlaps itself (a run that finds
  the last one still going returns at once, without a warning);
- a job that raises is logged in one line and runs again next time;
- the Hugging Face fetch runs daily at `hf_fetch_time` UTC and, if it fails
  or the list is still empty, tries again every `hf_retry_minutes` until the
  UTC day ends;
- the arXiv fetch (only when `arxiv_categories` names some) runs daily at
  `arxiv_fetch_time` UTC and, if it fails or the feed is not yet that day's,
  tries again every `arxiv_retry_minutes` until the UTC day ends;
- title lookups (only when `title_lookup` is on) run every `poll_minutes`,
  on their own thread like every job, so a slow Hugging Face never holds a
  delivery;
- `stop()` stops scheduling at once, tells running jobs to wind down (a
  delivery round claims nothing more and stops after the messages in
  flight), waits for them within `shutdown_timeout_seconds`, then releases
  whatever is still claimed, except messages still on the wire (they keep
  their lease: they may have arrived).

Time: every job reads the clock once when it starts and passes that `now`
down; nothing below keeps a clock of its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url

from digest.config import Settings
from digest.errors import DigestError
from digest.logs import LOGGER_NAME, log_event

logger = logging.getLogger(f"{LOGGER_NAME}.run")

SIGNAL_POLL_SECONDS = 0.5
"""How often the main thread wakes while the daemon runs (see `Daemon.run_until`)."""

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Jobs:
    """What the daemon runs; each callable gets the time the job started."""

    ingest_folder: Callable[[datetime], None]
    fetch_hf: Callable[[datetime], bool]  # True once the day's list had papers
    tick: Callable[[datetime], str | None]  # plan due digests and deliver them; what it did
    release: Callable[[], int]  # give back digests this worker still holds
    # Shutdown has begun: a running job should wind down (claim nothing more).
    stop: Callable[[], None] = lambda: None
    # When a run starts (finished None) and ends: (job, started, finished, error or
    # None, what it did or None), so `digest status` can tell a live daemon from a dead one.
    record: Callable[[str, datetime, datetime | None, str | None, str | None], None] = lambda *_: (
        None
    )
    # A run found the last one still running: (job, now), a sign of life for status.
    seen: Callable[[str, datetime], None] = lambda *_: None
    # True once the day's arXiv feed is in (None: no arXiv job)
    fetch_arxiv: Callable[[datetime], bool] | None = None
    # look up title-only papers by exact title; what it did (None: no lookup job)
    look_up_titles: Callable[[datetime], str | None] | None = None


class AlreadyRunning(DigestError):
    """Another `digest run` holds this SQLite database."""

    exit_code = 1


@contextmanager
def single_instance(database_url: str) -> Iterator[None]:
    """Refuse a second daemon on the same SQLite file; PostgreSQL allows several.

    SQLite has one writer and no SKIP LOCKED, so two daemons would only queue
    behind each other's locks; on PostgreSQL claims are safe to share.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(f"{url.database}.run-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"another `digest run` ({holder}) is already using {url.database}; "
                "stop it first (SQLite allows one mailer at a time; PostgreSQL allows several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def job_triggers(settings: Settings, start: datetime) -> dict[str, Any]:
    """The recurring triggers of `digest run`, shared with `digest status`.

    Interval jobs count from `start`: the daemon passes the system clock's time
    (APScheduler's loop runs on it, so a trigger counted from `--now` would
    walk every fire time in between); `digest status` passes its `--now`.
    """
    poll = timedelta(minutes=settings.sources.poll_minutes)
    tick = timedelta(seconds=settings.schedule.tick_seconds)
    triggers: dict[str, Any] = {
        "ingest": IntervalTrigger(minutes=poll.total_seconds() / 60, start_date=start + poll),
        "hf": _daily(settings.sources.hf_fetch_time),
        "tick": IntervalTrigger(seconds=tick.total_seconds(), start_date=start + tick),
    }
    if settings.sources.arxiv_categories.strip():
        triggers["arxiv"] = _daily(settings.sources.arxiv_fetch_time)
    if settings.sources.title_lookup:
        # half a poll after the folder ingest, so a new page dump is in when it runs
        triggers["lookup"] = IntervalTrigger(
            minutes=poll.total_seconds() / 60, start_date=start + poll * 1.5
        )
    return triggers


def _daily(hh_mm: str) -> CronTrigger:
    hour, minute = (int(part) for part in hh_mm.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=UTC)


def _said(job: str, result: Any) -> str | None:
    """What a successful run did, in a few words (the Hugging Face fetch: whether the
    day's list had papers yet; a tick: what it planned and sent, or why nothing)."""
    if job == "hf":
        return "list fetched" if result else "list empty so far"
    if job == "arxiv":
        return "today's feed in" if result else "today's feed not in yet"
    return result if isinstance(result, str) else None


def next_fire_times(settings: Settings, now: datetime) -> dict[str, datetime | None]:
    """When each job runs next, as seen at `now` (interval jobs: at the latest)."""
    return {
        name: trigger.get_next_fire_time(None, now)
        for name, trigger in job_triggers(settings, now).items()
    }


class Daemon:
    """Schedules the jobs; `run_until` blocks until told to stop.

    `clock` is the time the jobs are handed (and the UTC day the Hugging Face
    retries keep to); APScheduler itself always runs on the system clock.
    """

    def __init__(self, settings: Settings, jobs: Jobs, *, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.jobs = jobs
        self.clock = clock
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # Two instances allowed, and `_guarded` returns at once from the second:
            # with one, APScheduler logs a warning ("maximum number of running
            # instances reached") on every tick of a long delivery round.
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": None},
        )
        self._busy: dict[str, threading.Lock] = {}
        self._running = 0
        self._idle = threading.Condition()
        self._done_for: dict[str, str] = {}  # daily fetch job -> the UTC day it is done for
        self._failures: dict[str, tuple[str, int]] = {}  # job -> (last error, times in a row)
        self._last_said: str | None = None  # what the last tick did (logged on change)

    # --- job wrappers -------------------------------------------------

    def _guarded(self, name: str, work: Callable[[datetime], Any]) -> Any:
        """Run one job, unless it is still running from its last time (then skip quietly)."""
        busy = self._busy.setdefault(name, threading.Lock())
        if not busy.acquire(blocking=False):
            logger.debug("%s still running; this run skipped", name)
            try:
                self.jobs.seen(name, self.clock())
            except Exception as exc:  # the database may be what is slow or failing
                logger.debug("could not note the %s heartbeat: %s", name, exc)
            return None
        with self._idle:
            self._running += 1
        now = self.clock()
        self._record(name, now, None, None, finished=False)
        try:
            result = work(now)
        except Exception as exc:  # logged; the daemon and the other jobs go on
            self._failed(name, exc)
            self._record(name, now, f"{type(exc).__name__}: {exc}", None)
            return None
        finally:
            busy.release()
            with self._idle:
                self._running -= 1
                self._idle.notify_all()
        if self._failures.pop(name, None) is not None:
            log_event(logger, f"{name} works again", job=name)
        said = _said(name, result)
        self._record(name, now, None, said)
        if said and name == "tick" and said != self._last_said:
            # what a tick did, when it differs from the last: an empty day is explained
            # once ("planned 0, sent 0: 40 not due"), not every tick_seconds
            log_event(logger, f"tick: {said}", job=name)
            self._last_said = said
        return result

    def _record(
        self,
        name: str,
        started: datetime,
        error: str | None,
        said: str | None,
        *,
        finished: bool = True,
    ) -> None:
        """Note the run for `digest status`; a failure to note it never stops the job."""
        try:
            self.jobs.record(name, started, self.clock() if finished else None, error, said)
        except Exception as exc:  # the database may be what is failing
            logger.debug("could not record the %s run: %s", name, exc)

    def _failed(self, name: str, exc: Exception) -> None:
        """Log a job's failure once in full; the same failure again only now and then.

        A database that is down fails the tick every minute for hours: one
        traceback and a line at the 2nd, 4th, 8th, ... repeat say as much as
        a traceback a minute, without burying everything else in the log.
        """
        what = f"{type(exc).__name__}: {exc}"
        last, count = self._failures.get(name, ("", 0))
        count = count + 1 if what == last else 1
        self._failures[name] = (what, count)
        if count > 1:
            if count & (count - 1) == 0:  # a power of two
                log_event(
                    logger,
                    f"{name} still failing ({count} times in a row): {exc}",
                    logging.ERROR,
                    job=name,
                    repeats=count,
                )
            return
        if isinstance(exc, DigestError):
            log_event(logger, f"{name} failed: {exc}", logging.ERROR, job=name)
        else:  # a bug: log it with its traceback
            logger.exception("%s crashed", name, extra={"fields": {"job": name}})

    def _ingest(self) -> None:
        self._guarded("ingest", self.jobs.ingest_folder)

    def _tick(self) -> None:
        self._guarded("tick", self.jobs.tick)

    def _look_up_titles(self) -> None:
        if self.jobs.look_up_titles is not None:
            self._guarded("lookup", self.jobs.look_up_titles)

    def _fetch_hf(self) -> None:
        retry = self.settings.sources.hf_retry_minutes
        self._fetch_daily("hf", self.jobs.fetch_hf, retry, self._fetch_hf, "hf list")

    def _fetch_arxiv(self) -> None:
        if self.jobs.fetch_arxiv is None:
            return
        retry = self.settings.sources.arxiv_retry_minutes
        self._fetch_daily("arxiv", self.jobs.fetch_arxiv, retry, self._fetch_arxiv, "arXiv feed")

    def _fetch_daily(
        self,
        name: str,
        job: Callable[[datetime], bool],
        retry_minutes: float,
        again: Callable[[], None],
        what: str,
    ) -> None:
        """Run a daily fetch until it says it is done (True), retrying within the UTC day."""
        day = self.clock().date().isoformat()
        if self._done_for.get(name) == day:
            return
        if self._guarded(name, job):
            self._done_for[name] = day
            return
        delay = timedelta(minutes=retry_minutes)
        retry_at = self.clock() + delay
        if retry_at.date().isoformat() == day:
            log_event(logger, f"{what} not available yet; will retry", at=retry_at.isoformat())
            # scheduled on the system clock APScheduler runs on (see `start`)
            trigger = DateTrigger(run_date=system_clock() + delay)
            self.scheduler.add_job(again, trigger, id=f"{name}-retry", replace_existing=True)

    # --- lifecycle ----------------------------------------------------

    def start(self) -> None:
        sources, schedule = self.settings.sources, self.settings.schedule
        # APScheduler fires jobs by the system clock whatever `self.clock` says, so the
        # triggers count from the system clock too: counted from a clock set in the past,
        # an interval trigger would first walk every fire time missed since then.
        first = system_clock()
        triggers = job_triggers(self.settings, first)
        self.scheduler.add_job(self._ingest, triggers["ingest"], id="ingest", next_run_time=first)
        self.scheduler.add_job(self._fetch_hf, triggers["hf"], id="hf")
        if "arxiv" in triggers and self.jobs.fetch_arxiv is not None:
            self.scheduler.add_job(self._fetch_arxiv, triggers["arxiv"], id="arxiv")
        if "lookup" in triggers and self.jobs.look_up_titles is not None:
            self.scheduler.add_job(self._look_up_titles, triggers["lookup"], id="lookup")
        self.scheduler.add_job(
            self._tick,
            triggers["tick"],
            id="tick",
            next_run_time=first + timedelta(seconds=min(1.0, schedule.tick_seconds)),
        )
        self.scheduler.start()
        log_event(
            logger,
            "digest run started",
            poll_minutes=sources.poll_minutes,
            tick_seconds=schedule.tick_seconds,
            hf_fetch_time=f"{sources.hf_fetch_time}Z",
            arxiv_fetch_time=f"{sources.arxiv_fetch_time}Z" if "arxiv" in triggers else None,
        )

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def stop(self) -> bool:
        """Stop scheduling, wait for running jobs, release leftovers; True if all finished.

        While a delivery round still runs past the timeout, its claimed rows
        include messages on the wire: put back, another sender could take and
        send them a second time. Those keep their lease (they come back when it
        runs out, or with `digest retry --stale`), the rest is released, and
        the caller exits without waiting for the round.
        """
        self.scheduler.shutdown(wait=False)
        self.jobs.stop()
        deadline = self.settings.schedule.shutdown_timeout_seconds
        with self._idle:
            finished = self._idle.wait_for(lambda: self._running == 0, timeout=deadline)
        released = self.jobs.release()  # all but what is on the wire
        if not finished:
            still = sorted(name for name, busy in self._busy.items() if busy.locked())
            log_event(
                logger,
                f"digest run stopped with {', '.join(still) or 'a job'} still running after "
                "shutdown_timeout_seconds; digests whose messages are still on the wire stay "
                "leased until the lease runs out (`digest retry --stale` takes them back now)",
                logging.WARNING,
                finished_in_flight=False,
                still_running=still,
                released_digests=released,
            )
            return False
        log_event(logger, "digest run stopped", finished_in_flight=True, released_digests=released)
        return True

    def run_until(self, stop: threading.Event) -> bool:
        self.start()
        # Never block for good: a signal may be caught by another thread, and
        # Python runs its handler (which sets `stop`) only once the main thread
        # executes bytecode again. An unbounded wait ignored SIGTERM.
        while not stop.wait(timeout=SIGNAL_POLL_SECONDS):
            pass
        return self.stop()
