"""The last run of each `digest run` job: written by the daemon, read by `digest status`.

A status that only computed "next tick = now + interval" looked the same
whether the daemon was alive or not; these rows are what it actually did.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.store.schema import JobRun

__all__ = ["job_runs", "record_run", "record_seen"]

MAX_ERROR_CHARS = 500


def record_run(
    session: Session,
    job: str,
    *,
    worker: str,
    started: datetime,
    finished: datetime | None,
    error: str | None,
    result: str | None = None,
) -> None:
    """Overwrite the job's row with this run: at its start (`finished` None: the last
    run's error and result stay until this one ends) and at its end (its last success
    kept when it failed)."""
    row = session.get(JobRun, job)
    if row is None:
        row = JobRun(job=job)
        session.add(row)
    row.worker, row.started_at, row.finished_at = worker, started, finished
    row.seen_at = finished or started
    if finished is None:
        return
    row.error = error[:MAX_ERROR_CHARS] if error else None
    row.result = result
    if error is None:
        row.ok_at = finished


def record_seen(session: Session, job: str, *, worker: str, at: datetime) -> None:
    """A sign of life from a job that is still running (its next run found it busy)."""
    row = session.get(JobRun, job)
    if row is not None and row.worker == worker:
        row.seen_at = at


def job_runs(session: Session) -> dict[str, JobRun]:
    """Every job's last run, by job name."""
    return {row.job: row for row in session.scalars(select(JobRun).order_by(JobRun.job))}
