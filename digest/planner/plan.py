"""Who is due, and what goes into their digest: the `digests` and `digest_items` rows.

The planner is the one place that decides what a subscriber receives. It reads
the store, asks `digest.schedule` who is due, scores their candidate papers
with `digest.scoring`, and records each choice *before* anything is rendered or
sent, so rendering and delivery are pure functions of the database and can be
retried.

Candidates for a digest are the papers listed in dumps ingested in
(window_start, now], where window_start is when the subscriber's previous
digest was planned (for a first digest: `first_digest_lookback_days` ago),
minus every paper already in one of their digests that was sent or is on its
way. Ingest time, not a dump's printed date, decides what is new; after an
outage or a pause the window simply covers the gap, so catch-up is one digest
holding everything new.

Transactions: the reads happen in one transaction, which is then ended; the
rows are written in fresh transactions of up to WRITE_BATCH subscribers whose
first statement is an INSERT (so on SQLite it waits for the write lock instead
of failing on a stale snapshot), each subscriber's digest and items under a
savepoint of their own. The unique (subscriber_id, period) constraint makes a
second planner running at the same time a no-op: its INSERT fails, that
subscriber's savepoint is rolled back and reported, the others go on. Pass a
plain session (`store.sessions()`), not one inside `store.transaction()`: the
planner commits.
"""

from __future__ import annotations

import bisect
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config.settings import Settings
from digest.errors import BadInput
from digest.filters import parse
from digest.gcpause import collector_paused
from digest.schedule import due_period, next_send_at, period_key, zone_of
from digest.scoring import PaperIndex, Selector
from digest.store.schema import Digest, DigestItem, Dump, DumpPaper, Paper, Subscriber, Topic
from digest.subscribers.manage import normalise_email
from digest.values import PaperText, Pick, TopicQuery

log = logging.getLogger(__name__)

# Digests whose papers count as "already given to the subscriber": never repeat them.
DELIVERED_OR_ON_ITS_WAY = ("sent", "pending", "sending", "retry")
# Digests that close a window: the next digest draws on dumps ingested after them.
# (A failed or cancelled digest does not: its papers may come again.)
WINDOW_CLOSING = (*DELIVERED_OR_ON_ITS_WAY, "skipped")
NEAR_MISSES = 3
# Ingest stamps a dump with the time its job started and commits later; a
# planning pass in between cannot see it yet. Candidate windows reach back this
# far so such a dump is offered next time instead of never.
INGEST_GRACE = timedelta(minutes=10)
WRITE_BATCH = 200  # digests written per transaction
_CHUNK = 500

Status = Literal["pending", "skipped"]


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A paper that came closest to matching, for "why is my digest empty?"."""

    paper_id: int
    title: str
    score: float
    topic_label: str
    reason: str  # the scorer's words: "missing diffusion", "below the cut-off ..."


@dataclass
class PlannedDigest:
    """One digest the planner recorded (or, in a dry run, would record)."""

    digest_id: int | None
    subscriber_id: int
    email: str
    period: str
    message_id: str
    window_start: datetime
    planned_at: datetime
    picks: list[Pick]
    status: Status
    # topic id -> the label (or query) it had at planning time, for picks' topic_label.
    topic_labels: dict[int, str] = field(default_factory=dict)
    candidates: int = 0  # new, not-yet-sent papers that were scored
    reason: str | None = None  # why it is empty, when it is
    near_misses: list[NearMiss] = field(default_factory=list)  # only when asked, in dry runs


@dataclass
class PlanReport:
    """What one planning pass did: the digests planned and who was skipped, and why."""

    now: datetime
    planned: list[PlannedDigest] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (email, reason)
    papers_indexed: int = 0

    @property
    def pending(self) -> list[PlannedDigest]:
        return [p for p in self.planned if p.status == "pending"]

    @property
    def empty(self) -> list[PlannedDigest]:
        return [p for p in self.planned if p.status == "skipped"]


@dataclass(frozen=True, slots=True)
class _Sub:
    """The schedule columns of a subscriber, read as plain values (ORM objects cost
    milliseconds apiece, and a tick reads every active subscriber)."""

    id: int
    email: str
    status: str
    timezone: str
    send_hour: int
    frequency: str
    weekday: int
    max_papers: int
    subscribed_at: datetime
    paused_until: datetime | None


@dataclass
class _Due:
    """A due subscriber, copied out of the ORM so writing needs no further reads."""

    subscriber_id: int
    email: str
    period: str
    max_papers: int
    window_start: datetime
    topics: list[tuple[int, str, str]]  # (topic id, query text, label)


def message_id_domain(settings: Settings) -> str:
    """The domain of Message-IDs: configured, else the sender address's domain."""
    if settings.sender.message_id_domain:
        return settings.sender.message_id_domain
    return settings.sender.address.rpartition("@")[2] or "localhost"


