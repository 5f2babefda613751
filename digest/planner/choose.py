"""Choosing papers: score every due subscriber's candidates over one shared index.

One `PaperIndex` holds the union of all candidates of the pass; each
subscriber's topics are parsed once per distinct query text and
`Selector.select` keeps the best `max_papers` of their own candidates. The
result is a `PlannedDigest` per subscriber, not yet written.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.embed import stored_vectors
from digest.errors import BadInput
from digest.filters import meaning_texts, parse
from digest.gcpause import collector_paused
from digest.planner.candidates import candidate_papers
from digest.planner.due import DueSubscriber
from digest.planner.near_misses import near_misses as explain_near_misses
from digest.planner.report import PlannedDigest, PlanReport
from digest.scoring import PaperIndex, Selector
from digest.store.reads import paper_texts
from digest.store.votes import SubscriberVotes, voted_texts, votes_of
from digest.values import TopicQuery, TopicVotes, VotedPaper

__all__ = ["choose_papers", "new_message_id"]

log = logging.getLogger(__name__)


def new_message_id(settings: Settings) -> str:
    """A Message-ID chosen at planning time, so every send attempt reuses it."""
    return f"<digest-{secrets.token_hex(12)}@{settings.sender.message_domain()}>"


def choose_papers(
    session: Session,
    settings: Settings,
    due: Sequence[DueSubscriber],
    now: datetime,
    report: PlanReport,
    *,
    near_misses: bool,
    chunk: int = 1000,
) -> Iterator[list[PlannedDigest]]:
    """The digest of every due subscriber with something to consider (see `candidate_papers`),
    `chunk` subscribers' at a time.

    Everything is read from the database before this returns; the plans are worked
    out as they are asked for, so a recording pass can write each chunk and let its
    picks go before the next (a million picks for 100,000 subscribers), and the
    caller can end its read transaction first.
    """
    votes = votes_of(session, [d.subscriber_id for d in due])
    voted = {subscriber_id: v.papers for subscriber_id, v in votes.items()}
    candidates = candidate_papers(session, due, now, report=report, voted=voted)
    if not candidates:
        return iter(())
    distinct = {id(c): c for c in candidates.values()}.values()
    union: frozenset[int] = frozenset().union(*distinct)
    # Each paper's latest listing by `now` lies in the window (it was listed there).
    texts = paper_texts(session, union, as_of=now)
    # what each distinct topic means, as texts to embed: for the vectors and the topics
    # (once per distinct text: subscribers share the common topics)
    meanings = {text: meaning_texts(text) for text in {t for d in due for _, t, _ in d.topics}}
    voted_ids = (
        set().union(*(voted[d.subscriber_id] for d in due if d.subscriber_id in voted))
        if settings.scoring.vote_weight > 0
        else set()
    )
    vectors = stored_vectors(
        session,
        settings.semantic,
        union | voted_ids,
        {m for texts in meanings.values() for m in texts},
    )
    paper_vectors, text_vectors = vectors if vectors else (None, None)
    learned = learned_votes(session, votes, voted_ids, paper_vectors)
    index = PaperIndex(
        texts, settings.scoring, paper_vectors=paper_vectors, text_vectors=text_vectors
    )
    selector = Selector(index)
    report.papers_indexed = len(texts)
    titles = {t.paper_id: t.title for t in texts}

    return _plans(
        settings,
        due,
        candidates,
        union,
        selector,
        meanings,
        learned,
        now,
        chunk,
        near_misses=(index, titles) if near_misses else None,
    )


def _plans(
    settings: Settings,
    due: Sequence[DueSubscriber],
    candidates: Mapping[int, AbstractSet[int]],
    union: AbstractSet[int],
    selector: Selector,
    meanings: dict[str, tuple[str, ...]],
    learned: Mapping[int, dict[int, TopicVotes]],
    now: datetime,
    chunk: int,
    *,
    near_misses: tuple[PaperIndex, dict[int, str]] | None,
) -> Iterator[list[PlannedDigest]]:
    """The plans of `due`, `chunk` subscribers at a time (see `choose_papers`)."""
    parsed: dict[str, Any] = {}  # query text -> (Node, meaning) (None if it no longer parses)
    for start in range(0, len(due), chunk):
        plans: list[PlannedDigest] = []
        # many small objects and no reference cycles: see digest.gcpause
        with collector_paused():
            for d in due[start : start + chunk]:
                if d.subscriber_id not in candidates:
                    continue
                topics = _parsed_topics(d, parsed, meanings, learned.get(d.subscriber_id, {}))
                allowed = candidates[d.subscriber_id]
                # Candidates already lack the papers given before, so `allowed` is the
                # whole window; when it is every indexed paper (the usual case: one
                # schedule, nothing of today's given yet) no window at all, and the
                # subscriber shares the selection of everyone with the same topics.
                picks = (
                    selector.select(
                        topics,
                        max_papers=d.max_papers,
                        allowed=None if len(allowed) == len(union) else allowed,
                    )
                    if topics and allowed
                    else []
                )
                plan = PlannedDigest(
                    digest_id=None,
                    subscriber_id=d.subscriber_id,
                    email=d.email,
                    period=d.period,
                    message_id=new_message_id(settings),
                    window_start=d.window_start,
                    planned_at=now,
                    picks=list(picks),
                    status="pending" if picks or settings.schedule.send_empty else "skipped",
                    topic_labels={topic_id: label for topic_id, _, label in d.topics},
                    candidates=len(allowed),
                    papers=len(picks),
                )
                if not picks:
                    plan.reason = (
                        f"no new paper matched your topics (of {len(allowed)} new)"
                        if allowed
                        else "no new papers since the last digest"
                    )
                    if near_misses is not None and allowed and topics:
                        index, titles = near_misses
                        plan.near_misses = explain_near_misses(index, topics, allowed, titles)
                plans.append(plan)
        yield plans


def learned_votes(
    session: Session,
    votes: Mapping[int, SubscriberVotes],
    voted_ids: AbstractSet[int],
    vectors: Mapping[int, bytes] | None,
) -> dict[int, dict[int, TopicVotes]]:
    """Per subscriber and topic, their votes as ranking learns from them (none when
    `vote_weight` is 0: `voted_ids` is then empty)."""
    if not voted_ids:
        return {}
    texts = voted_texts(session, list(voted_ids))
    vectors = vectors or {}
    learned: dict[int, dict[int, TopicVotes]] = {}
    for subscriber_id, theirs in votes.items():
        for topic_id, cast in theirs.by_topic.items():
            papers = [
                (VotedPaper(paper_id, *texts[paper_id], vectors.get(paper_id)), vote)
                for paper_id, vote in cast
                if paper_id in texts
            ]
            learned.setdefault(subscriber_id, {})[topic_id] = TopicVotes(
                liked=tuple(paper for paper, vote in papers if vote > 0),
                disliked=tuple(paper for paper, vote in papers if vote < 0),
            )
    return learned


def _parsed_topics(
    d: DueSubscriber,
    parsed: dict[str, Any],
    meanings: dict[str, tuple[str, ...]],
    votes: Mapping[int, TopicVotes],
) -> list[TopicQuery]:
    """The subscriber's topics that parse, with their votes; `parsed` memoises per query
    text over the pass (the node and the meaning texts), so subscribers who share a
    topic share its objects."""
    topics: list[TopicQuery] = []
    for topic_id, text, label in d.topics:
        if text not in parsed:
            try:
                parsed[text] = (parse(text), meanings[text])
            except BadInput as exc:
                log.warning("topic %d of %s does not parse, ignored: %s", topic_id, d.email, exc)
                parsed[text] = None
        if parsed[text] is not None:
            node, meaning = parsed[text]
            topics.append(TopicQuery(topic_id, label, node, meaning, votes.get(topic_id)))
    return topics
