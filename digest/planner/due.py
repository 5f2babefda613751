"""Who is due, for which period and from when, and why everyone else is not.

Reads every subscriber's schedule and digest history as plain values, asks
`digest.schedule` whether their current period is due, and gives each due
subscriber with topics the start of their candidate window: when their
previous digest was planned, or for a first digest `first_digest_lookback_days`
ago. Everyone not due is reported with a reason a person can act on ("has not
confirmed", "paused until ...", "not due: next digest at ...").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from digest.errors import BadInput
from digest.planner.report import PlanReport
from digest.schedule import Schedule, current_period, due_period, next_send_at
from digest.store.reads import chunks
from digest.store.schema import Digest, Subscriber, Topic
from digest.subscribers.manage import normalise_email
from digest.values import zone_of

__all__ = [
    "DELIVERED_OR_ON_ITS_WAY",
    "WINDOW_CLOSING",
    "DueSubscriber",
    "find_due",
    "window_start",
]

log = logging.getLogger(__name__)

# Digests whose papers count as "already given to the subscriber": never repeat them.
DELIVERED_OR_ON_ITS_WAY = ("sent", "pending", "sending", "retry")
# Digests that close a window: the next digest draws on dumps ingested after them.
# (A failed or cancelled digest does not: its papers may come again.)
WINDOW_CLOSING = (*DELIVERED_OR_ON_ITS_WAY, "skipped")


@dataclass(frozen=True, slots=True)
class _SubscriberRow:
    """The schedule columns of a subscriber, read as plain values (building ORM objects
    is costly, and a tick reads every active subscriber)."""

    id: int
    email: str
    status: str
    schedule: Schedule
    max_papers: int


@dataclass
class DueSubscriber:
    """A due subscriber, copied out of the ORM so writing needs no further reads."""

    subscriber_id: int
    email: str
    period: str
    max_papers: int
    window_start: datetime
    topics: list[tuple[int, str, str]]  # (topic id, query text, label)


def find_due(
    session: Session,
    *,
    now: datetime,
    email: str | None,
    ignore_schedule: bool,
    lookback: timedelta,
    report: PlanReport,
) -> list[DueSubscriber]:
    """The subscribers to plan a digest for at `now`; the others go to `report.skipped`.

    `email` limits the pass to one subscriber (BadInput if there is none);
    `ignore_schedule` takes the current period even if it is not due or the
    subscriber is paused.
    """
    subscribers = _read_subscribers(session, email)
    last_period, window_closed_at = _last_digests(session, [s.id for s in subscribers])
    scheduled: list[tuple[_SubscriberRow, str]] = []
    for sub in subscribers:
        why_not = _inactive_reason(sub, now, ignore_schedule)
        if why_not:
            report.skipped.append((sub.email, why_not))
            continue
        try:
            period = _period_to_plan(sub, last_period.get(sub.id), now, ignore_schedule)
            if period is None:
                why_not = _not_due_reason(sub, last_period.get(sub.id), now)
        except BadInput as exc:  # e.g. a time zone this machine's tzdata does not know
            log.warning("cannot schedule %s: %s", sub.email, exc)
            report.skipped.append((sub.email, f"bad schedule: {exc}"))
            continue
        if period is None:
            report.skipped.append((sub.email, why_not or "not due"))
            continue
        scheduled.append((sub, period))

    topics_of = _read_topics(session, [sub.id for sub, _ in scheduled])
    due: list[DueSubscriber] = []
    for sub, period in scheduled:
        if not topics_of.get(sub.id):
            report.skipped.append((sub.email, "no topics"))
            continue
        begins = window_start(
            window_closed_at.get(sub.id), sub.schedule.subscribed_at, now, lookback
        )
        due.append(
            DueSubscriber(sub.id, sub.email, period, sub.max_papers, begins, topics_of[sub.id])
        )
    return due


def window_start(
    previous: datetime | None, subscribed_at: datetime, now: datetime, lookback: timedelta
) -> datetime:
    """Where the candidates of a digest begin: the previous digest of this subscription,
    else (a first digest, or the first after re-subscribing) `lookback` ago."""
    if previous is not None and previous >= subscribed_at:
        return min(previous, now)
    start = now - lookback
    if previous is not None:
        start = max(start, previous)
    return min(start, now)


# in the order `_read_subscribers` unpacks them
_SUBSCRIBER_COLUMNS = (
    Subscriber.id,
    Subscriber.email,
    Subscriber.status,
    Subscriber.timezone,
    Subscriber.send_hour,
    Subscriber.frequency,
    Subscriber.weekday,
    Subscriber.max_papers,
    Subscriber.subscribed_at,
    Subscriber.paused_until,
)


def _read_subscribers(session: Session, email: str | None) -> list[_SubscriberRow]:
    """The active subscribers by id, or the one with address `email` whatever their status.
    Read through the session's connection (Core): a row per subscriber, plain columns,
    unpacked (reading each of a hundred thousand rows' columns by name cost more than
    the query)."""
    stmt = select(*_SUBSCRIBER_COLUMNS).order_by(Subscriber.id)
    if email is None:
        stmt = stmt.where(Subscriber.status == "active")
    else:
        wanted = normalise_email(email)
        stmt = stmt.where(Subscriber.email == wanted)
    found = [
        _SubscriberRow(
            subscriber_id,
            address,
            status,
            Schedule(zone, hour, frequency, weekday, subscribed_at=since, paused_until=paused),
            max_papers,
        )
        for (
            subscriber_id,
            address,
            status,
            zone,
            hour,
            frequency,
            weekday,
            max_papers,
            since,
            paused,
        ) in session.connection().execute(stmt)
    ]
    if email is not None and not found:
        raise BadInput(f"no subscriber with the address {wanted}")
    return found


def _read_topics(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, list[tuple[int, str, str]]]:
    """Per subscriber: (topic id, query text, label or query), in the order they were added."""
    topics: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for chunk in chunks(subscriber_ids):
        rows = session.connection().execute(
            select(Topic.subscriber_id, Topic.id, Topic.query, Topic.label)
            .where(Topic.subscriber_id.in_(chunk))
            .order_by(Topic.id)
        )
        for sub_id, topic_id, text, label in rows:
            topics[sub_id].append((topic_id, text, label or text))
    return topics


def _last_digests(
    session: Session, subscriber_ids: Sequence[int]
) -> tuple[dict[int, str], dict[int, datetime]]:
    """Per subscriber: the period of their latest digest (any status), and when
    their latest window-closing digest was planned."""
    last_period: dict[int, str] = {}
    closed_at: dict[int, datetime] = {}
    for chunk in chunks(subscriber_ids):
        latest = (
            select(Digest.subscriber_id, func.max(Digest.id).label("id"))
            .where(Digest.subscriber_id.in_(chunk))
            .group_by(Digest.subscriber_id)
            .subquery()
        )
        for sub_id, period in session.execute(
            select(Digest.subscriber_id, Digest.period).join(latest, Digest.id == latest.c.id)
        ):
            last_period[sub_id] = period
        # The status test inside the aggregate, not in WHERE: there it led SQLite to the
        # status index, reading every digest of those statuses (the whole table, soon)
        # for each chunk of subscribers instead of just these subscribers' digests.
        for sub_id, planned_at in session.execute(
            select(
                Digest.subscriber_id,
                func.max(case((Digest.status.in_(WINDOW_CLOSING), Digest.planned_at))),
            )
            .where(Digest.subscriber_id.in_(chunk))
            .group_by(Digest.subscriber_id)
        ):
            if planned_at is not None:
                closed_at[sub_id] = _aware(planned_at)
    return last_period, closed_at


def _aware(value: datetime | str) -> datetime:
    # Aggregates may bypass the UtcDateTime decorator on some backends (naive values,
    # or text on SQLite); normalise to aware UTC either way.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _inactive_reason(sub: _SubscriberRow, now: datetime, ignore_schedule: bool) -> str | None:
    if sub.status == "pending":
        return "has not confirmed the subscription yet"
    if sub.status != "active":
        return sub.status  # "unsubscribed", "bounced"
    paused_until = sub.schedule.paused_until
    if not ignore_schedule and paused_until is not None and paused_until > now:
        return f"paused until {_local(paused_until, sub.schedule.timezone)}"
    return None


def _period_to_plan(
    sub: _SubscriberRow, last: str | None, now: datetime, ignore_schedule: bool
) -> str | None:
    """The period to plan a digest for: the due one, or with `ignore_schedule` the current."""
    if ignore_schedule:
        return current_period(sub.schedule, now)
    return due_period(sub.schedule, last_period=last, now=now)


def _not_due_reason(sub: _SubscriberRow, last: str | None, now: datetime) -> str:
    upcoming = next_send_at(sub.schedule, last_period=last, now=now)
    done = f"{last} already planned; " if last else ""
    return f"not due: {done}next digest at {_local(upcoming, sub.schedule.timezone)}"


def _local(moment: datetime, zone: str) -> str:
    try:
        return f"{moment.astimezone(zone_of(zone)):%Y-%m-%d %H:%M} {zone}"
    except BadInput:
        return f"{moment:%Y-%m-%d %H:%M} UTC"
