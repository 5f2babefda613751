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
is the same message to the receiving side; only the messages in flight (handed
to the server, outcome not yet recorded) can be sent twice. Claimed rows not
yet sent when a worker dies are sent once, by whoever claims them after their
lease.
"""

from __future__ import annotations

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

RECORD_LINGER_SECONDS = 0.05
"""How long outcomes gather before they are recorded together in one transaction.

A commit costs far more than one more row written in it, and every commit
takes its turns at the GIL against the sending thread: committing each
outcome on its own would make a fast server wait on commits. Gathering them
for a moment spreads each commit over many outcomes. The price is a recording
window: a crash can re-send the messages whose outcomes were not yet
recorded — those of the last `RECORD_LINGER_SECONDS`, and those that arrived
while the next batch was being built.
"""


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
    return _Delivery(run).deliver()


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

    def deliver(self) -> DeliveryReport:
        first = self.next_batch()
        if first:
            self.send_and_record(MessageFeed(first))
        return self.report

    # --- claim → build ---

    def next_batch(self) -> list[OutgoingMessage]:
        """Claim and build the next batch; [] when nothing more is due (or wanted)."""
        while (self.remaining is None or self.remaining > 0) and not self.run.stopping():
            ids = self.claim_batch()
            if not ids:
                break
            messages = self.build_batch(ids)
            if messages:  # else every one was cancelled or broken: claim on
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
                    self.report.count("cancelled")
                for digest_id, reason in broken.items():
                    record_unsent(session, digest_id, "failed", reason)
                    self.report.count("failed")
        return messages

    # --- send → record ---

    def send_and_record(self, feed: MessageFeed) -> None:
        """Send batch after batch through one mailer session, recording outcomes as they
        arrive (several per transaction when they arrive together, so a fast server
        does not wait on commits).

        The next batch is claimed and built while the current one is still going
        out, once fewer than half a batch wait in the feed: the connections stay
        open and busy, and rendering overlaps sending. At most a batch and a half
        is claimed ahead of what has been sent.

        Messages the mailer never reported (sending was stopped) are put back at
        once rather than left `sending` until their lease runs out.
        """
        low_water = max(1, self.delivery.batch_size // 2)
        self.leases_renewed_at = self.clock()
        refill_failure: Exception | None = None
        try:
            # Closed at once if recording fails, which stops sending (see iter_outcomes).
            with closing(
                iter_outcomes(
                    self.run.mailer, feed, linger=RECORD_LINGER_SECONDS, stop=self.run.should_stop
                )
            ) as groups:
                for outcomes in groups:
                    self.record(outcomes)
                    if not feed.closed and feed.waiting < low_water:
                        # a failure closes the feed, so no later refill overwrites it
                        refill_failure = self.refill(feed)
        except DeliveryError as exc:
            with self.run.store.transaction() as session:
                release_untried(session, sorted(self.unreported), str(exc), self.clock.start)
            raise
        if self.unreported:
            with self.run.store.transaction() as session:
                release_claims(session, worker=self.worker, ids=sorted(self.unreported))
        if refill_failure is not None:
            raise refill_failure

    def refill(self, feed: MessageFeed) -> Exception | None:
        """Add the next batch to the feed, or close it when there is none (or it failed).

        Runs between recorded groups, so a failure here must not leave the
        messages in flight unrecorded: the feed is closed, what was handed to
        the server is still recorded, and the failure is returned, to be raised
        once sending is over.
        """
        failure: Exception | None = None
        try:
            more = self.next_batch()
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
            waiting = self.unreported - {o.digest_id for o in outcomes}
            renew_leases(session, sorted(waiting), self.worker, at + self.lease)
            self.leases_renewed_at = at
