"""Benchmark: score 100,000 subscribers against one day's 150 candidate papers.

    PYTHONPATH=. python bench/scoring.py [--subscribers N] [--repeats R]

Subscribers have 1-3 topics of 2-4 words drawn Zipf-like from a pool of
popular topics (many readers share "diffusion models"), so most filters
repeat. Topic texts are parsed first, once per distinct text, as the planner
loads them (reported as parse_and_load). Timed, per repeat: building the index
and one `Selector`'s picks for every subscriber (max 10 papers), with the cyclic garbage
collector paused as the planner pauses it (`digest.gcpause`); the same loop with
the collector running is reported too, and so is where the time goes, phase by
phase. The baseline, measured in the same run, is the naive loop a keyword alert
would run: for each subscriber, each topic, each paper, substring tests of every
word; it runs on a sample and is extrapolated. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_papers import sample_papers

from digest.config import ScoringSettings
from digest.filters import parse
from digest.gcpause import collector_paused
from digest.scoring import PaperIndex, Selector
from digest.text import STOP_WORDS, words
from digest.values import PaperText, TopicQuery

PAPERS = 150
POOL = 3000
MAX_PAPERS = 10

POPULAR = [
    "large language models",
    "diffusion models",
    "LLM quantization",
    "KV cache compression",
    "speculative decoding",
    "reinforcement learning",
    "differential privacy",
    "graph neural networks",
    "vision language models",
    "mixture of experts",
    "neural operators PDE",
    "federated learning",
    "chain of thought reasoning",
    "retrieval augmented generation",
    "optimal transport",
    "bandit algorithms",
    "speech recognition",
    "code generation",
    "protein structure prediction",
    "test-time adaptation",
]


def topic_pool(papers: list[PaperText], rng: random.Random) -> list[str]:
    """Popular topics first, then 2-4 word runs from titles (what readers type)."""
    pool = list(POPULAR)
    seen = set(pool)
    runs = []
    for paper in papers:
        title = [w for w in words(paper.title) if w not in STOP_WORDS and not w.isdigit()]
        for size in (2, 3, 4):
            runs.extend(" ".join(title[i : i + size]) for i in range(len(title) - size + 1))
    rng.shuffle(runs)
    for run in runs:
        if run not in seen:
            seen.add(run)
            pool.append(run)
        if len(pool) >= POOL:
            break
    return pool


def subscribers(pool: list[str], count: int, rng: random.Random) -> list[list[str]]:
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pool))]
    out = []
    for _ in range(count):
        k = rng.choice((1, 1, 2, 2, 3))
        out.append(list(dict.fromkeys(rng.choices(pool, weights, k=k))))
    return out


def load_topics(subs: list[list[str]]) -> tuple[list[list[TopicQuery]], float]:
    """What the planner hands to scoring: each subscriber's topics, parsed once per text."""
    start = time.process_time()
    parsed = lru_cache(maxsize=None)(parse)
    loaded = []
    topic_id = 0
    for texts in subs:
        topics = []
        for text in texts:
            topic_id += 1
            topics.append(TopicQuery(topic_id, text, parsed(text)))
        loaded.append(topics)
    return loaded, time.process_time() - start


def run_digest(
    papers: list[PaperText], subs: list[list[TopicQuery]], *, pause_collector: bool = True
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, papers picked): index build + every subscriber's selection."""
    wall, cpu = time.perf_counter(), time.process_time()
    selector = Selector(PaperIndex(papers, ScoringSettings()))
    picked = 0
    with collector_paused() if pause_collector else nullcontext():
        for topics in subs:
            picked += len(selector.select(topics, max_papers=MAX_PAPERS))
    return time.perf_counter() - wall, time.process_time() - cpu, picked


