"""The outbox: claim due digests, build their messages, send them, record each outcome.

Read top to bottom, `deliver_due` is the whole flow:

1. **claim** a batch of due digests in one statement — `pending`, `retry`
   whose `next_attempt_at` has come, or `sending` whose lease expired (its
   worker died). The statement is `UPDATE … WHERE id IN (SELECT … FOR UPDATE
   SKIP LOCKED LIMIT n) RETURNING id`, so several workers on one PostgreSQL
   never claim the same row; on SQLite the same statement runs under the
   database's single writer lock (SQLAlchemy leaves SKIP LOCKED out there).
2. **build** each claimed digest into message bytes with the `build` function
   the caller passes in (compose + render in production), synchronously.
   A digest whose subscriber left or bounced meanwhile is cancelled instead.
3. **send** through the `Mailer` in one `asyncio.run` for the whole run (see
   `digest.mail.iter_outcomes`, the one sync/async crossing); the next batch
   is claimed and built while the current one is going out, and added to the
   same `MessageFeed`, so connections stay busy across batches, and
4. **record** each outcome as it arrives, in short transactions: `sent`,
   `retry` with exponential back-off (until `max_retry_age_hours` after
   planning, then `failed`) or `failed`; permanent failures in a row mark
   the subscriber `bounced`.

Guarantees: a row recorded `sent` is never claimed again; the Message-ID is
the one chosen at planning, so a message re-sent after a lost reply or a crash
is the same message to the receiving side; only the messages in flight (handed
to the server, outcome not yet recorded) can be sent twice. Claimed rows not
yet sent when a worker dies are sent once, by whoever claims them after their
lease.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from digest.config.settings import DeliverySettings, Settings
from digest.errors import BadInput, DeliveryError
from digest.mail import Mailer, MessageFeed, Outcome, OutgoingMessage, iter_outcomes
from digest.store.database import Store
from digest.store.schema import DIGEST_STATUSES, Digest, Subscriber


class ClaimedDigest(NamedTuple):
    """A claimed digest as the outbox hands it to `Build`: its envelope, not its contents.

    Read with one plain SELECT per batch. Loading `Digest` and `Subscriber`
    objects instead cost 60 µs a message in the ORM's bookkeeping, the largest
    part of the outbox's own CPU; the production build loads what it renders by
    id anyway (`digest.compose.message_builder`).
    """

    id: int
    period: str
    message_id: str
    planned_at: datetime
    email: str
    subscriber_status: str


Build = Callable[[Session, ClaimedDigest], bytes]
"""Turns a claimed digest into the exact message bytes (CRLF) to send."""

GONE_STATUSES = ("unsubscribed", "bounced")

RECORD_LINGER_SECONDS = 0.05
"""How long outcomes gather before they are recorded together in one transaction.