def new_message_id(settings: Settings) -> str:
    """A Message-ID chosen at planning time, so every send attempt reuses it."""
    return f"<digest-{secrets.token_hex(12)}@{message_id_domain(settings)}>"


def plan_due(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    email: str | None = None,
    dry_run: bool = False,
    ignore_schedule: bool = False,
    near_misses: bool = False,
) -> PlanReport:
    """Plan the digests that are due at `now`; record them unless `dry_run`.

    `email` limits the pass to one subscriber (BadInput if there is none).
    `ignore_schedule` plans the current period even if it is not due or the
    subscriber is paused (for previews, with `dry_run`). `near_misses` explains
    every candidate of each empty digest against each topic, for a preview that
    shows why nothing matched: about 5 ms per empty digest (three topics, 268
    papers), minutes for a dry run over a large list that prints none of it, so
    only the one-subscriber preview asks for it (and a recording pass ignores it).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    report = PlanReport(now=now)
    subscribers = _subscribers(session, email)
    last_period, window_closed_at = _last_digests(session, [s.id for s in subscribers])
    lookback = timedelta(days=settings.schedule.first_digest_lookback_days)

    due: list[_Due] = []
    due_subs: list[tuple[_Sub, str]] = []
    for sub in subscribers:
        why_not = _inactive_reason(sub, now, ignore_schedule)
        if why_not:
            report.skipped.append((sub.email, why_not))
            continue
        try:
            period = _due(sub, last_period.get(sub.id), now, ignore_schedule)
            if period is None:
                why_not = _not_due_reason(sub, last_period.get(sub.id), now)
        except BadInput as exc:  # e.g. a time zone this machine's tzdata does not know
            log.warning("cannot schedule %s: %s", sub.email, exc)
            report.skipped.append((sub.email, f"bad schedule: {exc}"))
            continue
        if period is None:
            report.skipped.append((sub.email, why_not or "not due"))
            continue
        due_subs.append((sub, period))

    topics_of = _topics(session, [sub.id for sub, _ in due_subs])
    for sub, period in due_subs:
        if not topics_of.get(sub.id):
            report.skipped.append((sub.email, "no topics"))
            continue
        begins = _window_start(window_closed_at.get(sub.id), sub.subscribed_at, now, lookback)
        due.append(_Due(sub.id, sub.email, period, sub.max_papers, begins, topics_of[sub.id]))

    plans = _choose(session, settings, due, now, report, near_misses=dry_run and near_misses)
    session.rollback()  # end the read transaction before writing (see module docstring)
    if dry_run:
        report.planned.extend(plans)
        return report
    for start in range(0, len(plans), WRITE_BATCH):
        batch = plans[start : start + WRITE_BATCH]
        for plan, recorded in zip(batch, _record_batch(session, batch), strict=True):
            if recorded:
                report.planned.append(plan)
            else:
                report.skipped.append(
                    (plan.email, f"{plan.period} was already planned by another planner")
                )
        session.commit()
    _log_report(report)
    return report


def _window_start(
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


def _log_report(report: PlanReport) -> None:
    for email, reason in report.skipped:
        log.debug("not planned for %s: %s", email, reason)
    for plan in report.planned:
        log.info(
            "planned digest %s for %s (%s): %d papers, %s",
            plan.digest_id,
            plan.email,
            plan.period,
            len(plan.picks),
            plan.status,
        )


# --- reading ---


_SUB_COLUMNS = (
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


def _subscribers(session: Session, email: str | None) -> list[_Sub]:
    stmt = select(*_SUB_COLUMNS).order_by(Subscriber.id)
    if email is None:
        stmt = stmt.where(Subscriber.status == "active")
    else:
        wanted = normalise_email(email)
        stmt = stmt.where(Subscriber.email == wanted)
    found = [_Sub(*row) for row in session.execute(stmt)]
    if email is not None and not found:
        raise BadInput(f"no subscriber with the address {wanted}")
    return found


def _topics(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, list[tuple[int, str, str]]]:
    """Per subscriber: (topic id, query text, label or query), in the order they were added."""
    topics: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for chunk in _chunks(subscriber_ids):
        rows = session.execute(
            select(Topic.subscriber_id, Topic.id, Topic.query, Topic.label)
            .where(Topic.subscriber_id.in_(chunk))
            .order_by(Topic.id)
        )
        for sub_id, topic_id, text, label in rows:
            topics[sub_id].append((topic_id, text, label or text))
    return topics


def _inactive_reason(sub: _Sub, now: datetime, ignore_schedule: bool) -> str | None:
    if sub.status == "pending":
        return "has not confirmed the subscription yet"
    if sub.status != "active":
        return sub.status  # "unsubscribed", "bounced"
    if not ignore_schedule and sub.paused_until is not None and sub.paused_until > now:
        return f"paused until {_local(sub.paused_until, sub.timezone)}"
    return None


class _ScheduleArgs(TypedDict):
    """The keyword arguments digest.schedule's due_period / next_send_at take."""

    timezone: str
    send_hour: int
    frequency: str
    weekday: int
    subscribed_at: datetime
    paused_until: datetime | None
    last_period: str | None
    now: datetime