def phase_seconds(papers: list[PaperText], subs: list[list[TopicQuery]]) -> dict[str, float]:
    """CPU seconds of one run_digest, phase by phase (collector paused): the index build,
    the first search of each distinct filter, every subscriber's selection (merging
    their filters' hits), and the same selections again, now all memoised (what
    handing each subscriber their own picks costs)."""
    distinct = list({id(t.query): t.query for topics in subs for t in topics}.values())
    marks = [time.process_time()]
    with collector_paused():
        index = PaperIndex(papers, ScoringSettings())
        selector = Selector(index)
        marks.append(time.process_time())
        for query in distinct:
            index.search(query)
        marks.append(time.process_time())
        for _ in range(2):
            for topics in subs:
                selector.select(topics, max_papers=MAX_PAPERS)
            marks.append(time.process_time())
    names = ("index_build", "filters", "selections", "picks_memoised")
    return {n: end - start for n, start, end in zip(names, marks[:-1], marks[1:], strict=True)}


def index_build_seconds(repeats: int) -> dict[str, float]:
    """CPU seconds to build a PaperIndex over all 268 sample papers (what a planning tick,
    `digest match` and `digest preview` pay first). The first build in a process also
    analyses every distinct word (cached afterwards), so both are reported."""
    papers = sample_papers()
    times = []
    for _ in range(repeats + 1):
        start = time.process_time()
        PaperIndex(papers, ScoringSettings())
        times.append(time.process_time() - start)
    return {
        "papers": len(papers),
        "first_cpu_seconds": round(times[0], 3),
        "warm_cpu_seconds_median": round(statistics.median(times[1:]), 3),
    }


def run_naive(papers: list[PaperText], subs: list[list[str]]) -> float:
    texts = [(p.paper_id, (p.title + " " + p.abstract).lower()) for p in papers]
    start = time.process_time()
    for topics in subs:
        scored = []
        for topic in topics:
            terms = [w for w in words(topic) if w not in STOP_WORDS]
            for paper_id, text in texts:
                if all(term in text for term in terms):
                    scored.append((sum(text.count(term) for term in terms), paper_id))
        scored.sort(reverse=True)
        _ = scored[:MAX_PAPERS]
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-sample", type=int, default=2_000)
    args = parser.parse_args()
    build = index_build_seconds(args.repeats)
    rng = random.Random(7)
    papers = [
        PaperText(p.paper_id, p.title, p.abstract, (), rng.choice((None, 0, 3, 12, 40, 150)))
        for p in sample_papers()[:PAPERS]
    ]
    pool = topic_pool(papers, rng)
    subs = subscribers(pool, args.subscribers, rng)
    loaded, load_seconds = load_topics(subs)
    distinct = len({id(t.query) for topics in loaded for t in topics})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    walls, cpus, walls_collector_on, picked = [], [], [], 0
    for _ in range(args.repeats):  # alternating, so both see the same machine
        wall, cpu, picked = run_digest(papers, loaded)
        walls.append(wall)
        cpus.append(cpu)
        walls_collector_on.append(run_digest(papers, loaded, pause_collector=False)[0])
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    phases = [phase_seconds(papers, loaded) for _ in range(args.repeats)]
    sample = subs[: args.naive_sample]
    naive = statistics.median(run_naive(papers, sample) for _ in range(args.repeats))
    naive_per_second = len(sample) / naive
    median = statistics.median(walls)
    cpu_median = statistics.median(cpus)
    result = {
        "papers": len(papers),
        "subscribers": len(subs),
        "topics": sum(len(t) for t in subs),
        "distinct_filters": distinct,
        "distinct_combinations": len({tuple(id(t.query) for t in topics) for topics in loaded}),
        "picks": picked,
        "index_build_268_papers": build,
        "parse_and_load_cpu_seconds": round(load_seconds, 3),
        "seconds_median": round(median, 3),
        "cpu_seconds_median": round(cpu_median, 3),
        "seconds_all": [round(t, 3) for t in walls],
        "seconds_median_collector_running": round(statistics.median(walls_collector_on), 3),
        "phases_cpu_seconds_median": {
            name: round(statistics.median(p[name] for p in phases), 3) for name in phases[0]
        },
        "subscribers_per_second": round(len(subs) / median),
        "subscribers_per_cpu_second": round(len(subs) / cpu_median),
        "naive_subscribers_per_cpu_second": round(naive_per_second),
        "naive_cpu_seconds_extrapolated": round(len(subs) / naive_per_second, 1),
        "speedup_vs_naive_cpu": round(len(subs) / cpu_median / naive_per_second, 1),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "rss_growth_during_scoring_mb": round((rss_after - rss_before) / 1024, 1),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