Recording each outcome at once meant ~4 outcomes per commit at 1,000 messages/s,
and the commits' cost (and their turns at the GIL against the sending thread)
halved the rate. A commit costs about as much as recording 35 rows, so 50 ms
(about 75 outcomes at 1,500 messages/s) keeps recording near 30 µs a message.
A crash can re-send the messages whose outcomes were not yet recorded: the
last 50 ms, and those that arrived while the next batch was being built.
"""


def default_worker() -> str:
    """A name for this process in `digests.claimed_by`: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryReport:
    """What one delivery run did, by outcome."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    cancelled: int = 0

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_json(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "retry": self.retry,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }


@dataclass
class _Clock:
    """`now` as given, advanced by the real time elapsed since the run began.

    Lets a run started with `--now` in the past record sensible relative times
    (sent_at after planned_at, leases that expire) without reading the wall clock.
    """

    start: datetime
    _t0: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)


def deliver_due(
    store: Store,
    settings: Settings,
    mailer: Mailer,
    build: Build,
    *,
    now: datetime,
    limit: int | None = None,
    worker: str | None = None,
    email: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Deliver every due digest (at most `limit`), batch by batch; returns the counts.

    `on_outcome` is called after each recorded outcome (a progress bar).
    `should_stop` (the daemon shutting down) is asked before each claim and
    while sending: once it says yes, nothing more is claimed, messages in
    flight finish, and the claimed but unsent rest is put back as it was, due
    at once.
    Raises DeliveryError only when the mail system cannot be used at all
    (see `Mailer`); the claimed but unsent rest is then put back, due at once.
    """
    report = DeliveryReport()
    clock = _Clock(now)
    worker = worker or default_worker()
    delivery = settings.delivery
    remaining = limit

    def next_batch() -> list[OutgoingMessage]:
        """Claim and build the next batch; [] when nothing more is due (or wanted)."""
        nonlocal remaining
        while remaining is None or remaining > 0:
            if should_stop is not None and should_stop():
                break
            size = delivery.batch_size if remaining is None else min(delivery.batch_size, remaining)
            with store.transaction() as session:
                ids = claim(
                    session,
                    now=clock(),
                    limit=size,
                    lease_seconds=delivery.lease_seconds,
                    worker=worker,
                    email=email,
                )
            if not ids:
                break
            if remaining is not None:
                remaining -= len(ids)
            try:
                messages = _build_batch(store, settings, build, ids, report)
            except BaseException:  # the database failed us: nothing of this batch was sent
                with store.transaction() as session:
                    release_claims(session, worker=worker, ids=ids)
                raise
            if messages:  # else every one was cancelled or broken: claim on
                return messages
        return []

    _send_stream(
        store, delivery, mailer, next_batch, worker, clock, report, on_outcome, should_stop
    )
    return report


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows a worker may take: new, retry whose time has come, or abandoned by a dead worker."""
    return or_(
        Digest.status == "pending",
        and_(Digest.status == "retry", Digest.next_attempt_at <= now),
        and_(Digest.status == "sending", Digest.lease_until < now),
    )


def _of_subscriber(email: str) -> ColumnElement[bool]:
    return Digest.subscriber_id.in_(select(Subscriber.id).where(Subscriber.email == email))


def due_count(session: Session, *, now: datetime, email: str | None = None) -> int:
    """How many digests `deliver_due` would take now (the total for a progress bar)."""
    query = select(func.count()).select_from(Digest).where(_due(now))
    if email is not None:
        query = query.where(_of_subscriber(email))
    return session.scalar(query) or 0


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int,
    lease_seconds: float,
    worker: str,
    email: str | None = None,
) -> list[int]:
    """Reserve up to `limit` due digests for `worker`, in one statement; returns their ids."""
    chosen = select(Digest.id).where(_due(now))
    if email is not None:
        chosen = chosen.where(_of_subscriber(email))
    chosen = chosen.order_by(Digest.id).limit(limit).with_for_update(skip_locked=True)
    statement = (
        update(Digest)
        .where(Digest.id.in_(chosen.scalar_subquery()))
        .values(
            status="sending",
            lease_until=now + timedelta(seconds=lease_seconds),
            claimed_by=worker,
            attempts=Digest.attempts + 1,
        )
        .returning(Digest.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(statement))


def _build_batch(
    store: Store,
    settings: Settings,
    build: Build,
    ids: Sequence[int],
    report: DeliveryReport,
) -> list[OutgoingMessage]:
    """Build messages for the claimed rows; cancel the ones nobody should get."""
    messages: list[OutgoingMessage] = []
    cancelled: dict[int, str] = {}
    broken: dict[int, str] = {}
    with store.sessions() as session:  # read only: rendering holds no write lock
        for row in load_claimed(session, ids):
            if row.subscriber_status in GONE_STATUSES:
                cancelled[row.id] = f"subscriber {row.subscriber_status}"
                continue
            try:
                data = build(session, row)
            except Exception as exc:  # one broken digest must not stop everyone else's
                first_line = (str(exc).splitlines() or [""])[0]
                broken[row.id] = f"could not build the message: {type(exc).__name__}: {first_line}"
                session.rollback()  # a failed query must not poison the next builds
                continue
            messages.append(
                OutgoingMessage(
                    digest_id=row.id,
                    sender=settings.sender.address,
                    recipient=row.email,
                    message_id=row.message_id,
                    data=data,
                )
            )
    if cancelled or broken:
        with store.transaction() as session:
            for digest_id, reason in cancelled.items():
                _finish(session, digest_id, "cancelled", reason)
                report.count("cancelled")
            for digest_id, reason in broken.items():
                _finish(session, digest_id, "failed", reason)
                report.count("failed")
    return messages


def load_claimed(session: Session, ids: Sequence[int]) -> list[ClaimedDigest]:
    """The digests `ids` with their subscribers' addresses and standing, in id order."""
    rows = session.execute(
        select(
            Digest.id,
            Digest.period,
            Digest.message_id,
            Digest.planned_at,
            Subscriber.email,
            Subscriber.status,
        )
        .join(Digest.subscriber)
        .where(Digest.id.in_(ids))
        .order_by(Digest.id)
    )
    return [ClaimedDigest._make(row) for row in rows]


