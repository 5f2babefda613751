"""Candidate papers: what is new in each due subscriber's window and not yet given to them.

Candidates for a digest are the papers listed in dumps ingested in
(window_start, now], where window_start is when the subscriber's previous
digest was planned (see `digest.planner.due`), minus every paper already in
one of their digests that was sent or is on its way. Ingest time, not a dump's
printed date, decides what is new; after an outage or a pause the window simply
covers the gap, so catch-up is one digest holding everything new.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.planner.due import DELIVERED_OR_ON_ITS_WAY, DueSubscriber
from digest.planner.report import PlanReport
from digest.store.reads import chunks
from digest.store.schema import Digest, DigestItem, Dump, DumpPaper, Paper

__all__ = ["INGEST_GRACE", "candidate_papers"]

# Ingest stamps a dump with the time its job started and commits later; a
# planning pass in between cannot see it yet. Candidate windows reach back this
# far so such a dump is offered next time instead of never.
INGEST_GRACE = timedelta(minutes=10)


def candidate_papers(
    session: Session,
    due: Sequence[DueSubscriber],
    now: datetime,
    *,
    report: PlanReport,
    voted: Mapping[int, AbstractSet[int]] | None = None,
) -> dict[int, frozenset[int]]:
    """Per due subscriber: the ids of their candidate papers.

    `voted` holds, per subscriber, the papers they voted on: a reader who said
    "more" or "less like this" has seen the paper, and is never sent it again.

    A subscriber with no new dump in their window is left out (and reported),
    also with `schedule.send_empty`: recording the period now would keep a
    dump that arrives later the same day out of that day's digest (`send_empty`
    is for dumps that came and matched nothing).

    Subscribers on the same schedule share a window: they get one shared set of
    papers (not a copy each) when nothing of it was given to them, so scoring's
    selection memo hashes it once and matches it by identity.
    """
    if not due:
        return {}
    listings = _listings_in_window(session, min(d.window_start for d in due) - INGEST_GRACE, now)
    given = _already_given(session, [d.subscriber_id for d in due])
    for subscriber_id, voted_on in (voted or {}).items():
        given[subscriber_id].update(voted_on)
    listings.drop(_withdrawn(session, listings.paper_last_seen.keys()))
    listed: dict[datetime, frozenset[int]] = {}
    candidates: dict[int, frozenset[int]] = {}
    for d in due:
        if not listings.has_dumps_after(d.window_start):
            when = f"{d.window_start:%Y-%m-%d %H:%M} UTC"
            report.skipped.append((d.email, f"no new dumps since {when}"))
            continue
        # Reach back INGEST_GRACE before the window: a dump stamped just before the
        # previous planning pass but committed after it was invisible to that pass.
        # Papers already given are excluded, so the overlap never repeats one.
        start = d.window_start - INGEST_GRACE
        papers = listed.get(start)
        if papers is None:
            papers = listed[start] = frozenset(listings.papers_after(start))
        mine = given.get(d.subscriber_id)
        candidates[d.subscriber_id] = (
            papers - mine if mine and not mine.isdisjoint(papers) else papers
        )
    return candidates


@dataclass
class _WindowListings:
    """Papers listed in dumps ingested in a time range, by when they were last listed."""

    dump_times: list[datetime]  # sorted ingest times of the dumps in range
    paper_last_seen: dict[int, datetime]  # paper -> latest ingest time of a dump listing it

    def has_dumps_after(self, start: datetime) -> bool:
        return bisect.bisect_right(self.dump_times, start) < len(self.dump_times)

    def drop(self, papers: AbstractSet[int]) -> None:
        for paper in papers:
            self.paper_last_seen.pop(paper, None)

    def papers_after(self, start: datetime) -> set[int]:
        return {pid for pid, seen in self.paper_last_seen.items() if seen > start}


def _listings_in_window(session: Session, since: datetime, now: datetime) -> _WindowListings:
    """The dumps ingested in (since, now] and the papers they list."""
    rows = session.execute(
        select(Dump.ingested_at, DumpPaper.paper_id)
        .join(DumpPaper, DumpPaper.dump_id == Dump.id)
        .where(Dump.ingested_at > since, Dump.ingested_at <= now)
        .order_by(Dump.ingested_at, Dump.id)
    )
    seen: dict[int, datetime] = {}
    for ingested_at, paper_id in rows:  # ascending: later listings overwrite
        seen[paper_id] = ingested_at
    times = sorted(
        session.scalars(
            select(Dump.ingested_at).where(Dump.ingested_at > since, Dump.ingested_at <= now)
        )
    )
    return _WindowListings(times, seen)


def _withdrawn(session: Session, paper_ids: Iterable[int]) -> set[int]:
    """Those of `paper_ids` their source has since said were withdrawn: never sent."""
    found: set[int] = set()
    for chunk in chunks(sorted(paper_ids)):
        found.update(
            session.scalars(
                select(Paper.id).where(
                    Paper.id.in_(chunk), Paper.extra["withdrawn_at"].as_string().is_not(None)
                )
            )
        )
    return found


def _already_given(session: Session, subscriber_ids: Sequence[int]) -> dict[int, set[int]]:
    """Per subscriber, the papers in their sent or on-its-way digests."""
    given: dict[int, set[int]] = defaultdict(set)
    # The status is tested here, not in the query: there it led SQLite to the status
    # index, reading every digest of those statuses (nearly all of them) for each
    # chunk of subscribers instead of just these subscribers' digests. Through the
    # session's connection (Core): about ten rows per digest, and the ORM's handling
    # of each row is no use for plain columns.
    delivered = frozenset(DELIVERED_OR_ON_ITS_WAY)
    for chunk in chunks(subscriber_ids):
        rows = session.connection().execute(
            select(Digest.subscriber_id, Digest.status, DigestItem.paper_id)
            .join(DigestItem, DigestItem.digest_id == Digest.id)
            .where(Digest.subscriber_id.in_(chunk))
        )
        for sub_id, status, paper_id in rows:
            if status in delivered:
                given[sub_id].add(paper_id)
    return given
