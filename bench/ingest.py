"""Benchmark: parse and parse+store a synthetic 10,000-paper page dump; prints JSON.

    PYTHONPATH=. python bench/ingest.py [--papers 10000] [--runs 5]

Targets (issue 3): >= 20,000 papers/s parse, >= 5,000 papers/s parse+store on
SQLite. Medians over the runs; baselines measured in the same run, because the
machine is shared and noisy:

* `split_baseline`: decoding and splitting the bytes into lines, the floor
  any parser pays;
* `orm_store_baseline`: storing the same parsed papers one ORM object at a
  time (`session.add_all`), what the Core bulk insert replaces.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from digest.ingest import store_dump
from digest.keys import paper_key, title_key
from digest.sources.textdump import parse_text_dump
from digest.store.database import open_store
from digest.store.schema import Dump, DumpPaper, Paper

WORDS = (  # noqa: SIM905
    "learning model models language large neural network networks training data efficient "
    "optimization gradient inference transformer attention diffusion reinforcement policy "
    "quantization sparse graph robust adversarial privacy federated bandits regret bound "
    "convergence stochastic kernel bayesian causal retrieval reasoning benchmark evaluation "
    "compression distillation pretraining generalization representation contrastive"
).split()
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def synthetic_dump(papers: int, seed: int = 7) -> bytes:
    """A page dump shaped like the real ones: headers, a date line, title/abstract pairs."""
    rng = random.Random(seed)
    lines = ["new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers"]
    lines += ["byAK and the research community", "Aug 11"]
    for n in range(papers):
        title = " ".join(w.capitalize() for w in rng.choices(WORDS, k=rng.randint(4, 14)))
        sentences = []
        for _ in range(rng.randint(5, 11)):
            words = rng.choices(WORDS, k=rng.randint(12, 30))
            sentences.append(" ".join(words).capitalize() + ".")
        lines += [f"{title} {n}", " ".join(sentences)]
    return ("\n\n".join(lines) + "\n").encode()


CPU: dict[str, list[float]] = {}


def timed(function: object, runs: int, label: str = "") -> list[float]:
    times = []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        CPU.setdefault(label, []).append(time.process_time() - cpu)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    data = synthetic_dump(args.papers)
    parsed = parse_text_dump(data, name="synthetic.txt")
    assert len(parsed.papers) == args.papers, len(parsed.papers)

    split = timed(lambda: data.decode("utf-8").split("\n"), args.runs)
    parse = timed(lambda: parse_text_dump(data, name="synthetic.txt"), args.runs, "parse")

    with tempfile.TemporaryDirectory() as tmp:
        stores: list[float] = []
        for run in range(args.runs):
            store = open_store(f"sqlite:///{Path(tmp) / f'bulk{run}.db'}")
            started, cpu = time.perf_counter(), time.process_time()
            result = store_dump(
                store,
                parse_text_dump(data, name="synthetic.txt"),
                sha256=hashlib.sha256(data).hexdigest(),
                source_ref="synthetic.txt",
                now=NOW,
            )
            stores.append(time.perf_counter() - started)
            CPU.setdefault("store", []).append(time.process_time() - cpu)
            assert result.new_papers == args.papers
            store.dispose()

        orm: list[float] = []
        for run in range(max(1, args.runs // 2)):
            store = open_store(f"sqlite:///{Path(tmp) / f'orm{run}.db'}")
            started = time.perf_counter()
            with store.transaction() as session:
                dump = Dump(
                    sha256="x",
                    source="text",
                    source_ref="x",
                    issue_date=NOW.date(),
                    ingested_at=NOW,
                )
                session.add(dump)
                rows = [
                    Paper(
                        key=paper_key(None, p.title),
                        title_key=title_key(p.title),
                        title=p.title,
                        abstract=p.abstract,
                        authors=[],
                        extra={},
                        first_seen=NOW,
                    )
                    for p in parse_text_dump(data, name="synthetic.txt").papers
                ]
                session.add_all(rows)
                session.flush()
                session.add_all(
                    DumpPaper(dump_id=dump.id, paper_id=row.id, position=i)
                    for i, row in enumerate(rows, start=1)
                )
            orm.append(time.perf_counter() - started)
            store.dispose()

    def rate(times: list[float]) -> float:
        return round(args.papers / statistics.median(times))

    out = {
        "papers": args.papers,
        "megabytes": round(len(data) / 1e6, 2),
        "runs": args.runs,
        "parse_papers_per_s": rate(parse),
        "parse_store_sqlite_papers_per_s": rate(stores),
        # CPU seconds of this process: what the rates would be on an idle machine
        # (the shared one runs ~8 test suites at once; wall-clock rates above)
        "parse_papers_per_cpu_s": rate(CPU["parse"]),
        "parse_store_sqlite_papers_per_cpu_s": rate(CPU["store"]),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "split_baseline_papers_per_s": rate(split),
        "orm_store_baseline_papers_per_s": rate(orm),
        "parse_vs_split_baseline": round(statistics.median(split) / statistics.median(parse), 3),
        "bulk_vs_orm_speedup": round(statistics.median(orm) / statistics.median(stores), 2),
        "targets": {"parse_papers_per_s": 20_000, "parse_store_sqlite_papers_per_s": 5_000},
    }
    out["meets_targets"] = (
        out["parse_papers_per_s"] >= 20_000 and out["parse_store_sqlite_papers_per_s"] >= 5_000
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
