"""The delivery loop: claim due digests, build their messages, send them, record each outcome.

Read top to bottom, `_Delivery` is the whole flow:

1. **claim** a batch of due digests in one statement — `pending`, `retry`
   whose `next_attempt_at` has come, or `sending` whose lease expired (its
   worker died); see `digest.outbox.claims`.
2. **build** each claimed digest into message bytes with the `build` function
   the caller passes in (`digest.outbox.build.message_builder` in
   production), synchronously. A digest whose subscriber left or bounced
   meanwhile is cancelled instead.
3. **send** through the `Mailer` in one `asyncio.run` for the whole run (see
   `digest.mail.iter_outcomes`, the one sync/async crossing); the next batch
   is claimed and built while the current one is going out, and added to the
   same `MessageFeed`, so connections stay busy across batches, and
4. **record** each outcome as it arrives, in short transactions
   (`digest.outbox.record`).

Guarantees: a row recorded `sent` is never claimed again; the Message-ID is
the one chosen at planning, so a message re-sent after a lost reply or a crash
is the same message to the receiving side; only the messages handed to the
server whose outcome is not yet recorded can be sent twice, and the feed's
window keeps those to at most `crash_bound(concurrency)`. Claimed rows not
yet sent when a worker dies are sent once, by whoever claims them after their
lease.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Unpack

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.errors import DeliveryError
from digest.mail import Mailer, MessageFeed, Outcome, OutgoingMessage, iter_outcomes
from digest.outbox.claims import (
    claim,
    default_worker,
    load_claimed,
    release_claims,
    release_untried,
    renew_leases,
)
from digest.outbox.record import GONE_STATUSES, record_outcomes, record_unsent
from digest.outbox.types import Build, DeliveryReport, DeliveryRun, PreparesBatch, RunOptions
from digest.store.database import Store

RECORD_LINGER_SECONDS = 0.02
"""How long outcomes gather before they are recorded together in one transaction.

A commit costs far more than one more row written in it, and every commit
takes its turns at the GIL against the sending thread: committing each
outcome on its own would make a fast server wait on commits. Outcomes that
arrive while one group is being committed form the next group anyway; the
linger only keeps a trickle from costing a commit each.
"""

UNRECORDED_MAX = 64
"""How many outcomes may be known but not yet committed before sending waits.

