"""The daemon's timing rules, with plain job functions and a real APScheduler."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.config import ScheduleSettings, Settings, SourceSettings
from digest.daemon import AlreadyRunning, Daemon, Jobs, single_instance
from digest.errors import SourceError


def fast_settings(**schedule: float) -> Settings:
    return replace(
        Settings(),
        schedule=replace(
            ScheduleSettings(), **{"tick_seconds": 0.1, "shutdown_timeout_seconds": 2.0, **schedule}
        ),
        sources=replace(SourceSettings(), hf_retry_minutes=0.002),  # 0.12 s
    )


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[datetime] = []
        self.ingests = 0
        self.hf_calls = 0
        self.released = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def jobs(self, tick=None, fetch_hf=None) -> Jobs:  # type: ignore[no-untyped-def]
        def default_tick(now: datetime) -> None:
            self.ticks.append(now)

        def ingest(now: datetime) -> None:
            self.ingests += 1

        def hf(now: datetime) -> bool:
            self.hf_calls += 1
            return True

        def release() -> int:
            self.released += 1
            return 0

        return Jobs(ingest, fetch_hf or hf, tick or default_tick, release)


def run_for(daemon: Daemon, seconds: float) -> bool:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return daemon.run_until(stop)


def test_ticks_repeat_and_ingest_runs_at_start() -> None:
    recorder = Recorder()
    assert run_for(Daemon(fast_settings(), recorder.jobs()), 0.8) is True
    assert len(recorder.ticks) >= 3
    assert recorder.ingests == 1  # at start; poll_minutes is 10
    assert all(t.tzinfo is not None for t in recorder.ticks)
    assert recorder.released == 1  # leftovers released once, on stop


def test_a_failing_job_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    calls = []

    def flaky(now: datetime) -> None:
        calls.append(now)
        if len(calls) == 1:
            raise SourceError("dumps folder unreadable")
        if len(calls) == 2:
            raise ZeroDivisionError("a bug")

    run_for(Daemon(fast_settings(), recorder.jobs(tick=flaky)), 0.8)
    assert len(calls) >= 3
    messages = [r.getMessage() for r in caplog.records]
    assert "tick failed: dumps folder unreadable" in messages
    assert "tick crashed" in messages


def test_a_slow_tick_never_overlaps_itself() -> None:
    recorder = Recorder()

    def slow(now: datetime) -> None:
        with recorder.lock:
            recorder.active += 1
            recorder.max_active = max(recorder.max_active, recorder.active)
        time.sleep(0.35)
        with recorder.lock:
            recorder.active -= 1

    run_for(Daemon(fast_settings(), recorder.jobs(tick=slow)), 1.0)
    assert recorder.max_active == 1


def test_ticks_that_come_while_a_round_runs_are_skipped_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A delivery round longer than tick_seconds: the ticks meanwhile do nothing and say
    nothing (APScheduler warned "maximum number of running instances reached" each time)."""
    recorder = Recorder()
    rounds: list[datetime] = []

    def slow(now: datetime) -> None:
        rounds.append(now)
        time.sleep(0.6)

    with caplog.at_level(logging.WARNING):
        run_for(Daemon(fast_settings(), recorder.jobs(tick=slow)), 1.0)
    assert 1 <= len(rounds) <= 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_stop_waits_for_a_running_job_within_the_timeout() -> None:
    recorder = Recorder()
    finished = []

    def slow(now: datetime) -> None:
        time.sleep(0.5)
        finished.append(now)

    daemon = Daemon(fast_settings(), recorder.jobs(tick=slow))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # the first tick (at ~0.1 s) is mid-way
    assert daemon.run_until(stop) is True
    assert len(finished) >= 1
    assert recorder.released == 1


def test_stop_gives_up_after_the_timeout_and_releases() -> None:
    recorder = Recorder()
    gate = threading.Event()

    def stuck(now: datetime) -> None:
        gate.wait(5)

    daemon = Daemon(fast_settings(shutdown_timeout_seconds=0.3), recorder.jobs(tick=stuck))
    started = time.monotonic()
    assert run_for(daemon, 0.3) is False
    assert time.monotonic() - started < 2.0
    assert recorder.released == 1
    gate.set()


def test_hf_fetch_retries_until_the_list_has_papers() -> None:
    recorder = Recorder()
    answers = [False, False, True, True]

    def fetch(now: datetime) -> bool:
        recorder.hf_calls += 1
        return answers.pop(0)

    daemon = Daemon(fast_settings(), recorder.jobs(fetch_hf=fetch))
    stop = threading.Event()
    daemon.start()
    daemon._fetch_hf()  # as the daily cron trigger would
    time.sleep(0.8)
    stop.set()
    daemon.stop()
    assert recorder.hf_calls == 3  # two empty answers retried, then done for the day