def _schedule_of(sub: _Sub, last: str | None, now: datetime) -> _ScheduleArgs:
    return {
        "timezone": sub.timezone,
        "send_hour": sub.send_hour,
        "frequency": sub.frequency,
        "weekday": sub.weekday,
        "subscribed_at": sub.subscribed_at,
        "paused_until": sub.paused_until,
        "last_period": last,
        "now": now,
    }


def _due(sub: _Sub, last: str | None, now: datetime, ignore_schedule: bool) -> str | None:
    if ignore_schedule:
        return period_key(now.astimezone(zone_of(sub.timezone)).date(), sub.frequency)
    return due_period(**_schedule_of(sub, last, now))


def _not_due_reason(sub: _Sub, last: str | None, now: datetime) -> str:
    upcoming = next_send_at(**_schedule_of(sub, last, now))
    done = f"{last} already planned; " if last else ""
    return f"not due: {done}next digest at {_local(upcoming, sub.timezone)}"


def _local(moment: datetime, zone: str) -> str:
    try:
        return f"{moment.astimezone(zone_of(zone)):%Y-%m-%d %H:%M} {zone}"
    except BadInput:
        return f"{moment:%Y-%m-%d %H:%M} UTC"


def _last_digests(
    session: Session, subscriber_ids: Sequence[int]
) -> tuple[dict[int, str], dict[int, datetime]]:
    """Per subscriber: the period of their latest digest (any status), and when
    their latest window-closing digest was planned."""
    last_period: dict[int, str] = {}
    closed_at: dict[int, datetime] = {}
    for chunk in _chunks(subscriber_ids):
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
        for sub_id, planned_at in session.execute(
            select(Digest.subscriber_id, func.max(Digest.planned_at))
            .where(Digest.subscriber_id.in_(chunk), Digest.status.in_(WINDOW_CLOSING))
            .group_by(Digest.subscriber_id)
        ):
            closed_at[sub_id] = _aware(planned_at)
    return last_period, closed_at


def _aware(value: datetime | str) -> datetime:
    # Aggregates may bypass the UtcDateTime decorator on some backends (naive values,
    # or text on SQLite); normalise to aware UTC either way.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class _Listings:
    """Papers listed in dumps ingested in a time range, by when they were last listed."""

    dump_times: list[datetime]  # sorted ingest times of the dumps in range
    paper_last_seen: dict[int, datetime]  # paper -> latest ingest time of a dump listing it
    upvotes: dict[int, int | None]  # paper -> upvotes in that latest listing

    def has_dumps_after(self, start: datetime) -> bool:
        return bisect.bisect_right(self.dump_times, start) < len(self.dump_times)

    def papers_after(self, start: datetime) -> set[int]:
        return {pid for pid, seen in self.paper_last_seen.items() if seen > start}


