"""Reading readers' votes for a planning pass: per subscriber and topic, the papers voted on.

Writes (with their checks) belong to `digest.subscribers.votes`; the planner
only reads, a batch of subscribers at a time, in two queries: the votes, then
the voted papers' text (which is what ranking learns from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.store.reads import chunks
from digest.store.schema import Paper, Vote

__all__ = ["SubscriberVotes", "voted_texts", "votes_of"]


@dataclass(frozen=True, slots=True)
class SubscriberVotes:
    """One subscriber's votes: per topic, (paper id, +1 or -1) in the order they were cast."""

    by_topic: dict[int, list[tuple[int, int]]]

    @property
    def papers(self) -> set[int]:
        """Every paper they voted on: a paper voted on is never sent to them again."""
        return {paper for votes in self.by_topic.values() for paper, _ in votes}


def votes_of(session: Session, subscriber_ids: Sequence[int]) -> dict[int, SubscriberVotes]:
    """The votes of those of `subscriber_ids` who have any."""
    found: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for chunk in chunks(sorted(set(subscriber_ids))):
        rows = session.execute(
            select(Vote.subscriber_id, Vote.topic_id, Vote.paper_id, Vote.vote)
            .where(Vote.subscriber_id.in_(chunk))
            .order_by(Vote.subscriber_id, Vote.voted_at, Vote.paper_id)
        )
        for subscriber_id, topic_id, paper_id, vote in rows:
            found.setdefault(subscriber_id, {}).setdefault(topic_id, []).append((paper_id, vote))
    return {subscriber_id: SubscriberVotes(topics) for subscriber_id, topics in found.items()}


def voted_texts(session: Session, paper_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(title, abstract) of each voted paper: what ranking learns from."""
    return {
        paper_id: (title, abstract or "")
        for chunk in chunks(sorted(set(paper_ids)))
        for paper_id, title, abstract in session.execute(
            select(Paper.id, Paper.title, Paper.abstract).where(Paper.id.in_(chunk))
        )
    }