def test_hf_retries_stop_at_the_end_of_the_utc_day() -> None:
    recorder = Recorder()
    late = datetime(2026, 11, 22, 23, 59, 59, 950000, tzinfo=UTC)

    def fetch(now: datetime) -> bool:
        recorder.hf_calls += 1
        return False

    settings = replace(fast_settings(), sources=replace(SourceSettings(), hf_retry_minutes=1))
    daemon = Daemon(settings, recorder.jobs(fetch_hf=fetch), clock=lambda: late)
    daemon.start()
    daemon._fetch_hf()
    assert "hf-retry" not in daemon.next_runs()
    daemon.stop()
    assert recorder.hf_calls == 1


def test_triggers_count_from_the_system_clock_whatever_the_jobs_are_handed() -> None:
    """APScheduler runs on the system clock: interval triggers counted from a clock set
    in the past made it walk every fire time missed since then before running a job."""
    before = datetime.now(UTC)
    daemon = Daemon(fast_settings(), Recorder().jobs(), clock=lambda: before - timedelta(hours=1))
    daemon.start()
    started = daemon.scheduler.get_job("tick").trigger.start_date
    daemon.stop()
    assert started >= before


def test_next_runs_lists_every_job() -> None:
    daemon = Daemon(fast_settings(), Recorder().jobs())
    daemon.start()
    runs = daemon.next_runs()
    daemon.stop()
    assert set(runs) == {"ingest", "hf", "tick"}
    assert runs["hf"] is not None and runs["hf"] - datetime.now(UTC) < timedelta(days=1)


def test_second_daemon_on_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with (
        single_instance(url),
        pytest.raises(AlreadyRunning, match="already using"),
        single_instance(url),
    ):
        pass
    with single_instance(url):  # released after the first one ended
        pass


def test_postgresql_allows_several_daemons() -> None:
    url = "postgresql+psycopg://u@127.0.0.1/x"
    with single_instance(url), single_instance(url):
        pass


def test_a_job_failing_every_time_neither_spams_the_log_nor_stops_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    ingests = []

    def broken_tick(now: datetime) -> None:
        raise OSError("database is unreachable")  # the same bug, every tick

    def ingest(now: datetime) -> None:
        ingests.append(now)

    settings = replace(
        fast_settings(tick_seconds=0.05),
        sources=replace(SourceSettings(), poll_minutes=0.002),  # 0.12 s
    )
    jobs = replace(recorder.jobs(tick=broken_tick), ingest_folder=ingest)
    calls_before = len(caplog.records)
    run_for(Daemon(settings, jobs), 1.5)
    records = [r for r in caplog.records[calls_before:] if r.name.endswith(".run")]
    crashes = [r for r in records if r.getMessage() == "tick crashed"]
    repeats = [r for r in records if r.getMessage().startswith("tick still failing")]
    assert len(crashes) == 1 and crashes[0].exc_info  # one traceback
    assert 2 <= len(repeats) <= 6  # 2nd, 4th, 8th, 16th ... of some 20-30 failures
    assert "database is unreachable" in repeats[-1].getMessage()
    assert len(ingests) >= 5  # the other job kept its rhythm


def test_a_job_that_recovers_says_so_and_a_new_failure_is_logged_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    outcomes = [SourceError("folder gone"), SourceError("folder gone"), None, KeyError("x")]

    def tick(now: datetime) -> None:
        if outcomes:
            problem = outcomes.pop(0)
            if problem is not None:
                raise problem

    run_for(Daemon(fast_settings(), Recorder().jobs(tick=tick)), 0.8)
    messages = [r.getMessage() for r in caplog.records if r.name.endswith(".run")]
    assert messages.count("tick failed: folder gone") == 1
    assert "tick still failing (2 times in a row): folder gone" in messages
    assert "tick works again" in messages
    assert "tick crashed" in messages


def test_status_times_follow_now_not_the_system_clock() -> None:
    from digest.daemon import next_fire_times

    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    runs = next_fire_times(Settings(), now)
    assert runs == {
        "ingest": now + timedelta(minutes=10),
        "hf": datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        "tick": now + timedelta(minutes=1),
    }


