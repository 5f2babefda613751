"""Digest rows for delivery tests, made directly through the ORM, and a `build` seam.

Delivery only needs subscribers and `pending` digests with a Message-ID; the
planner and renderer are not involved, so these tests pin the outbox alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from digest.db import Store
from digest.models import Digest, Subscriber

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


def build(session: Session, digest: Digest) -> bytes:
    """A real RFC 5322 message for a digest row (what compose + render do in production)."""
    message = EmailMessage()
    message["From"] = "Paper digest <digest@digest.test>"
    message["To"] = digest.subscriber.email
    message["Subject"] = f"Your papers for {digest.period}"
    message["Date"] = format_datetime(digest.planned_at)
    message["Message-ID"] = digest.message_id
    message.set_content(f"Hello {digest.subscriber.email},\n\n.A line that starts with a dot.\n")
    return message.as_bytes(policy=SMTP)


def states(store: Store) -> dict[str, str]:
    """email -> digest status."""
    with store.sessions() as session:
        return dict(
            session.execute(select(Subscriber.email, Digest.status).join(Digest.subscriber))
            .tuples()
            .all()
        )
