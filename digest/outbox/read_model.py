"""The outbox as operators see it (`digest outbox`, `digest retry`, `digest status`).

Reads and nudges digest rows by status and subscriber; it never claims or
sends, so it can run beside delivery at any time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from digest.errors import BadInput
from digest.store.schema import DIGEST_STATUSES, Digest, Subscriber


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


@dataclass(frozen=True)
class Lease:
    """Digests one sender has claimed and not yet finished: `sending` under its name.

    `running` says whether that sender is known to be alive: False when it
    ran on this host and no process has its pid any more (it crashed), None
    when it ran elsewhere and nobody here can tell.
    """

    worker: str
    digests: int
    until: datetime

    @property
    def running(self) -> bool | None:
        host, _, pid = self.worker.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user has that pid now
            return True
        return True

    def describe(self) -> str:
        """'306 digests leased by host:123 (not running) until 2026-12-04 10:42 UTC'."""
        noun = "digest" if self.digests == 1 else "digests"
        state = {False: " (no longer running)", True: " (running)", None: ""}[self.running]
        return (
            f"{self.digests} {noun} leased by {self.worker}{state} "
            f"until {self.until:%Y-%m-%d %H:%M} UTC"
        )


def leases(session: Session, *, now: datetime) -> list[Lease]:
    """Senders holding digests whose lease has not run out, most digests first.

    After a crash these rows wait for their lease: no other sender takes them
    before then, in case the holder is alive and still sending them.
    """
    rows = session.execute(
        select(Digest.claimed_by, func.count(), func.max(Digest.lease_until))
        .where(Digest.status == "sending", Digest.lease_until >= now)
        .group_by(Digest.claimed_by)
        .order_by(func.count().desc())
    ).tuples()
    return [Lease(worker or "?", count, until or now) for worker, count, until in rows]


def take_back_leases(session: Session, *, now: datetime, workers: Sequence[str]) -> int:
    """Make the digests leased to `workers` due now (`digest retry --stale`).

    For after a crash, when the operator knows the holder is dead: its rows
    need not wait for their lease. If it is in fact alive, what it is sending
    may be sent twice (with the same Message-ID). The claim's attempt stays
    counted: the message may have been handed to the server.
    """
    if not workers:
        return 0
    result = session.execute(
        update(Digest)
        .where(
            Digest.status == "sending",
            Digest.lease_until >= now,
            Digest.claimed_by.in_(list(workers)),
        )
        .values(status="retry", next_attempt_at=now, lease_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
