"""Simulated readers: do "more / less like this" votes make the next digest better?

For every topic of the relevance set (`bench/relevance/`), one subscriber with
that topic as their only filter:

1. the earlier dumps arrive (the first two page dumps) and a first digest is
   planned and recorded;
2. the reader votes on every paper in it as the judgments say: relevant
   (grade >= 1) "more like this", not relevant "less like this";
3. the later dumps arrive (the other two page dumps and the Hugging Face
   sample) and the second digest is planned twice, with the votes
   (`scoring.vote_weight` as configured) and without them (`vote_weight = 0`).

The product's own path runs in-process: a real SQLite store, ingest, the
planner, the votes table. Paper vectors come from `bench/relevance.py`'s cache
(computed once per model), so the semantic signal is on when the encoder is
installed, as in production; `--words` turns it off.

Prints JSON per split (train, test, and the test split's topics by the
independent assessors, `test_unseen`): over topics whose second digest is not
empty, the mean precision (relevant papers / papers sent) and nDCG@10 (ideal:
the judged papers of the second window), with and without votes; the topics
each way left with an empty second digest; and the largest nDCG drop of one
topic. Tune `vote_weight` on the training split only.

    PYTHONPATH=. python bench/feedback.py [--split train|test|both] [--vote-weight W]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import relevance  # noqa: E402  (bench/relevance.py, next to this file)

from digest.config import Settings  # noqa: E402
from digest.ingest import ingest_file  # noqa: E402
from digest.planner import plan_due  # noqa: E402
from digest.store.database import Store, open_store  # noqa: E402
from digest.store.schema import (  # noqa: E402
    Digest,
    DigestItem,
    Paper,
    PaperVector,
    Subscriber,
    Topic,
    Vote,
)

DATA = HERE.parent / "tests" / "data"
PAGE_DUMPS = sorted((DATA / "dumps").glob("*.txt"))
EARLIER = PAGE_DUMPS[:2]
LATER = [*PAGE_DUMPS[2:], DATA / "hf_daily_papers.json"]
JOINED = datetime(2026, 11, 1, tzinfo=UTC)
FIRST_INGEST = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
FIRST_PLAN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SECOND_INGEST = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
SECOND_PLAN = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def build_store(
    folder: Path, topics: Sequence[relevance.Topic], settings: Settings, *, words: bool
) -> tuple[Store, dict[str, int]]:
    """The store after step 2: first digests recorded, every paper in them voted on.
    Returns it and each topic's subscriber id."""
    store = open_store(settings.database_url)
    for path in EARLIER:
        ingest_file(store, path, now=FIRST_INGEST)
    if not words:
        _store_vectors(store)
    subscribers: dict[str, int] = {}
    with store.transaction() as session:
        for topic in topics:
            sub = Subscriber(
                email=f"topic-{topic.id}@example.org",
                status="active",
                timezone="UTC",
                send_hour=8,
                frequency="daily",
                weekday=0,
                max_papers=10,
                created_at=JOINED,
                subscribed_at=JOINED,
                updated_at=JOINED,
            )
            sub.topics.append(Topic(query=topic.query, created_at=JOINED))
            session.add(sub)
            session.flush()
            subscribers[topic.id] = sub.id
    with store.sessions() as session:
        plan_due(session, settings, now=FIRST_PLAN)
    by_subscriber = {
        sub: topic for topic in topics for t, sub in subscribers.items() if t == topic.id
    }
    with store.transaction() as session:
        keys = dict(session.execute(select(Paper.id, Paper.title_key)).all())
        rows = session.execute(
            select(Digest.subscriber_id, DigestItem.paper_id, DigestItem.topic_id).join(
                DigestItem, DigestItem.digest_id == Digest.id
            )
        ).all()
        for subscriber_id, paper_id, topic_id in rows:
            grade = by_subscriber[subscriber_id].grades.get(keys[paper_id], 0)
            session.add(
                Vote(
                    subscriber_id=subscriber_id,
                    paper_id=paper_id,
                    topic_id=topic_id,
                    vote=1 if grade >= 1 else -1,
                    voted_at=FIRST_PLAN + timedelta(hours=1),
                )
            )
    for path in LATER:
        ingest_file(store, path, now=SECOND_INGEST)
    if not words:
        _store_vectors(store)
    return store, subscribers


def _store_vectors(store: Store) -> None:
    """Every stored paper's vector from the relevance bench's cache (as `digest embed`
    would store it)."""
    papers = relevance.load_papers()
    encoder, matrix = relevance._paper_vectors(papers)
    row_of = {paper.key: i for i, paper in enumerate(papers)}
    with store.transaction() as session:
        have = set(session.scalars(select(PaperVector.paper_id)))
        for paper_id, key in session.execute(select(Paper.id, Paper.title_key)):
            if paper_id not in have and key in row_of:
                vector = matrix[row_of[key]].astype("<f4").tobytes()
                session.add(PaperVector(paper_id=paper_id, model=encoder.name, vector=vector))


