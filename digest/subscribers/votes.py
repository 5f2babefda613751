"""A reader's "more / less like this": cast, undo, list and reset votes, checked.

Votes come from two places: the links under each paper of a digest (the
web app, which may only name a paper of the digest the link came in) and the
CLI (`digest feedback`, which may name any stored paper, so a new topic can be
seeded with examples). Both end here. A vote is for one of the subscriber's
topics; a second vote on the same paper and topic replaces the first. The
planner reads votes through `digest.store.votes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from digest.errors import BadInput
from digest.store.reads import chunks, resolve_paper
from digest.store.schema import Digest, DigestItem, Paper, Subscriber, Topic, Vote
from digest.subscribers.manage import find_topic

__all__ = [
    "VOTES",
    "VoteRow",
    "cast_vote",
    "list_votes",
    "remove_vote",
    "reset_votes",
    "resolve_paper",
    "resolve_topic",
    "votes_of_many",
]

Direction = Literal["up", "down"]
VOTES: dict[str, int] = {"up": 1, "down": -1, "more": 1, "less": -1}


@dataclass(frozen=True, slots=True)
class VoteRow:
    """One vote as a reader sees it listed."""

    paper_id: int
    paper_key: str
    arxiv_id: str | None
    title: str
    topic_id: int
    topic: str  # the topic's label, else its query
    vote: Direction
    voted_at: datetime

    def as_json(self) -> dict[str, object]:
        return {
            "paper": self.arxiv_id or self.paper_key,
            "title": self.title,
            "topic_id": self.topic_id,
            "topic": self.topic,
            "vote": self.vote,
            "voted_at": self.voted_at.isoformat(),
        }


def resolve_topic(
    session: Session, subscriber: Subscriber, paper: Paper, ref: str | int | None
) -> Topic:
    """The topic a vote is for: the one named (id, text or label); else the subscriber's
    only topic; else the topic that brought them this paper most recently."""
    if ref is not None:
        topic = find_topic(subscriber, ref)
        if topic is None:
            raise BadInput(
                f"{subscriber.email} has no topic {ref!r} (their topics: {_listed(subscriber)})"
            )
        return topic
    if not subscriber.topics:
        raise BadInput(f"{subscriber.email} has no topics to vote for")
    if len(subscriber.topics) == 1:
        return subscriber.topics[0]
    sent_under = session.scalar(
        select(DigestItem.topic_id)
        .join(Digest, Digest.id == DigestItem.digest_id)
        .where(
            Digest.subscriber_id == subscriber.id,
            DigestItem.paper_id == paper.id,
            DigestItem.topic_id.is_not(None),
        )
        .order_by(Digest.planned_at.desc())
        .limit(1)
    )
    topic = next((t for t in subscriber.topics if t.id == sent_under), None)
    if topic is None:
        raise BadInput(
            f"{subscriber.email} has {len(subscriber.topics)} topics and was never sent this "
            f"paper: say which with --topic ({_listed(subscriber)})"
        )
    return topic


def cast_vote(
    session: Session,
    subscriber: Subscriber,
    paper: Paper,
    topic: Topic,
    vote: str,
    *,
    now: datetime,
) -> bool:
    """Record `vote` ("up"/"more" or "down"/"less"); True if it changed anything."""
    value = _value(vote)
    if topic.subscriber_id != subscriber.id:
        raise BadInput(f"topic #{topic.id} is not one of {subscriber.email}'s topics")
    key = (subscriber.id, paper.id, topic.id)
    row = session.get(Vote, key)
    if row is not None and row.vote == value:
        return False
    # One statement that inserts or replaces: two clicks at once (a double-click, two
    # devices) both find no row, and a plain INSERT then fails on the second.
    values = {
        "subscriber_id": subscriber.id,
        "paper_id": paper.id,
        "topic_id": topic.id,
        "vote": value,
        "voted_at": now,
    }
    upsert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = upsert(Vote).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["subscriber_id", "paper_id", "topic_id"],
            set_={"vote": statement.excluded.vote, "voted_at": statement.excluded.voted_at},
        )
    )
    if row is not None:
        session.expire(row)  # the ORM's copy is stale now
    session.flush()
    return True


def remove_vote(
    session: Session, subscriber: Subscriber, paper: Paper, topic: Topic | None = None
) -> int:
    """Remove the subscriber's vote on `paper` (for `topic`, or for any); how many went."""
    condition = [Vote.subscriber_id == subscriber.id, Vote.paper_id == paper.id]
    if topic is not None:
        condition.append(Vote.topic_id == topic.id)
    gone = session.execute(delete(Vote).where(*condition)).rowcount  # type: ignore[attr-defined]
    session.flush()
    return int(gone or 0)


def reset_votes(session: Session, subscriber: Subscriber) -> int:
    """Remove every vote of the subscriber; how many went."""
    gone = session.execute(delete(Vote).where(Vote.subscriber_id == subscriber.id)).rowcount  # type: ignore[attr-defined]
    session.flush()
    return int(gone or 0)


def list_votes(session: Session, subscriber: Subscriber) -> list[VoteRow]:
    """The subscriber's votes, newest first."""
    return votes_of_many(session, [subscriber.id]).get(subscriber.id, [])


def votes_of_many(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[VoteRow]]:
    """Per subscriber of `subscriber_ids` with votes, their votes newest first (a query per
    few hundred subscribers, for an export of the whole list)."""
    found: dict[int, list[VoteRow]] = {}
    for chunk in chunks(sorted(set(subscriber_ids))):
        rows = session.execute(
            select(Vote, Paper, Topic)
            .join(Paper, Paper.id == Vote.paper_id)
            .join(Topic, Topic.id == Vote.topic_id)
            .where(Vote.subscriber_id.in_(chunk))
            .order_by(Vote.voted_at.desc(), Vote.paper_id)
        )
        for vote, paper, topic in rows:
            found.setdefault(vote.subscriber_id, []).append(_row(vote, paper, topic))
    return found


def _row(vote: Vote, paper: Paper, topic: Topic) -> VoteRow:
    return VoteRow(
        paper_id=paper.id,
        paper_key=paper.key,
        arxiv_id=paper.arxiv_id,
        title=paper.title,
        topic_id=topic.id,
        topic=topic.label or topic.query,
        vote="up" if vote.vote > 0 else "down",
        voted_at=vote.voted_at,
    )


def _value(vote: str) -> int:
    value = VOTES.get(vote.strip().lower())
    if value is None:
        raise BadInput(f"unknown vote {vote!r}: use up or down")
    return value


def _listed(subscriber: Subscriber) -> str:
    return ", ".join(f"#{t.id} {t.query!r}" for t in subscriber.topics) or "none"