With `delivery.concurrency` messages on the wire, the feed hands out a new
message only while fewer than `concurrency + UNRECORDED_MAX` are out (taken
and not yet recorded; see `MessageFeed`'s window). After a crash at any
moment, then, at most that many messages can have reached the server without
their outcome on disk: the bound on what a rerun sends twice. Large enough
that a group being committed never stalls a fast server.
"""


PLANNER_POLL_SECONDS = 0.1
"""How often a run with nothing to claim looks again while another process plans."""


def crash_bound(concurrency: int) -> int:
    """The most messages a crash of one delivering process can cause to be sent twice."""
    return max(1, concurrency) + UNRECORDED_MAX


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
    **options: Unpack[RunOptions],
) -> DeliveryReport:
    """`deliver` with the run's parts as arguments (see `DeliveryRun` for the options)."""
    return deliver(DeliveryRun(store, settings, mailer, build, now, **options))


def deliver(run: DeliveryRun) -> DeliveryReport:
    """Deliver every due digest (at most `run.limit`), batch by batch; returns the counts.

    Once `run.should_stop` says yes, nothing more is claimed, messages in
    flight finish, and the claimed but unsent rest is put back as it was, due
    at once. Raises DeliveryError only when the mail system cannot be used at
    all (see `Mailer`); the claimed but unsent rest is then put back, due at once.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    try:
        return _Delivery(run).deliver()
    finally:
        sys.setswitchinterval(previous)


SWITCH_INTERVAL = 0.0005
"""How long a thread of a delivery run may keep the GIL while another wants it (s).

The recording thread holds the database's write lock (SQLite's is one per
file) from its first statement to its commit; with Python's default of 5 ms,
it waited for the GIL behind the thread rendering the next batch, in turns of
5 ms, while still holding that lock, so a second sender beside it waited
too, and both waited for their outcomes to be recorded before sending more.
Shorter turns cost some switching and keep the lock short.
"""


class _Delivery:
    """One run of the outbox: claim → build → send → record.

    What the run keeps between the steps: its clock and report, how many
    digests it may still claim (`remaining`, None for all that are due), and
    the digests handed to the feed whose outcome is not recorded yet
    (`unreported`), which are put back if sending ends before they go out.
    """

    def __init__(self, run: DeliveryRun) -> None:
        self.run = run
        self.delivery = run.settings.delivery
        self.worker = run.worker or default_worker()
        self.clock = _Clock(run.now)
        self.lease = timedelta(seconds=self.delivery.lease_seconds)
        self.report = DeliveryReport()
        self.remaining = run.limit
        self.unreported: set[int] = set()
        self.leases_renewed_at = run.now
        # The builder thread and the recording (calling) thread both count
        # outcomes and add to / take from `unreported`.
        self.lock = threading.Lock()

    def deliver(self) -> DeliveryReport:
        first = self.next_batch()
        if first:
            feed = MessageFeed(first, window=crash_bound(self.delivery.concurrency))
            if self.run.on_feed is not None:
                self.run.on_feed(feed)
            self.send_and_record(feed)
        return self.report

    def count(self, status: str) -> None:
        with self.lock:
            self.report.count(status)

    # --- claim → build ---

    def next_batch(self, feed: MessageFeed | None = None) -> list[OutgoingMessage]:
        """Claim and build the next batch for `feed` (None: the first); [] when nothing
        more is due (or wanted), or sending has ended meanwhile."""
        while (self.remaining is None or self.remaining > 0) and not self.run.stopping():
            if feed is not None and feed.closed:  # the relay or recording failed meanwhile
                break
            # Asked before claiming: a pass that ends after this question has
            # committed its last batch before the claim below reads the queue.
            planning = self.run.planning_elsewhere is not None and self.run.planning_elsewhere()
            ids = self.claim_batch()
            if not ids and planning:
                time.sleep(PLANNER_POLL_SECONDS)
                continue
            if not ids:
                break
            messages = self.build_batch(ids)
            if messages:  # else every one was cancelled or broken: claim on
                with self.lock:
                    self.unreported.update(m.digest_id for m in messages)
                return messages
        return []

    def claim_batch(self) -> list[int]:
        size = self.delivery.batch_size
        if self.remaining is not None:
            size = min(size, self.remaining)
        with self.run.store.transaction() as session:
            ids = claim(
                session,
                now=self.clock(),
                limit=size,
                lease_seconds=self.delivery.lease_seconds,
                worker=self.worker,
                email=self.run.email,
            )
        if self.remaining is not None:
            self.remaining -= len(ids)
        return ids

    def build_batch(self, ids: list[int]) -> list[OutgoingMessage]:
        """Messages for the claimed rows; the ones nobody should get are recorded unsent."""
        try:
            return self._build_messages(ids)
        except BaseException:  # the database failed us: nothing of this batch was sent
            with self.run.store.transaction() as session:
                release_claims(session, worker=self.worker, ids=ids)
            raise

    def _build_messages(self, ids: list[int]) -> list[OutgoingMessage]:
        messages: list[OutgoingMessage] = []
        cancelled: dict[int, str] = {}
        broken: dict[int, str] = {}
        with self.run.store.sessions() as session:  # read only: rendering holds no write lock
            rows = load_claimed(session, ids)
            build: object = self.run.build  # any callable; some also prepare a batch
            if isinstance(build, PreparesBatch):
                build.prepare(
                    session, [row for row in rows if row.subscriber_status not in GONE_STATUSES]
                )
            for row in rows:
                if row.subscriber_status in GONE_STATUSES:
                    cancelled[row.id] = f"subscriber {row.subscriber_status}"
                    continue
                try:
                    data = self.run.build(session, row)
                except Exception as exc:  # one broken digest must not stop everyone else's
                    first_line = (str(exc).splitlines() or [""])[0]
                    why = f"could not build the message: {type(exc).__name__}: {first_line}"
                    broken[row.id] = why
                    session.rollback()  # a failed query must not poison the next builds
                    continue
                messages.append(
                    OutgoingMessage(
                        digest_id=row.id,
                        sender=self.run.settings.sender.address,
                        recipient=row.email,
                        message_id=row.message_id,
                        data=data,
                    )
                )
        if cancelled or broken:
            with self.run.store.transaction() as session:
                for digest_id, reason in cancelled.items():
                    record_unsent(session, digest_id, "cancelled", reason)
                for digest_id, reason in broken.items():
                    record_unsent(session, digest_id, "failed", reason)
            for _ in cancelled:
                self.count("cancelled")
            for _ in broken:
                self.count("failed")
        return messages

    # --- send → record ---

    def send_and_record(self, feed: MessageFeed) -> None:
        """Send batch after batch through one mailer session, recording outcomes as they
        arrive (several per transaction when they arrive together, so a fast server
        does not wait on commits).

        The next batch is claimed and built on a helper thread (`_Refill`) while
        the current one is still going out, once fewer than half a batch wait
        in the feed: the connections stay open and busy, rendering overlaps
        sending, and this thread goes on recording outcomes the moment they
        arrive — a crash while a batch is being built must not cost the
        outcomes that came in meanwhile. At most a batch and a half is claimed
        ahead of what has been sent.

        Messages the mailer never reported (sending was stopped) are put back at
        once rather than left `sending` until their lease runs out.
        """
        low_water = max(1, self.delivery.batch_size // 2)
        self.leases_renewed_at = self.clock()
        refill = _Refill(self, feed, low_water)
        try:
            # Closed at once if recording fails, which stops sending (see iter_outcomes).
            with closing(
                iter_outcomes(
                    self.run.mailer, feed, linger=RECORD_LINGER_SECONDS, stop=self.run.should_stop
                )
            ) as groups:
                for outcomes in groups:
                    self.record(outcomes)
                    feed.settle(outcome.digest_id for outcome in outcomes)
                    if not feed.closed and feed.waiting < low_water:
                        refill.start()  # a no-op but for a flag while a build runs
        except DeliveryError as exc:
            refill.join()
            with self.run.store.transaction() as session:
                release_untried(session, sorted(self.unreported), str(exc), self.clock.start)
            raise
        except BaseException:
            feed.withdraw()  # recording failed: a batch being built must not go out
            refill.join()
            raise
        refill.join()  # its batch, if the feed closed meanwhile, is in `unreported`
        if self.unreported:
            with self.run.store.transaction() as session:
                release_claims(session, worker=self.worker, ids=sorted(self.unreported))
        if refill.failure is not None:
            raise refill.failure

    def refill(self, feed: MessageFeed) -> Exception | None:
        """Add the next batch to the feed, or close it when there is none (or it failed).

        Runs on the refill thread while outcomes are being recorded, so a failure
        here must not leave the messages in flight unrecorded: the feed is
        closed, what was handed to the server is still recorded, and the
        failure is returned, to be raised once sending is over.
        """
        failure: Exception | None = None
        try:
            more = self.next_batch(feed)
        except Exception as exc:
            failure, more = exc, []
        # A stop (or the mailer's end) may have come, and closed the feed, while
        # this batch was built: it is not sent, and put back as unreported.
        if self.run.stopping() or not more or not feed.add(more):
            feed.close()
        return failure

    def record(self, outcomes: list[Outcome]) -> None:
        """Record a group of outcomes in one transaction; count them and pass them on."""
        at = self.clock()
        with self.run.store.transaction() as session:
            statuses = record_outcomes(session, self.delivery, outcomes, self.worker, at)
            self.keep_leases(session, outcomes, at)
        for outcome, status in zip(outcomes, statuses, strict=True):
            with self.lock:
                self.unreported.discard(outcome.digest_id)
                self.report.count(status)
            if self.run.on_outcome is not None:
                self.run.on_outcome(outcome)

    def keep_leases(self, session: Session, outcomes: list[Outcome], at: datetime) -> None:
        """Renew the lease of the rows still waiting, every third of its length.

        Sending can outlast a lease (a rate-limited relay: 500 messages at
        `max_per_second = 0.5` take over 16 minutes); another worker would then
        take the unsent rest over and send it a second time.
        """
        if at - self.leases_renewed_at >= self.lease / 3:
            with self.lock:
                waiting = self.unreported - {o.digest_id for o in outcomes}
            renew_leases(session, sorted(waiting), self.worker, at + self.lease)
            self.leases_renewed_at = at


class _Refill:
    """The next batch, claimed and built on a thread of its own while outcomes are recorded.

    At most one build runs at a time. `start` is asked after every recorded
    group; it only sets a flag when a build is under way, and the thread looks
    at the flag before it ends (both under one lock), so a request that comes
    while the thread is finishing is never lost: otherwise a batch sent in full
    before its thread had ended would leave nobody to build the next, and the
    run would wait forever. The thread adds its batch to the feed itself (or
    closes the feed when nothing more is due), so sending never waits for the
    recording thread; whatever ends it, the feed is closed if it fails.
    """

    def __init__(self, delivery: _Delivery, feed: MessageFeed, low_water: int) -> None:
        self.delivery = delivery
        self.feed = feed
        self.low_water = low_water
        self.lock = threading.Lock()
        self.wanted = False
        self.running = False
        self.thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def start(self) -> None:
        with self.lock:
            if self.failure is not None:
                return
            self.wanted = True
            if self.running:
                return
            self.running = True
        self.thread = threading.Thread(target=self._run, name="digest-build", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def _run(self) -> None:
        try:
            while self._still_wanted():  # which clears `running` when it says no
                failure = self.delivery.refill(self.feed)
                if failure is not None:  # the feed is closed: no more builds
                    self._failed(failure)
                    return
        except BaseException as exc:  # not an Exception (refill catches those): stop the run
            self.feed.close()
            self._failed(exc)

    def _failed(self, failure: BaseException) -> None:
        with self.lock:
            self.failure = failure
            self.running = False

    def _still_wanted(self) -> bool:
        """Take the request, if there is one and the feed still wants a batch."""
        with self.lock:
            wanted, self.wanted = self.wanted, False
            if wanted and not self.feed.closed and self.feed.waiting < self.low_water:
                return True
            self.running = False  # under the lock: a later `start` starts a new thread
            return False
