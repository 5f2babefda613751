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

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.gcpause import collector_paused, collector_running
from digest.planner.report import PlannedDigest, PlanReport
from digest.store.schema import Digest, DigestItem, Explanation
from digest.values import Hit

_ITEMS = cast(Table, DigestItem.__table__)
_DIGESTS = cast(Table, Digest.__table__)
_EXPLANATIONS = cast(Table, Explanation.__table__)

__all__ = ["WRITE_BATCH", "record_plans", "write_digest", "write_digests", "write_explanations"]

WRITE_BATCH = 3000
"""Digests written per transaction. Each commit writes every index page the batch
touched (on SQLite, to the WAL: about one page per paper in the items' paper index
whatever the batch's size), so small transactions made commits a large part of a
big plan; much larger and senders running beside the planner would wait long for
the write lock."""


def record_plans(
    session: Session, plans: Iterable[Sequence[PlannedDigest]], report: PlanReport
) -> None:
    """Write `plans`, one transaction per batch; each is added to `report`, or goes to
    `report.skipped` when another planner recorded its period first.

    A recorded plan lets its picks go (`papers` keeps their count): the report of a
    pass over 100,000 subscribers would otherwise hold every pick until the end.
    """
    explained: Explained = {}
    # ten item rows per digest, made and freed with no cycles: see digest.gcpause
    with collector_paused():
        for batch in plans:
            write_explanations(session, batch, explained)
            written = write_digests(session, batch, explained)
            for plan, recorded in zip(batch, written, strict=True):
                plan.picks = []
                if recorded:
                    report.add(plan)
                else:
                    report.skipped.append(
                        (plan.email, f"{plan.period} was already planned by another planner")
                    )
            session.commit()


Explained = dict[int, tuple[Hit, int]]
"""The explanation row of each hit written so far in a pass, by the hit's identity
(`id`), with the hit itself: held here, it cannot be freed and its identity reused."""


def write_explanations(
    session: Session, batch: Sequence[PlannedDigest], explained: Explained
) -> Explained:
    """An `explanations` row for each hit of `batch` not in `explained` yet (added to it):
    subscribers who share a topic share its hits, so a pass writes each once and its
    items refer to it.

    Written outside the batch's savepoint, so a batch written again one digest at a
    time (a concurrent planner) still finds them. Those of digests another planner
    took first stay unreferenced: a few rows, never read.
    """
    new = {id(p.hit): p.hit for plan in batch for p in plan.picks if id(p.hit) not in explained}
    if new:
        ids = session.scalars(
            insert(_EXPLANATIONS).returning(_EXPLANATIONS.c.id, sort_by_parameter_order=True),
            [{"body": _explanation(hit)} for hit in new.values()],
        ).all()
        for (key, hit), explanation_id in zip(new.items(), ids, strict=True):
            explained[key] = (hit, explanation_id)
    return explained


def _explanation(hit: Hit) -> dict[str, Any]:
    """The JSON stored in explanations.body."""
    return {"matched": [m.as_json() for m in hit.matched], "parts": dict(hit.parts)}


def write_digests(
    session: Session, batch: Sequence[PlannedDigest], explained: Explained
) -> list[bool]:
    """Write a batch of digests in two statements; if any period is taken (a concurrent
    planner), roll the batch back and write it one savepoint per subscriber instead.

    The new ids come back with the (subscriber, period) they were written for, which
    is unique, rather than in the order of the rows: asking for that order makes
    SQLAlchemy insert one row per statement on SQLite, where a multi-row INSERT's
    RETURNING order is not guaranteed.
    """
    try:
        with session.begin_nested():
            id_of = {
                (subscriber, period): i for i, subscriber, period in _insert_digests(session, batch)
            }
            ids = [id_of[plan.subscriber_id, plan.period] for plan in batch]
            _insert_items(
                session,
                [
                    row
                    for plan, i in zip(batch, ids, strict=True)
                    for row in _item_rows(plan, i, explained)
                ],
            )
    except IntegrityError:
        # Each period taken leaves an exception's cycles (traceback, frames, SQLAlchemy's
        # context): with the collector paused for the pass, two planners racing over
        # 100,000 readers would hold them all until it ends. Let it run meanwhile.
        with collector_running():
            return [write_digest(session, plan, explained) for plan in batch]
    for plan, digest_id in zip(batch, ids, strict=True):
        plan.digest_id = digest_id
    return [True] * len(batch)


def write_digest(session: Session, plan: PlannedDigest, explained: Explained) -> bool:
    """Write one digest and its items under a savepoint; False if the period is taken.

    The caller commits. A period taken by a concurrent planner rolls back just this one.
    """
    try:
        with session.begin_nested():
            digest_id = session.execute(
                insert(Digest).values(**_digest_row(plan)).returning(Digest.id)
            ).scalar_one()
            _insert_items(session, _item_rows(plan, digest_id, explained))
    except IntegrityError:
        plan.digest_id = None
        return False
    plan.digest_id = digest_id
    return True


