"""Claims and leases: which digests a worker may take, taking them, keeping them, giving them back.

A claim is one statement — `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
LOCKED LIMIT n) RETURNING id` — so several workers on one PostgreSQL never
claim the same row; on SQLite the same statement runs under the database's
single writer lock (SQLAlchemy leaves SKIP LOCKED out there). A claimed row
is `sending` under the worker's name until its lease runs out; a worker that
dies leaves rows whose lease expires, and the next claim takes them over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from digest.outbox.types import ClaimedDigest
from digest.store.schema import Digest, Subscriber


def default_worker() -> str:
    """A name for this process in `digests.claimed_by`: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _claimable(now: datetime) -> ColumnElement[bool]:
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
    query = select(func.count()).select_from(Digest).where(_claimable(now))
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
    chosen = select(Digest.id).where(_claimable(now))
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


def renew_leases(session: Session, ids: Sequence[int], worker: str, until: datetime) -> None:
    """Extend the lease of rows this worker still holds."""
    if ids:
        session.execute(
            update(Digest)
            .where(Digest.id.in_(ids), Digest.status == "sending", Digest.claimed_by == worker)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )


def release_untried(session: Session, ids: Sequence[int], reason: str, at: datetime) -> None:
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


def release_claims(
    session: Session,
    *,
    worker: str,
    ids: Sequence[int] | None = None,
    keep: Collection[int] = (),
) -> int:
    """Give back digests `worker` claimed but never tried to send (shutdown, stopped batch).

    Undoes the claim: the attempt it counted is taken back, and the row is due
    at once in the state it had — `pending` if it was never tried, else
    `retry`. Only rows still `sending` under this worker's name are touched,
    so an outcome recorded meanwhile (or another worker's claim) wins.
    Rows in `keep` (messages possibly on the wire) keep their claim and lease.
    Returns how many rows were given back.
    """
    condition = and_(Digest.status == "sending", Digest.claimed_by == worker)
    if ids is not None:
        if not ids:
            return 0
        condition = and_(condition, Digest.id.in_(ids))
    if keep:
        condition = and_(condition, Digest.id.not_in(sorted(keep)))
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
