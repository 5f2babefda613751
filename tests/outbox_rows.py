"""Digest rows for delivery tests, made directly through the ORM, and a `build` seam.

Delivery only needs subscribers and `pending` digests with a Message-ID; the
planner and renderer are not involved, so these tests pin the outbox alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from digest.outbox import ClaimedDigest
from digest.store.database import Store
from digest.store.schema import Digest, Subscriber

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
PERIOD = "2026-11-22"


def make_digests(
    store: Store, emails: Sequence[str], *, now: datetime = T0, status: str = "active"
) -> dict[str, int]:
    """One subscriber and one pending digest per address; returns email -> digest id."""
    with store.transaction() as session:
        session.execute(
            insert(Subscriber),
            [
                {
                    "email": email,
                    "status": status,
                    "created_at": now - timedelta(days=30),
                    "subscribed_at": now - timedelta(days=30),
                    "updated_at": now - timedelta(days=30),
                }
                for email in emails
            ],
        )
        ids = dict(
            session.execute(
                select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails))
            )
            .tuples()
            .all()
        )
        session.execute(
            insert(Digest),
            [
                {
                    "subscriber_id": ids[email],
                    "period": PERIOD,
                    "status": "pending",
                    "message_id": f"<{PERIOD}.{ids[email]}@digest.test>",
                    "planned_at": now,
                    "window_start": now - timedelta(days=1),
                }
                for email in emails
            ],
        )
        return dict(
            session.execute(select(Subscriber.email, Digest.id).join(Digest.subscriber))
            .tuples()
            .all()
        )


def build(session: Session, digest: ClaimedDigest) -> bytes:
    """A real RFC 5322 message for a digest row (what compose + render do in production).

    Written out by hand rather than with `email.message`: the stdlib's header
    classes cost milliseconds per message, which the 2,000-digest tests notice.
    """
    lines = [
        "From: Paper digest <digest@digest.test>",
        f"To: {digest.email}",
        f"Subject: Your papers for {digest.period}",
        f"Date: {format_datetime(digest.planned_at)}",
        f"Message-ID: {digest.message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Hello {digest.email},",
        "",
        ".A line that starts with a dot.",
        "",
    ]
    return "\r\n".join(lines).encode()


def states(store: Store) -> dict[str, str]:
    """email -> digest status."""
    with store.sessions() as session:
        return dict(
            session.execute(select(Subscriber.email, Digest.status).join(Digest.subscriber))
            .tuples()
            .all()
        )
