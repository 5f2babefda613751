"""Planning throughput: one `plan_due` pass over many due subscribers, on SQLite.

Compares digest's planner (one shared PaperIndex per pass, each distinct filter
evaluated once) with a naive baseline measured in the same run on the same
data: an index built per subscriber. Prints JSON.

    PYTHONPATH=. python bench/plan.py [--subscribers 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete

from bench.sample_papers import sample_papers
from digest.config import Settings
from digest.filters import parse
from digest.planner import plan_due
from digest.scoring import PaperIndex, select_papers
from digest.store.database import open_store
from digest.store.schema import Digest, Dump, DumpPaper, Paper, Subscriber, Topic
from digest.values import TopicQuery

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TOPIC_POOL = [
    "diffusion",
    "large language models",
    "reinforcement learning",
    "kv cache",
    "speculative decoding",
    "video generation",
    "agents",
    "quantization",
    "retrieval augmented generation",
    "robotics",
    "reasoning",
    "multimodal",
    "benchmark",
    "attention",
    "3d",
    "mixture of experts",
]


def build(url: str, subscribers: int) -> None:
    store = open_store(url)
    papers = sample_papers()
    with store.transaction() as session:
        dump = Dump(
            sha256="0" * 64,
            source="text",
            source_ref="bench",
            issue_date=NOW.date(),
            ingested_at=NOW - timedelta(hours=3),
        )
        session.add(dump)
        session.flush()
        for position, text in enumerate(papers, 1):
            paper = Paper(
                key=f"title:{position}",
                title=text.title,
                abstract=text.abstract,
                authors=list(text.authors),
                first_seen=dump.ingested_at,
            )
            session.add(paper)
            session.flush()
            session.add(
                DumpPaper(dump_id=dump.id, paper_id=paper.id, position=position, upvotes=position)
            )
        joined = NOW - timedelta(days=30)
        for i in range(subscribers):
            sub = Subscriber(
                email=f"s{i}@example.org",
                status="active",
                created_at=joined,
                subscribed_at=joined,
                updated_at=joined,
                max_papers=10,
            )
            for j in range(3):
                topic = TOPIC_POOL[(i * 7 + j * 5) % len(TOPIC_POOL)]
                sub.topics.append(Topic(query=topic, created_at=joined))
            session.add(sub)
    store.dispose()


def run_planner(url: str) -> tuple[float, int]:
    store = open_store(url)
    with store.transaction() as session:
        session.execute(delete(Digest))
    started = time.perf_counter()
    with store.sessions() as session:
        report = plan_due(session, Settings(database_url=url), now=NOW)
    elapsed = time.perf_counter() - started
    store.dispose()
    return elapsed, len(report.planned)


def run_idle_tick(url: str) -> float:
    """A tick a minute later, when everyone already has today's digest."""
    store = open_store(url)
    started = time.perf_counter()
    with store.sessions() as session:
        plan_due(session, Settings(database_url=url), now=NOW + timedelta(minutes=1))
    elapsed = time.perf_counter() - started
    store.dispose()
    return elapsed


def run_naive(url: str, limit: int) -> float:
    """Per subscriber: its own index and its own parse, nothing shared (compute only)."""
    store = open_store(url)
    papers = sample_papers()
    settings = Settings(database_url=url)
    with store.sessions() as session:
        subs = session.query(Subscriber).limit(limit).all()
        topics = [[(t.id, t.query) for t in s.topics] for s in subs]
    started = time.perf_counter()
    for sub_topics in topics:
        index = PaperIndex(papers, settings.scoring)
        queries = [TopicQuery(tid, text, parse(text)) for tid, text in sub_topics]
        select_papers(index, queries, max_papers=10)
    elapsed = time.perf_counter() - started
    store.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--naive-sample", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        build(url, args.subscribers)
        planner_runs, naive_runs, idle_runs = [], [], []
        planned = 0
        for _ in range(args.repeat):
            elapsed, planned = run_planner(url)
            planner_runs.append(elapsed / args.subscribers)
            idle_runs.append(run_idle_tick(url))
            naive_runs.append(run_naive(url, args.naive_sample) / args.naive_sample)
    planner = statistics.median(planner_runs)
    naive = statistics.median(naive_runs)
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "papers": len(sample_papers()),
                "digests_planned": planned,
                "planner_ms_per_subscriber": round(planner * 1000, 3),
                "planner_subscribers_per_s": round(1 / planner),
                "idle_tick_s": round(statistics.median(idle_runs), 3),
                "naive_index_per_subscriber_ms": round(naive * 1000, 3),
                "speedup_vs_naive": round(naive / planner, 1),
                "note": "planner time includes reading and writing the database; naive is "
                "scoring only (so the ratio understates the gain)",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