def _finish(session: Session, digest_id: int, status: str, reason: str) -> None:
    session.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == "sending")
        .values(status=status, last_error=reason, lease_until=None, next_attempt_at=None)
    )


def _send_stream(
    store: Store,
    delivery: DeliverySettings,
    mailer: Mailer,
    next_batch: Callable[[], list[OutgoingMessage]],
    worker: str,
    clock: _Clock,
    report: DeliveryReport,
    on_outcome: Callable[[Outcome], None] | None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Send batch after batch through one mailer session, recording outcomes as they
    arrive (several per transaction when they arrive together, so a fast server
    does not wait on commits).

    The next batch is claimed and built while the current one is still going
    out, once fewer than half a batch wait in the feed: the connections stay
    open and busy, and rendering overlaps sending. At most a batch and a half
    is claimed ahead of what has been sent.

    Messages the mailer never reported (sending was stopped) are put back at
    once rather than left `sending` until their lease runs out.

    Sending can outlast a lease (a rate-limited relay: 500 messages at
    `max_per_second = 0.5` take over 16 minutes); another worker would then
    take the unsent rest over and send it a second time. So while outcomes
    come in, the lease of the rows still waiting is renewed every third of
    its length.
    """
    first = next_batch()
    if not first:
        return
    feed = MessageFeed(first)
    unreported = {m.digest_id for m in first}
    low_water = max(1, delivery.batch_size // 2)
    lease = timedelta(seconds=delivery.lease_seconds)
    renewed = clock()
    refill_failure: Exception | None = None

    def refill() -> None:
        """Add the next batch, or close the feed when there is none (or it failed).

        Runs between recorded groups, so a failure here must not leave the
        messages in flight unrecorded: the feed is closed, what was handed to
        the server is still recorded, and the failure is raised afterwards.
        """
        nonlocal refill_failure
        try:
            more = next_batch()
        except Exception as exc:
            refill_failure = exc
            more = []
        unreported.update(m.digest_id for m in more)
        # A stop (or the mailer's end) may have come, and closed the feed, while
        # this batch was built: it is not sent, and put back below as unreported.
        stopping = should_stop is not None and should_stop()
        if stopping or not more or not feed.add(more):
            feed.close()

    try:
        # Closed at once if recording fails, which stops sending (see iter_outcomes).
        with closing(
            iter_outcomes(mailer, feed, linger=RECORD_LINGER_SECONDS, stop=should_stop)
        ) as groups:
            for outcomes in groups:
                at = clock()
                with store.transaction() as session:
                    statuses = _record(session, delivery, outcomes, worker, at)
                    if at - renewed >= lease / 3:
                        waiting = unreported - {o.digest_id for o in outcomes}
                        _renew(session, sorted(waiting), worker, at + lease)
                        renewed = at
                for outcome, status in zip(outcomes, statuses, strict=True):
                    unreported.discard(outcome.digest_id)
                    report.count(status)
                    if on_outcome is not None:
                        on_outcome(outcome)
                if not feed.closed and feed.waiting < low_water:
                    refill()
    except DeliveryError as exc:
        with store.transaction() as session:
            _release(session, sorted(unreported), str(exc), clock.start)
        raise
    if unreported:
        with store.transaction() as session:
            release_claims(session, worker=worker, ids=sorted(unreported))
    if refill_failure is not None:
        raise refill_failure


def _renew(session: Session, ids: Sequence[int], worker: str, until: datetime) -> None:
    """Extend the lease of rows this worker still holds."""
    if ids:
        session.execute(
            update(Digest)
            .where(Digest.id.in_(ids), Digest.status == "sending", Digest.claimed_by == worker)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )


def _record(
    session: Session,
    delivery: DeliverySettings,
    outcomes: Sequence[Outcome],
    worker: str,
    at: datetime,
) -> list[str]:
    """Write outcomes; returns the status each was counted as.

    `sent` is the common case and is written for the whole group at once (one
    executemany); the rarer failures go row by row through the ORM. A `sent`
    resets its subscriber's count of permanent failures, read now rather than
    when the message was built: the next batch is built before this one's
    outcomes are in.
    """
    sent = [o for o in outcomes if o.status == "sent"]
    if sent:
        session.execute(
            update(Subscriber)
            .where(
                Subscriber.consecutive_failures > 0,
                Subscriber.id.in_(
                    select(Digest.subscriber_id).where(Digest.id.in_([o.digest_id for o in sent]))
                ),
            )
            .values(consecutive_failures=0)
            .execution_options(synchronize_session=False)
        )
    if sent:
        # Whoever claimed it last, it went out: record it unless already recorded.
        table = Digest.__table__
        assert isinstance(table, Table)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("digest_id"), table.c.status != "sent")
            .values(
                status="sent",
                sent_at=at,
                server_reply=bindparam("reply"),
                last_error=None,
                lease_until=None,
                next_attempt_at=None,
            ),
            [{"digest_id": o.digest_id, "reply": o.reply} for o in sent],
        )
    return [
        "sent" if o.status == "sent" else _record_failure(session, delivery, o, worker, at)
        for o in outcomes
    ]


def _record_failure(
    session: Session, delivery: DeliverySettings, outcome: Outcome, worker: str, at: datetime
) -> str:
    digest = session.get(Digest, outcome.digest_id, with_for_update=True)
    if digest is None or digest.status != "sending" or digest.claimed_by != worker:
        return outcome.status  # gone, or another worker took it over after our lease ran out
    subscriber = digest.subscriber
    digest.lease_until = None
    digest.last_error = outcome.reply
    if outcome.status == "retry":
        delay = timedelta(minutes=delivery.retry_base_minutes * 2 ** max(0, digest.attempts - 1))
        give_up_at = digest.planned_at + timedelta(hours=delivery.max_retry_age_hours)
        if at + delay <= give_up_at:
            digest.status = "retry"
            digest.next_attempt_at = at + delay
            return "retry"
        digest.status = "failed"
        digest.next_attempt_at = None
        digest.last_error = (
            f"gave up after {digest.attempts} attempts over "
            f"{delivery.max_retry_age_hours:g} h: {outcome.reply}"
        )
        return "failed"
    digest.status = "failed"
    digest.next_attempt_at = None
    digest.server_reply = outcome.reply
    subscriber.consecutive_failures += 1
    if (
        subscriber.consecutive_failures >= delivery.bounce_threshold
        and subscriber.status not in GONE_STATUSES
    ):
        subscriber.status = "bounced"
    return "failed"


def _release(session: Session, ids: Sequence[int], reason: str, at: datetime) -> None:
    """Put claimed rows back, due at once, as if never claimed (the mailer was unusable)."""
    if not ids:
        return
    session.execute(
        update(Digest)
        .where(Digest.id.in_(ids), Digest.status == "sending")
        .values(
            status="retry",
            next_attempt_at=at,
            lease_until=None,
            attempts=Digest.attempts - 1,
            last_error=reason,
        )
    )


def release_claims(session: Session, *, worker: str, ids: Sequence[int] | None = None) -> int:
    """Give back digests `worker` claimed but never tried to send (shutdown, stopped batch).

    Undoes the claim: the attempt it counted is taken back, and the row is due
    at once in the state it had — `pending` if it was never tried, else
    `retry`. Only rows still `sending` under this worker's name are touched,
    so an outcome recorded meanwhile (or another worker's claim) wins.
    Returns how many rows were given back.
    """
    condition = and_(Digest.status == "sending", Digest.claimed_by == worker)
    if ids is not None:
        if not ids:
            return 0
        condition = and_(condition, Digest.id.in_(ids))
    tried_before = Digest.attempts > 1
    result = session.execute(
        update(Digest)
        .where(condition)
        .values(
            status=case((tried_before, "retry"), else_="pending"),
            next_attempt_at=case(
                (tried_before, func.coalesce(Digest.next_attempt_at, Digest.planned_at)),
                else_=None,
            ),
            attempts=Digest.attempts - 1,
            lease_until=None,
            claimed_by=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- the outbox as operators see it (digest outbox / digest retry) ---


@dataclass(frozen=True)
class OutboxRow:
    """One digest's delivery state, for listing."""

    digest_id: int
    email: str
    period: str
    status: str
    attempts: int
    planned_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    message_id: str

    def as_json(self) -> dict[str, object]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.digest_id,
            "email": self.email,
            "period": self.period,
            "status": self.status,
            "attempts": self.attempts,
            "planned_at": iso(self.planned_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "sent_at": iso(self.sent_at),
            "last_error": self.last_error,
            "message_id": self.message_id,
        }


def outbox(
    session: Session,
    *,
    status: str | None = None,
    email: str | None = None,
    limit: int | None = None,
) -> list[OutboxRow]:
    """Digests, newest first, optionally only one status or one subscriber."""
    if status is not None and status not in DIGEST_STATUSES:
        raise BadInput(f"--status: unknown status {status!r} (one of {', '.join(DIGEST_STATUSES)})")
    query = (
        select(Digest, Subscriber.email)
        .join(Subscriber)
        .order_by(Digest.planned_at.desc(), Digest.id.desc())
    )
    if status is not None:
        query = query.where(Digest.status == status)
    if email is not None:
        query = query.where(Subscriber.email == email)
    if limit is not None:
        query = query.limit(limit)
    return [
        OutboxRow(
            digest_id=d.id,
            email=address,
            period=d.period,
            status=d.status,
            attempts=d.attempts,
            planned_at=d.planned_at,
            next_attempt_at=d.next_attempt_at,
            sent_at=d.sent_at,
            last_error=d.last_error,
            message_id=d.message_id,
        )
        for d, address in session.execute(query)
    ]


def status_counts(session: Session, *, email: str | None = None) -> dict[str, int]:
    """How many digests are in each status (every status listed, zeros included)."""
    query = select(Digest.status, func.count()).group_by(Digest.status)
    if email is not None:
        query = query.join(Subscriber).where(Subscriber.email == email)
    counts = dict.fromkeys(DIGEST_STATUSES, 0)
    counts.update({status: count for status, count in session.execute(query).tuples()})
    return counts


def requeue(
    session: Session, *, now: datetime, include_failed: bool = False, email: str | None = None
) -> int:
    """Make waiting retries due now; with `include_failed`, give failed digests another try.

    Requeueing a failed digest of a bounced subscriber makes them active again
    (the operator says the address works now). Digests of unsubscribed people
    are left alone. Returns how many digests were requeued.
    """
    statuses = ("retry", "failed") if include_failed else ("retry",)
    query = (
        select(Digest)
        .join(Subscriber)
        .where(Digest.status.in_(statuses), Subscriber.status != "unsubscribed")
        .options(selectinload(Digest.subscriber))
    )
    if email is not None:
        query = query.where(Subscriber.email == email)
    rows = session.scalars(query).all()
    for digest in rows:
        digest.status = "retry"
        digest.next_attempt_at = now
        if include_failed and digest.subscriber.status == "bounced":
            digest.subscriber.status = "active"
            digest.subscriber.consecutive_failures = 0
    return len(rows)