def test_a_signal_caught_by_another_thread_still_stops_the_daemon() -> None:
    """A process-wide SIGTERM may be delivered to any thread (gVisor, and Linux under
    load, pick one that is running). Python then runs the handler only when the main
    thread executes bytecode: a main thread blocked for good in `Event.wait()` never
    would, and `digest run` ignored SIGTERM until killed. Seen in CI-like runs."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: stop.set())
    fallback = threading.Timer(15, stop.set)  # so a regression fails instead of hanging
    fallback.start()

    def signal_from_this_thread() -> None:
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    try:
        threading.Thread(target=signal_from_this_thread).start()
        started = time.monotonic()
        Daemon(fast_settings(), Recorder().jobs()).run_until(stop)
        took = time.monotonic() - started
    finally:
        fallback.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert took < 3, f"the daemon noticed the signal only after {took:.1f} s"


def test_every_run_is_recorded_at_its_start_and_end_with_its_error() -> None:
    recorded: list[tuple[str, datetime, datetime | None, str | None, str | None]] = []

    def failing_tick(now: datetime) -> None:
        raise RuntimeError("database is down")

    recorder = Recorder()
    jobs = replace(
        recorder.jobs(tick=failing_tick),
        record=lambda *run: recorded.append(run),  # type: ignore[arg-type]
    )
    assert run_for(Daemon(fast_settings(), jobs), 0.5) is True
    ticks = [run for run in recorded if run[0] == "tick"]
    starts = [run for run in ticks if run[2] is None]
    ends = [run for run in ticks if run[2] is not None]
    assert starts and ends
    assert all(run[3] == "RuntimeError: database is down" for run in ends)
    ingest = [run for run in recorded if run[0] == "ingest" and run[2] is not None]
    assert ingest and ingest[0][3] is None  # a run that worked records no error


def test_a_failing_record_never_stops_a_job() -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    recorder = Recorder()
    jobs = replace(recorder.jobs(), record=broken)
    assert run_for(Daemon(fast_settings(), jobs), 0.5) is True
    assert len(recorder.ticks) >= 2


def test_what_a_tick_did_is_logged_when_it_changes_not_every_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = iter(["planned 0, sent 0: 3 not due"] * 4 + ["planned 2, sent 2"] * 100)
    recorder = Recorder()
    jobs = recorder.jobs(tick=lambda now: next(said))
    with caplog.at_level(logging.INFO, logger="digest.run"):
        assert run_for(Daemon(fast_settings(), jobs), 1.0) is True
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick: ")]
    assert lines == ["tick: planned 0, sent 0: 3 not due", "tick: planned 2, sent 2"]


def test_tick_summary_explains_an_empty_day() -> None:
    from digest.outbox import DeliveryReport
    from digest.pipeline import tick_summary
    from digest.planner import PlanReport

    plans = PlanReport(now=datetime(2026, 11, 22, tzinfo=UTC))
    plans.skipped += [
        ("a@x.org", "not due: next digest at 2026-11-23 08:00 (Europe/Berlin)"),
        ("b@x.org", "not due: next digest at 2026-11-23 09:00 (UTC)"),
        ("c@x.org", "paused until 2026-12-01"),
    ]
    assert tick_summary(plans, DeliveryReport()) == "planned 0, sent 0: 2 not due, 1 paused"


def test_the_arxiv_fetch_retries_until_the_days_feed_is_in() -> None:
    recorder = Recorder()
    answers = [False, True, True]
    arxiv_calls: list[datetime] = []

    def fetch(now: datetime) -> bool:
        arxiv_calls.append(now)
        return answers.pop(0)

    settings = replace(
        fast_settings(),
        sources=replace(
            SourceSettings(), arxiv_categories="cs.CL,cs.LG", arxiv_retry_minutes=0.002
        ),
    )
    daemon = Daemon(settings, replace(recorder.jobs(), fetch_arxiv=fetch))
    daemon.start()
    assert "arxiv" in daemon.next_runs()
    daemon._fetch_arxiv()  # as the daily cron trigger would
    time.sleep(0.8)
    daemon._fetch_arxiv()  # the next trigger the same day: done already
    daemon.stop()
    assert len(arxiv_calls) == 2  # one retry, then done for the day
    assert recorder.hf_calls == 0  # the HF job keeps its own schedule and state


def test_no_arxiv_job_without_categories() -> None:
    from digest.daemon import next_fire_times

    called: list[datetime] = []
    daemon = Daemon(fast_settings(), replace(Recorder().jobs(), fetch_arxiv=called.append))
    daemon.start()
    assert "arxiv" not in daemon.next_runs()
    daemon.stop()
    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert "arxiv" not in next_fire_times(Settings(), now)
    on = replace(Settings(), sources=replace(SourceSettings(), arxiv_categories="cs.CL"))
    assert next_fire_times(on, now)["arxiv"] == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


def test_ticks_that_find_a_long_round_running_are_its_heartbeat() -> None:
    seen: list[str] = []

    def long_round(now: datetime) -> None:
        time.sleep(0.6)

    recorder = Recorder()
    jobs = replace(recorder.jobs(tick=long_round), seen=lambda job, now: seen.append(job))
    assert run_for(Daemon(fast_settings(), jobs), 0.8) is True
    assert seen.count("tick") >= 2  # tick_seconds is 0.1: the busy ticks said so