def second_digests(
    store: Store, settings: Settings, subscribers: Mapping[str, int]
) -> tuple[dict[str, list[int]], dict[str, set[int]], dict[int, str]]:
    """(per topic, the second digest's paper ids in rank order; per topic, the papers of
    its second window; each paper's key), planned without recording."""
    with store.sessions() as session:
        report = plan_due(session, settings, now=SECOND_PLAN, dry_run=True)
        keys = dict(session.execute(select(Paper.id, Paper.title_key)).all())
        given: dict[int, set[int]] = {}
        for subscriber_id, paper_id in session.execute(
            select(Digest.subscriber_id, DigestItem.paper_id).join(
                DigestItem, DigestItem.digest_id == Digest.id
            )
        ):
            given.setdefault(subscriber_id, set()).add(paper_id)
        later = _later_papers(session)
    topic_of = {sub: topic for topic, sub in subscribers.items()}
    picks = {topic: [] for topic in subscribers}
    for plan in report.planned:
        ordered = sorted(plan.picks, key=lambda p: p.rank)
        picks[topic_of[plan.subscriber_id]] = [p.paper_id for p in ordered]
    window = {topic: later - given.get(sub, set()) for topic, sub in subscribers.items()}
    return picks, window, keys


def _later_papers(session: Any) -> set[int]:
    from digest.store.schema import Dump, DumpPaper

    return set(
        session.scalars(
            select(DumpPaper.paper_id)
            .join(Dump, Dump.id == DumpPaper.dump_id)
            .where(Dump.ingested_at == SECOND_INGEST)
        )
    )


def scores(
    sent: Sequence[int], window: set[int], grades: Mapping[str, int], keys: Mapping[int, str]
) -> dict[str, Any]:
    ranked = [keys[p] for p in sent]
    available = {keys[p]: grades[keys[p]] for p in window if grades.get(keys[p], 0) > 0}
    relevant = sum(1 for key in ranked if grades.get(key, 0) >= 1)
    return {
        "sent": len(ranked),
        "relevant_sent": relevant,
        "precision": relevant / len(ranked) if ranked else None,
        "ndcg@10": relevance.ndcg_at_k(ranked, available, 10) if available else None,
    }


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"topics": len(rows)}
    for way in ("without_votes", "with_votes"):
        sent = [r[way] for r in rows if r[way]["sent"]]
        ndcg = [r[way]["ndcg@10"] for r in rows if r[way]["ndcg@10"] is not None]
        out[way] = {
            "precision": round(sum(s["precision"] for s in sent) / len(sent), 4) if sent else None,
            "ndcg@10": round(sum(ndcg) / len(ndcg), 4) if ndcg else None,
            "empty_digests": sum(1 for r in rows if not r[way]["sent"]),
            "papers_sent": sum(r[way]["sent"] for r in rows),
            "relevant_sent": sum(r[way]["relevant_sent"] for r in rows),
        }
    drops = [
        (r["without_votes"]["ndcg@10"] - r["with_votes"]["ndcg@10"], r["topic"])
        for r in rows
        if r["with_votes"]["ndcg@10"] is not None and r["without_votes"]["ndcg@10"] is not None
    ]
    if drops:
        worst, topic = max(drops)
        out["largest_ndcg_drop"] = {"topic": topic, "drop": round(worst, 4)}
        # with a handful of relevant papers per topic and window, one of them in or
        # out of the list moves a topic's nDCG by about a tenth or more
        out["topics_ndcg_up_0.1"] = sum(1 for drop, _ in drops if drop < -0.1)
        out["topics_ndcg_down_0.1"] = sum(1 for drop, _ in drops if drop > 0.1)
    # both ways must send something for a precision comparison on the same topics
    paired = [r for r in rows if r["with_votes"]["sent"] and r["without_votes"]["sent"]]
    if paired:
        out["precision_gain_same_topics"] = round(
            sum(r["with_votes"]["precision"] - r["without_votes"]["precision"] for r in paired)
            / len(paired),
            4,
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--split", choices=("train", "test", "both"), default="train")
    parser.add_argument("--vote-weight", type=float, default=None, help="override the setting")
    parser.add_argument("--words", action="store_true", help="rank by words alone")
    parser.add_argument("--per-topic", action="store_true", help="add one row per topic")
    args = parser.parse_args(argv)
    topics = relevance.load_topics(split=None if args.split == "both" else args.split)
    test = relevance.test_ids()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/feedback.db")
        scoring = settings.scoring
        if args.vote_weight is not None:
            scoring = replace(scoring, vote_weight=args.vote_weight)
        semantic = replace(settings.semantic, enabled="off") if args.words else settings.semantic
        settings = replace(settings, scoring=scoring, semantic=semantic)
        store, subscribers = build_store(Path(tmp), topics, settings, words=args.words)
        try:
            with_votes, window, keys = second_digests(store, settings, subscribers)
            without = replace(settings, scoring=replace(scoring, vote_weight=0.0))
            without_votes, _, _ = second_digests(store, without, subscribers)
        finally:
            store.dispose()
    rows = [
        {
            "topic": t.id,
            "query": t.query,
            "split": "test" if t.id in test else "train",
            "unseen": t.origin not in ("", "team"),
            "without_votes": scores(without_votes[t.id], window[t.id], t.grades, keys),
            "with_votes": scores(with_votes[t.id], window[t.id], t.grades, keys),
        }
        for t in topics
    ]
    splits: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        splits.setdefault(row["split"], []).append(row)
        if row["split"] == "test" and row["unseen"]:
            splits.setdefault(relevance.UNSEEN, []).append(row)
    report: dict[str, Any] = {
        "vote_weight": scoring.vote_weight,
        "semantic": not args.words,
        "splits": {name: summarise(chosen) for name, chosen in splits.items()},
    }
    if args.per_topic:
        report["per_topic"] = rows
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