def _listings(session: Session, since: datetime, now: datetime) -> _Listings:
    rows = session.execute(
        select(Dump.ingested_at, DumpPaper.paper_id, DumpPaper.upvotes)
        .join(DumpPaper, DumpPaper.dump_id == Dump.id)
        .where(Dump.ingested_at > since, Dump.ingested_at <= now)
        .order_by(Dump.ingested_at, Dump.id)
    )
    seen: dict[int, datetime] = {}
    upvotes: dict[int, int | None] = {}
    for ingested_at, paper_id, votes in rows:  # ascending: later listings overwrite
        seen[paper_id] = ingested_at
        upvotes[paper_id] = votes
    times = sorted(
        session.scalars(
            select(Dump.ingested_at).where(Dump.ingested_at > since, Dump.ingested_at <= now)
        )
    )
    return _Listings(times, seen, upvotes)


def _already_given(session: Session, subscriber_ids: Sequence[int]) -> dict[int, set[int]]:
    """Per subscriber, the papers in their sent or on-its-way digests."""
    given: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(subscriber_ids):
        rows = session.execute(
            select(Digest.subscriber_id, DigestItem.paper_id)
            .join(DigestItem, DigestItem.digest_id == Digest.id)
            .where(Digest.subscriber_id.in_(chunk), Digest.status.in_(DELIVERED_OR_ON_ITS_WAY))
        )
        for sub_id, paper_id in rows:
            given[sub_id].add(paper_id)
    return given


def _paper_texts(
    session: Session, paper_ids: Iterable[int], upvotes: dict[int, int | None]
) -> list[PaperText]:
    texts: list[PaperText] = []
    for chunk in _chunks(sorted(paper_ids)):
        for paper in session.scalars(select(Paper).where(Paper.id.in_(chunk))):
            authors = tuple(str(a) for a in paper.authors or ())
            texts.append(
                PaperText(
                    paper.id, paper.title, paper.abstract or "", authors, upvotes.get(paper.id)
                )
            )
    texts.sort(key=lambda t: t.paper_id)
    return texts


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


# --- choosing ---


def _choose(
    session: Session,
    settings: Settings,
    due: list[_Due],
    now: datetime,
    report: PlanReport,
    *,
    near_misses: bool,
) -> list[PlannedDigest]:
    """Score every due subscriber's candidates over one shared index."""
    if not due:
        return []
    listings = _listings(session, min(d.window_start for d in due) - INGEST_GRACE, now)
    given = _already_given(session, [d.subscriber_id for d in due])
    # Subscribers on the same schedule share a window: one set of papers per window
    # start, shared (not copied) by every subscriber with nothing of it already given,
    # so scoring's selection memo hashes it once and matches it by identity. (Whether
    # it is every indexed paper is told by its size, below.)
    listed: dict[datetime, frozenset[int]] = {}
    candidates: dict[int, frozenset[int]] = {}
    for d in due:
        if not listings.has_dumps_after(d.window_start) and not settings.schedule.send_empty:
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
    distinct = {id(c): c for c in candidates.values()}.values()
    union: frozenset[int] = frozenset().union(*distinct)
    texts = _paper_texts(session, union, listings.upvotes)
    index = PaperIndex(texts, settings.scoring)
    selector = Selector(index)
    report.papers_indexed = len(texts)
    titles = {t.paper_id: t.title for t in texts}

    parsed: dict[str, Any] = {}  # query text -> Node (or None if it no longer parses)
    plans: list[PlannedDigest] = []
    # a million small objects and no cycles: see digest.gcpause
    with collector_paused():
        for d in due:
            if d.subscriber_id not in candidates:
                continue
            topics: list[TopicQuery] = []
            for topic_id, text, label in d.topics:
                if text not in parsed:
                    try:
                        parsed[text] = parse(text)
                    except BadInput as exc:
                        log.warning(
                            "topic %d of %s does not parse, ignored: %s", topic_id, d.email, exc
                        )
                        parsed[text] = None
                if parsed[text] is not None:
                    topics.append(TopicQuery(topic_id, label, parsed[text]))
            allowed = candidates[d.subscriber_id]
            # Candidates already lack the papers given before, so `allowed` is the
            # whole window; when it is every indexed paper (the usual case: one
            # schedule, nothing of today's given yet) no window at all, and the
            # subscriber shares the selection of everyone with the same topics.
            picks = (
                selector.select(
                    topics,
                    max_papers=d.max_papers,
                    allowed=None if len(allowed) == len(union) else allowed,
                )
                if topics and allowed
                else []
            )
            plan = PlannedDigest(
                digest_id=None,
                subscriber_id=d.subscriber_id,
                email=d.email,
                period=d.period,
                message_id=new_message_id(settings),
                window_start=d.window_start,
                planned_at=now,
                picks=list(picks),
                status="pending" if picks or settings.schedule.send_empty else "skipped",
                topic_labels={topic_id: label for topic_id, _, label in d.topics},
                candidates=len(allowed),
            )
            if not picks:
                plan.reason = (
                    f"no new paper matched your topics (of {len(allowed)} new)"
                    if allowed
                    else "no new papers since the last digest"
                )
                if near_misses and allowed and topics:
                    plan.near_misses = _near_misses(index, topics, allowed, titles)
            plans.append(plan)
    return plans


