"""Rows for planner tests, written straight into a real store.

Papers and topics are chosen so matching is unambiguous: a paper about
diffusion says "diffusion" in its title, the others share no word with the
topics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.keys import paper_key, title_key
from digest.store.database import Store
from digest.store.schema import Digest, Dump, DumpPaper, Paper, Subscriber, Topic

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)  # a Sunday, 08:00 UTC
JOINED = datetime(2026, 11, 1, tzinfo=UTC)


def add_subscriber(
    store: Store,
    email: str,
    topics: Sequence[str] = ("diffusion",),
    *,
    status: str = "active",
    timezone: str = "UTC",
    send_hour: int = 8,
    max_papers: int = 10,
    subscribed_at: datetime = JOINED,
    paused_until: datetime | None = None,
    labels: Sequence[str | None] | None = None,
) -> int:
    with store.transaction() as session:
        sub = Subscriber(
            email=email,
            status=status,
            timezone=timezone,
            send_hour=send_hour,
            frequency="daily",
            weekday=0,
            max_papers=max_papers,
            created_at=subscribed_at,
            subscribed_at=subscribed_at,
            updated_at=subscribed_at,
            paused_until=paused_until,
        )
        for i, query in enumerate(topics):
            label = labels[i] if labels else None
            sub.topics.append(Topic(query=query, label=label, created_at=subscribed_at))
        session.add(sub)
        session.flush()
        return sub.id


def add_paper(
    session: Session,
    title: str,
    *,
    arxiv_id: str | None = None,
    abstract: str = "",
    authors: Sequence[str] = (),
    seen: datetime = JOINED,
) -> int:
    key = paper_key(arxiv_id, title)
    existing = session.scalars(select(Paper).where(Paper.key == key)).one_or_none()
    if existing is not None:
        return existing.id
    paper = Paper(
        key=key,
        title_key=title_key(title),
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract or f"We study {title.lower()} in depth.",
        authors=list(authors),
        first_seen=seen,
    )
    session.add(paper)
    session.flush()
    return paper.id


def add_dump(
    store: Store,
    ingested_at: datetime,
    papers: Sequence[str | tuple[str, str | None, int | None]],
) -> dict[str, int]:
    """A dump ingested at `ingested_at` listing papers (title, or (title, arxiv id, upvotes))."""
    ids: dict[str, int] = {}
    with store.transaction() as session:
        dump = Dump(
            sha256=hashlib.sha256(f"{ingested_at.isoformat()}{papers}".encode()).hexdigest(),
            source="text",
            source_ref=f"test-{ingested_at.isoformat()}",
            issue_date=ingested_at.date(),
            ingested_at=ingested_at,
            paper_count=len(papers),
        )
        session.add(dump)
        session.flush()
        for position, entry in enumerate(papers, start=1):
            title, arxiv_id, upvotes = (entry, None, None) if isinstance(entry, str) else entry
            paper_id = add_paper(session, title, arxiv_id=arxiv_id, seen=ingested_at)
            session.add(
                DumpPaper(dump_id=dump.id, paper_id=paper_id, position=position, upvotes=upvotes)
            )
            ids[title] = paper_id
    return ids


def digests_of(store: Store, subscriber_id: int) -> list[tuple[str, str, list[str]]]:
    """(period, status, titles in rank order) of a subscriber's digests, oldest first."""
    with store.sessions() as session:
        rows = session.scalars(
            select(Digest).where(Digest.subscriber_id == subscriber_id).order_by(Digest.id)
        ).all()
        return [(d.period, d.status, [item.paper.title for item in d.items]) for d in rows]


def set_status(store: Store, subscriber_id: int, status: str) -> None:
    """Mark every digest of a subscriber (e.g. as sent, as delivery would)."""
    with store.transaction() as session:
        for digest in session.scalars(select(Digest).where(Digest.subscriber_id == subscriber_id)):
            digest.status = status


def settings_for(database_url: str, **schedule: object) -> Settings:
    from dataclasses import replace

    base = Settings(database_url=database_url)
    return replace(base, schedule=replace(base.schedule, **schedule))  # type: ignore[arg-type]


def days(n: float) -> timedelta:
    return timedelta(days=n)
