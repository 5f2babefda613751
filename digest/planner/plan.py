"""One planning pass, top to bottom: who is due → their candidates → choose → record.

Transactions: the reads happen in one transaction, which is then ended; the
rows are written afterwards in fresh transactions (see `digest.planner.record`),
so a pass holds no write lock while it scores. Pass a plain session
(`store.sessions()`), not one inside `store.transaction()`: the planner commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.planner.choose import choose_papers
from digest.planner.due import find_due
from digest.planner.record import WRITE_BATCH, record_plans
from digest.planner.report import PlanReport

__all__ = ["plan_due"]

log = logging.getLogger(__name__)


def plan_due(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    email: str | None = None,
    dry_run: bool = False,
    ignore_schedule: bool = False,
    near_misses: bool = False,
    keep_planned: bool = True,
) -> PlanReport:
    """Plan the digests that are due at `now`; record them unless `dry_run`.

    Without `keep_planned` the report counts the digests instead of listing them
    (`PlanReport.keep_planned`).

    `email` limits the pass to one subscriber (BadInput if there is none).
    `ignore_schedule` plans the current period even if it is not due or the
    subscriber is paused (for previews, with `dry_run`). `near_misses` explains
    every candidate of each empty digest against each topic, for a preview that
    shows why nothing matched. That is a full explanation per paper and topic,
    wasted on a dry run over a large list that prints none of it, so only the
    one-subscriber preview asks for it (and a recording pass ignores it).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    report = PlanReport(now=now, keep_planned=keep_planned)
    lookback = timedelta(days=settings.schedule.first_digest_lookback_days)
    due = find_due(
        session,
        now=now,
        email=email,
        ignore_schedule=ignore_schedule,
        lookback=lookback,
        report=report,
    )
    plans = choose_papers(
        session,
        settings,
        due,
        now,
        report,
        near_misses=dry_run and near_misses,
        chunk=WRITE_BATCH,
    )
    session.rollback()  # end the read transaction before writing (see module docstring)
    if dry_run:
        for chunk in plans:
            for plan in chunk:
                report.add(plan)
        return report
    record_plans(session, plans, report)
    _log_report(report)
    return report


def _log_report(report: PlanReport) -> None:
    for email, reason in report.skipped:
        log.debug("not planned for %s: %s", email, reason)
    if not report.keep_planned:
        log.info(
            "planned %d digests, %d with nothing matched",
            report.pending_count,
            report.empty_count,
        )
    for plan in report.planned:
        log.info(
            "planned digest %s for %s (%s): %d papers, %s",
            plan.digest_id,
            plan.email,
            plan.period,
            plan.papers,
            plan.status,
        )