def _insert_digests(
    session: Session, batch: Sequence[PlannedDigest]
) -> Iterable[tuple[int, int, str]]:
    """Insert the digests of `batch`; (id, subscriber_id, period) of each, in no order.

    On SQLite, one multi-row INSERT … RETURNING written here: SQLAlchemy's handling of
    each row's parameters cost more than the insert itself (bench/README.md). The
    timestamps go through the column type's own conversion, once per distinct value
    (a pass shares one planning time and a few window starts), so the rows are those
    Core would write. Other databases get Core's insert.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        return cast(
            Iterable[tuple[int, int, str]],
            session.execute(
                insert(_DIGESTS).returning(
                    _DIGESTS.c.id, _DIGESTS.c.subscriber_id, _DIGESTS.c.period
                ),
                [_digest_row(plan) for plan in batch],
            ),
        )
    convert = _DIGESTS.c.planned_at.type.dialect_impl(dialect).bind_processor(dialect)
    convert = convert or _unchanged
    stored: dict[datetime, Any] = {}
    returned: list[tuple[int, int, str]] = []
    for start in range(0, len(batch), _SQLITE_DIGESTS_PER_INSERT):
        rows = batch[start : start + _SQLITE_DIGESTS_PER_INSERT]
        values: list[Any] = []
        for plan in rows:
            for moment in (plan.planned_at, plan.window_start):
                if moment not in stored:
                    stored[moment] = convert(moment)
            values += (
                plan.subscriber_id,
                plan.period,
                plan.status,
                plan.message_id,
                stored[plan.planned_at],
                stored[plan.window_start],
                0,
            )
        result = connection.exec_driver_sql(
            _SQLITE_INSERT_DIGESTS
            + ", ".join([_SQLITE_DIGEST_VALUES] * len(rows))
            + " RETURNING id, subscriber_id, period",
            tuple(values),
        )
        returned += cast(list[tuple[int, int, str]], result.all())
    return returned


def _unchanged(value: Any) -> Any:
    return value


_SQLITE_DIGEST_COLUMNS = (
    "subscriber_id",
    "period",
    "status",
    "message_id",
    "planned_at",
    "window_start",
    "attempts",
)
_SQLITE_INSERT_DIGESTS = (
    f"INSERT INTO {_DIGESTS.name} ({', '.join(_SQLITE_DIGEST_COLUMNS)}) VALUES "
)
_SQLITE_DIGEST_VALUES = f"({', '.join('?' for _ in _SQLITE_DIGEST_COLUMNS)})"
# SQLite takes at most 32,766 parameters per statement (since 3.32)
_SQLITE_DIGESTS_PER_INSERT = 1000


def _digest_row(plan: PlannedDigest) -> dict[str, Any]:
    return {
        "subscriber_id": plan.subscriber_id,
        "period": plan.period,
        "status": plan.status,
        "message_id": plan.message_id,
        "planned_at": plan.planned_at,
        "window_start": plan.window_start,
    }


_ITEM_COLUMNS = (
    "digest_id",
    "paper_id",
    "rank",
    "score",
    "topic_id",
    "topic_label",
    "explanation_id",
)
ItemRow = tuple[int, int, int, float, int, str, int]


def _item_rows(plan: PlannedDigest, digest_id: int, explained: Explained) -> list[ItemRow]:
    """The item rows of one digest, values in `_ITEM_COLUMNS` order."""
    labels = plan.topic_labels
    return [
        (
            digest_id,
            pick.hit.paper_id,
            pick.rank,
            pick.hit.score,
            pick.topic_id,
            labels.get(pick.topic_id, ""),
            explained[id(pick.hit)][1],
        )
        for pick in plan.picks
    ]


def _insert_items(session: Session, rows: list[ItemRow]) -> None:
    """Insert item rows: about ten per digest, so a big plan writes millions.

    On SQLite the rows go to the driver as they are, in one executemany: every value
    is a plain int, float or str there, and
    SQLAlchemy's handling of each row's parameters cost more than SQLite's insert.
    Other databases get Core's executemany, whose parameter handling adapts values
    to their drivers.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(_SQLITE_INSERT_ITEMS, rows)
    else:
        session.execute(
            insert(_ITEMS), [dict(zip(_ITEM_COLUMNS, row, strict=True)) for row in rows]
        )


_SQLITE_INSERT_ITEMS = (
    f"INSERT INTO {_ITEMS.name} ({', '.join(_ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ITEM_COLUMNS)})"
)
