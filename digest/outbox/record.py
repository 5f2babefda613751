"""Recording what became of claimed digests: sent, retry with back-off, failed, cancelled.

`record_outcomes` writes what the mailer reported, as it arrives: `sent`,
`retry` with exponential back-off (until `max_retry_age_hours` after planning,
then `failed`) or `failed`; permanent failures in a row mark the subscriber
`bounced`. `record_unsent` ends a claimed digest that is not sent at all.
Every write touches only rows still `sending` (a `sent` excepted: whoever
claimed it last, it went out), so a row recorded `sent` is never claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from digest.config import DeliverySettings
from digest.mail import Outcome
from digest.store.schema import Digest, Subscriber

GONE_STATUSES = ("unsubscribed", "bounced")
"""Subscribers whose claimed digests are cancelled rather than sent."""


def record_outcomes(
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


def record_unsent(session: Session, digest_id: int, status: str, reason: str) -> None:
    """End a claimed digest that will not be sent: `cancelled`, or `failed` to build."""
    session.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == "sending")
        .values(status=status, last_error=reason, lease_until=None, next_attempt_at=None)
    )
