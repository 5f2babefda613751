"""Recording digests: the `digests` and `digest_items` rows of a planning pass.

The rows are written in fresh transactions of up to WRITE_BATCH subscribers
whose first statement is an INSERT (so on SQLite it waits for the write lock
instead of failing on a stale snapshot). The unique (subscriber_id, period)
constraint makes a second planner running at the same time a no-op: its
INSERT fails, and the batch is written again one savepoint per subscriber, so
only the subscribers the other planner already took are rolled back and
reported; the others go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.planner.report import PlannedDigest, PlanReport
from digest.store.schema import Digest, DigestItem, EncodedJSON
from digest.values import Pick

_ITEMS = cast(Table, DigestItem.__table__)

__all__ = ["WRITE_BATCH", "record_plans", "write_digest", "write_digests"]

WRITE_BATCH = 1000
"""Digests written per transaction: each commit waits for the disk (SQLite's fsync), so
small transactions made commits a large part of a big plan; much larger and senders
running beside the planner would wait long for the write lock."""


def record_plans(session: Session, plans: Sequence[PlannedDigest], report: PlanReport) -> None:
    """Write `plans`, committing each batch; each goes to `report.planned`, or to
    `report.skipped` when another planner recorded its period first."""
    for start in range(0, len(plans), WRITE_BATCH):
        batch = plans[start : start + WRITE_BATCH]
        for plan, recorded in zip(batch, write_digests(session, batch), strict=True):
            if recorded:
                report.planned.append(plan)
            else:
                report.skipped.append(
                    (plan.email, f"{plan.period} was already planned by another planner")
                )
        session.commit()


def write_digests(session: Session, batch: Sequence[PlannedDigest]) -> list[bool]:
    """Write a batch of digests in two statements; if any period is taken (a concurrent
    planner), roll the batch back and write it one savepoint per subscriber instead."""
    try:
        with session.begin_nested():
            ids = (
                session.execute(
                    insert(Digest).returning(Digest.id, sort_by_parameter_order=True),
                    [_digest_row(plan) for plan in batch],
                )
                .scalars()
                .all()
            )
            explained: dict[int, EncodedJSON] = {}
            items = [
                row
                for plan, i in zip(batch, ids, strict=True)
                for row in _item_rows(plan, i, explained)
            ]
            if items:
                # Core, not the ORM's bulk insert: plain rows need none of its bookkeeping
                session.execute(insert(_ITEMS), items)
    except IntegrityError:
        return [write_digest(session, plan) for plan in batch]
    for plan, digest_id in zip(batch, ids, strict=True):
        plan.digest_id = digest_id
    return [True] * len(batch)


def write_digest(session: Session, plan: PlannedDigest) -> bool:
    """Write one digest and its items under a savepoint; False if the period is taken.

    The caller commits. A period taken by a concurrent planner rolls back just this one.
    """
    try:
        with session.begin_nested():
            digest_id = session.execute(
                insert(Digest).values(**_digest_row(plan)).returning(Digest.id)
            ).scalar_one()
            if plan.picks:
                session.execute(insert(_ITEMS), _item_rows(plan, digest_id, {}))
    except IntegrityError:
        plan.digest_id = None
        return False
    plan.digest_id = digest_id
    return True


def _digest_row(plan: PlannedDigest) -> dict[str, Any]:
    return {
        "subscriber_id": plan.subscriber_id,
        "period": plan.period,
        "status": plan.status,
        "message_id": plan.message_id,
        "planned_at": plan.planned_at,
        "window_start": plan.window_start,
    }


def _item_rows(
    plan: PlannedDigest, digest_id: int, explained: dict[int, EncodedJSON]
) -> list[dict[str, Any]]:
    """The item rows of one digest. `explained` holds each hit's explanation by the hit's
    identity: subscribers who share a topic share its hits, so a batch builds each once."""
    return [
        {
            "digest_id": digest_id,
            "paper_id": pick.paper_id,
            "rank": pick.rank,
            "score": pick.score,
            "topic_id": pick.topic_id,
            "topic_label": plan.topic_labels.get(pick.topic_id, ""),
            "explanation": _explanation(pick, explained),
        }
        for pick in plan.picks
    ]


def _explanation(pick: Pick, explained: dict[int, EncodedJSON]) -> EncodedJSON:
    # the plans hold their hits for the whole batch, so an id is not reused meanwhile
    found = explained.get(id(pick.hit))
    if found is None:
        encoded = json.dumps(pick.explanation(), separators=(",", ":"), ensure_ascii=False)
        found = explained[id(pick.hit)] = EncodedJSON(encoded)
    return found