def _near_misses(
    index: PaperIndex,
    topics: Sequence[TopicQuery],
    allowed: AbstractSet[int],
    titles: dict[int, str],
) -> list[NearMiss]:
    """The papers that came closest to some topic: highest score, then fewest missing terms."""
    best: dict[int, tuple[tuple[float, int], NearMiss]] = {}
    for topic in topics:
        for paper_id in allowed:
            why = index.explain(paper_id, topic.query)
            key = (-why.score, len(why.missing))
            if paper_id not in best or key < best[paper_id][0]:
                miss = NearMiss(
                    paper_id, titles.get(paper_id, ""), why.score, topic.label, why.reason
                )
                best[paper_id] = (key, miss)
    ranked = sorted(best.values(), key=lambda entry: (entry[0], entry[1].paper_id))
    return [miss for _, miss in ranked[:NEAR_MISSES]]


# --- writing ---


def _record_batch(session: Session, batch: Sequence[PlannedDigest]) -> list[bool]:
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
            items = [row for plan, i in zip(batch, ids, strict=True) for row in _item_rows(plan, i)]
            if items:
                session.execute(insert(DigestItem), items)
    except IntegrityError:
        return [_record(session, plan) for plan in batch]
    for plan, digest_id in zip(batch, ids, strict=True):
        plan.digest_id = digest_id
    return [True] * len(batch)


def _digest_row(plan: PlannedDigest) -> dict[str, Any]:
    return {
        "subscriber_id": plan.subscriber_id,
        "period": plan.period,
        "status": plan.status,
        "message_id": plan.message_id,
        "planned_at": plan.planned_at,
        "window_start": plan.window_start,
    }


def _item_rows(plan: PlannedDigest, digest_id: int) -> list[dict[str, Any]]:
    return [
        {
            "digest_id": digest_id,
            "paper_id": pick.paper_id,
            "rank": pick.rank,
            "score": pick.score,
            "topic_id": pick.topic_id,
            "topic_label": plan.topic_labels.get(pick.topic_id, ""),
            "explanation": pick.explanation(),
        }
        for pick in plan.picks
    ]


def _record(session: Session, plan: PlannedDigest) -> bool:
    """Write one digest and its items under a savepoint; False if the period is taken.

    The caller commits (in batches: one commit per subscriber costs more than the
    inserts). A period taken by a concurrent planner rolls back just this one.
    """
    try:
        with session.begin_nested():
            digest_id = session.execute(
                insert(Digest).values(**_digest_row(plan)).returning(Digest.id)
            ).scalar_one()
            if plan.picks:
                session.execute(insert(DigestItem), _item_rows(plan, digest_id))
    except IntegrityError:
        plan.digest_id = None
        return False
    plan.digest_id = digest_id
    return True
