"""Is the service healthy? What `digest status` (and `/healthz`) say, and when to warn.

Read from what the service recorded, never from what it should have done:
the daemon's job runs (`digest.store.job_runs`), the dumps ingested, the
outbox. A warning is something an operator must look at; `digest status`
exits 1 when there is one, so a monitor can run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.store.job_runs import job_runs
from digest.store.schema import Digest, Dump, JobRun

__all__ = ["ALIVE_MIN_SECONDS", "STALE_AFTER", "Health", "daemon_verdict", "read_health"]

STALE_AFTER = timedelta(days=2)
"""No new dump for this long is a warning: sources publish every weekday."""
ALIVE_MIN_SECONDS = 120
"""A tick may wait this long behind a slow ingest before the daemon is called gone."""


@dataclass
class Health:
    daemon: dict[str, Any]
    runs: dict[str, JobRun]
    last_ingest: dict[str, Any] | None
    sources: dict[str, dict[str, Any]]  # per source: its last dump
    warnings: list[str] = field(default_factory=list)
    # one short code per warning ("stale-dumps", "daemon", "job-failed:hf", "retrying"):
    # what /healthz shows the internet, without the details (errors name hosts and users)
    codes: list[str] = field(default_factory=list)


def read_health(session: Session, *, now: datetime, tick_seconds: float) -> Health:
    """What the store says about the service's health at `now`."""
    runs = job_runs(session)
    sources: dict[str, dict[str, Any]] = {}
    latest = (
        select(Dump.source, func.max(Dump.ingested_at).label("at")).group_by(Dump.source)
    ).subquery()
    for source, at, ref, papers in session.execute(
        select(Dump.source, Dump.ingested_at, Dump.source_ref, Dump.paper_count)
        .join(latest, (latest.c.source == Dump.source) & (latest.c.at == Dump.ingested_at))
        .order_by(Dump.ingested_at)
    ):
        sources[source] = {"at": at, "source_ref": ref, "papers": papers}
    last = max(sources.values(), key=lambda s: s["at"], default=None)
    retrying = session.scalar(
        select(func.count()).select_from(Digest).where(Digest.status == "retry")
    )
    health = Health(
        daemon=daemon_verdict(runs.get("tick"), now, tick_seconds),
        runs=runs,
        last_ingest=last,
        sources=sources,
    )
    found = _warnings(health, now, retrying or 0)
    health.codes = [code for code, _ in found]
    health.warnings = [text for _, text in found]
    return health


def daemon_verdict(tick: JobRun | None, now: datetime, tick_seconds: float) -> dict[str, Any]:
    """Whether `digest run` looks alive, from its last sign of life: a tick starts every
    tick_seconds, and one that finds the last still running says so (`seen_at`), so a
    last sign much older than that means no daemon is ticking. `alive` is None for a
    tick that started long ago, never finished and gave no sign since (its process died
    mid-round, or is stuck)."""
    if tick is None:
        return {"alive": False, "said": "no run recorded (not started on this database yet)"}
    last = max(t for t in (tick.started_at, tick.finished_at, tick.seen_at) if t is not None)
    ago = _ago((now - last).total_seconds())
    window = max(3 * tick_seconds, ALIVE_MIN_SECONDS)
    seen = {"worker": tick.worker, "last_seen": last.isoformat()}
    if (now - last).total_seconds() <= window:
        running = ""
        if tick.finished_at is None and now - tick.started_at > timedelta(seconds=window):
            running = f", a tick running for {_ago((now - tick.started_at).total_seconds())}"
        return {
            "alive": True,
            "said": f"alive ({tick.worker}, last seen {ago} ago{running})",
            **seen,
        }
    if tick.finished_at is None:
        said = (
            f"a tick started {_ago((now - tick.started_at).total_seconds())} ago by "
            f"{tick.worker} has not finished and gave no sign for {ago}: the process died "
            "or is stuck (see its leases below)"
        )
        return {"alive": None, "said": said, **seen}
    said = f"not running? last seen {ago} ago ({tick.worker})"
    return {"alive": False, "said": said, **seen}


def _warnings(health: Health, now: datetime, retrying: int) -> list[tuple[str, str]]:
    """(code, what to tell the operator) for each thing that needs a look."""
    found: list[tuple[str, str]] = []
    last = health.last_ingest
    if last is None:
        found.append(("no-dumps", "no dump ingested yet"))
    elif now - last["at"] > STALE_AFTER:
        found.append(("stale-dumps", f"no new dump for {_ago((now - last['at']).total_seconds())}"))
    if "tick" in health.runs and health.daemon["alive"] is not True:
        found.append(("daemon", f"digest run: {health.daemon['said']}"))
    for name, run in sorted(health.runs.items()):
        if run.error:
            found.append((f"job-failed:{name}", f"{name}: the last run failed: {run.error}"))
    if retrying:
        said = f"{retrying} digest{'s' if retrying != 1 else ''} waiting to be retried"
        found.append(("retrying", said))
    return found


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def as_json(health: Health) -> dict[str, Any]:
    """The JSON `digest status --json` and `/healthz` give."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    def source(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"at": iso(entry["at"]), "source": entry["source_ref"], "papers": entry["papers"]}

    return {
        "ok": not health.warnings,
        "warnings": health.warnings,
        "codes": health.codes,
        "daemon": health.daemon,
        "jobs": {
            name: {
                "worker": run.worker,
                "started_at": iso(run.started_at),
                "finished_at": iso(run.finished_at),
                "ok_at": iso(run.ok_at),
                "error": run.error,
                "result": run.result,
            }
            for name, run in health.runs.items()
        },
        "last_ingest": source(health.last_ingest) if health.last_ingest else None,
        "sources": {name: source(entry) for name, entry in health.sources.items()},
    }
