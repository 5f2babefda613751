"""The whole send path as an operator runs it, next to a naive pipeline, in one run.

    PYTHONPATH=. python bench/e2e.py [--subscribers 2000] [--database-url URL]

In a fresh folder: ingest the bundled dumps (`digest ingest`), import N
generated subscribers (1-3 topics each from a pool of common topics, all due
at the same hour) through `digest import`, record their digests (`digest
plan`), deliver them (`digest send`) into Postfix's `smtp-sink` on 127.0.0.1
(found or unpacked as `bench/deliver.py` does), and check that every digest
ended `sent`. `--processes N` runs N `digest send` at once; `--plan-in-send`
leaves out the separate `digest plan`, so the senders plan as well (one plans,
the others send what it records), as `digest send` and `digest run` do in
production. Each command runs as its own process, as an operator would run
it; its wall time and peak RSS are measured.

The naive pipeline, measured in the same run on a sample of the same digests:
per digest, ORM loads of the digest, its items, papers, subscriber and topics;
the template rendered with a plain <style> block and the CSS inlined per email
(premailer); the stdlib's EmailMessage; a new smtplib connection per message.

Prints JSON: subscribers/s for plan, digests sent/s for send (render + send +
record) and for the two together, import rows/s, wall and CPU seconds and peak
RSS of each command, the naive rate and the ratio (readers whose topics matched
nothing get a `skipped` period and no email). `--database-url
postgresql+psycopg://...` runs it on an (emptied) PostgreSQL database instead of
a SQLite file; `--semantic` ingests with the semantic signal on (its embedding
time is part of the ingest figure).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from deliver import process_cpu, start_sink  # noqa: E402  (a sibling bench script)

TOPICS = [
    "diffusion models", "large language models", "reinforcement learning", "KV cache",
    "speculative decoding", "code generation", "mathematical reasoning", "quantization",
    "optical flow", "speech recognition", "differential privacy", "graph neural networks",
    "scaling laws", "preference optimization", "test-time adaptation", "multi-armed bandits",
    "retrieval augmented generation", "mixture of experts", "vision language models",
    "image generation", "video generation", "robotics", "federated learning", "reward models",
    "chain of thought", "long context", "instruction tuning", "knowledge distillation",
    "pruning", "uncertainty quantification", "optimal transport", "online learning",
    "agents", "benchmarks", "synthetic data", "neural PDE solvers",
]  # fmt: skip
NAIVE_SAMPLE = 200


def subscribers_csv(path: Path, count: int, seed: int = 17) -> None:
    """`count` readers in UTC, daily at 08:00, with 1-3 topics drawn from TOPICS."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "topics", "timezone", "hour", "frequency"])
        for i in range(count):
            topics = rng.sample(TOPICS, rng.randint(1, 3))
            writer.writerow([f"reader{i}@example.org", "; ".join(topics), "UTC", 8, "daily"])


def run(env: dict[str, str], *args: str) -> dict[str, float]:
    """Run one `digest` command; its wall seconds, CPU seconds (user + system: steadier
    than wall time on a shared machine) and peak RSS (MB). Fails loudly."""
    folder = Path(env["E2E_FOLDER"])
    log = folder / f"{args[0]}.log"
    started = time.perf_counter()
    with log.open("wb") as output:  # a file, not a pipe: `plan` prints a line per reader
        process = subprocess.Popen(
            [sys.executable, "-m", "digest", *args],
            env=env,
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"digest {' '.join(args)} failed:\n{log.read_text()[-2000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def run_together(env: dict[str, str], count: int, *args: str) -> dict[str, float]:
    """`count` copies of one `digest` command at once (independent senders sharing the
    outbox); wall seconds until the last ends, their CPU seconds together, and the
    largest peak RSS (MB)."""
    if count == 1:
        return run(env, *args)
    folder = Path(env["E2E_FOLDER"])
    started = time.perf_counter()
    processes = []
    for n in range(count):
        with (folder / f"{args[0]}-{n}.log").open("wb") as output:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "digest", *args],
                    env=env,
                    cwd=folder,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    peak = 0
    cpu = 0.0
    for n, process in enumerate(processes):
        _, status, usage = os.wait4(process.pid, 0)
        peak = max(peak, usage.ru_maxrss)
        cpu += usage.ru_utime + usage.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            log = (folder / f"{args[0]}-{n}.log").read_text()[-2000:]
            raise SystemExit(f"digest {' '.join(args)} #{n} failed:\n{log}")
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(peak / 1024, 1),
    }


def statuses(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from digest.store.database import open_store
    from digest.store.schema import Digest

    with open_store(database_url) as store, store.sessions() as session:
        rows = session.execute(select(Digest.status, func.count()).group_by(Digest.status))
        return {status: count for status, count in rows}


def naive_rate(database_url: str, port: int, sample: int) -> float:
    """Digests per second of the naive pipeline over `sample` recorded digests."""
    import premailer
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from digest.config import Settings
    from digest.email.render import Renderer
    from digest.outbox import paper_url
    from digest.store.database import open_store
    from digest.store.schema import Digest, DigestItem, Subscriber
    from digest.values import DigestView, PaperCard
    from tests.stdlib_message import build_email_message

    renderer = Renderer(Settings(), inline_css=False)
    with open_store(database_url) as store, store.sessions() as session:
        ids = list(session.scalars(select(Digest.id).order_by(Digest.id).limit(sample)))
        started = time.perf_counter()
        for digest_id in ids:
            digest = session.scalars(
                select(Digest)
                .where(Digest.id == digest_id)
                .options(
                    selectinload(Digest.items).selectinload(DigestItem.paper),
                    selectinload(Digest.subscriber).selectinload(Subscriber.topics),
                )
            ).one()
            view = DigestView(
                email=digest.subscriber.email,
                period=digest.period,
                issued_at=digest.planned_at,
                message_id=digest.message_id,
                topics=tuple(t.label or t.query for t in digest.subscriber.topics),
                papers=tuple(
                    PaperCard(
                        title=item.paper.title,
                        url=paper_url(item.paper.arxiv_id, item.paper.title),
                        abstract=item.paper.abstract,
                        authors=tuple(item.paper.authors),
                        topic_label=item.topic_label,
                        score=item.score,
                        arxiv_id=item.paper.arxiv_id,
                    )
                    for item in sorted(digest.items, key=lambda i: i.rank)
                ),
                unsubscribe_url="https://example.org/u/x",
                manage_url="https://example.org/m/x",
            )
            html = premailer.Premailer(
                renderer.html(view),
                disable_validation=True,
                cssutils_logging_level=logging.CRITICAL,
            ).transform()
            data = build_email_message(renderer.envelope(view), renderer.text(view), html)
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.sendmail("digest@localhost", [view.email], data.as_bytes())
        seconds = time.perf_counter() - started
    return len(ids) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a SQLite file in the bench folder")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--semantic", action="store_true", help="ingest with the signal on")
    parser.add_argument("--keep", action="store_true", help="keep the bench folder")
    parser.add_argument(
        "--processes", type=int, default=1, help="independent `digest send` processes at once"
    )
    parser.add_argument(
        "--plan-in-send",
        action="store_true",
        help="no `digest plan` first: the `digest send` processes plan (one of them, while "
        "the others send what it records) and send, as in production; plan + send is then "
        "their wall time",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="run the digest commands of another checkout (a baseline for the same run)",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="digest-e2e-"))
    database_url = args.database_url or f"sqlite:///{folder / 'digest.db'}"
    if args.database_url:
        from tests.conftest import _reset_postgres

        _reset_postgres(args.database_url)
    sink, port = start_sink()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")},
        "E2E_FOLDER": str(folder),
        "PYTHONPATH": str(args.root.resolve()),
        "DIGEST_CONFIG": str(folder / "none.toml"),
        "DIGEST_DATABASE_URL": database_url,
        "DIGEST_DELIVERY__BACKEND": "smtp",
        "DIGEST_DELIVERY__CONCURRENCY": str(args.concurrency),
        "DIGEST_SMTP__HOST": "127.0.0.1",
        "DIGEST_SMTP__PORT": str(port),
        "DIGEST_SMTP__SECURITY": "none",
        "DIGEST_WEB__SECRET": "e2e-bench-secret-" + "x" * 32,
    }
    if (args.root / "digest" / "semantic").is_dir():  # a checkout before it has no such section
        env["DIGEST_SEMANTIC__ENABLED"] = "auto" if args.semantic else "off"
    (folder / "none.toml").write_text("")
    try:
        run(env, "db", "upgrade")  # the only command that creates a database
        dumps = sorted(str(p) for p in (ROOT / "examples" / "dumps").glob("*.txt"))
        ingest = run(env, "ingest", *dumps, str(ROOT / "examples" / "hf_daily_papers.json"))
        subscribers_csv(folder / "subscribers.csv", args.subscribers)
        imported = run(env, "import", str(folder / "subscribers.csv"), "--confirmed")
        send_at = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), day_time(9), UTC)
        planned = None if args.plan_in_send else run(env, "plan", "--now", send_at.isoformat())
        sent = run_together(env, args.processes, "send", "--now", send_at.isoformat())
        # the sink runs on the same cores as the senders: its share is part of the cost
        sink_cpu = round(process_cpu(sink.pid), 2)
        outcome = statuses(database_url)
        # a reader whose topics matched nothing has a `skipped` period: nothing to send
        if not outcome.get("sent") or set(outcome) - {"sent", "skipped"}:
            raise SystemExit(f"not every digest was sent: {outcome}")
        naive = naive_rate(database_url, port, min(NAIVE_SAMPLE, args.subscribers))
    finally:
        sink.terminate()
        sink.wait()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    n = args.subscribers
    total = sent["seconds"] + (planned["seconds"] if planned else 0)
    report: dict[str, Any] = {
        "subscribers": n,
        "checkout": str(args.root.resolve()),
        "database": "postgresql" if args.database_url else "sqlite",
        "processes": args.processes,
        "ingest": ingest,
        "import": {**imported, "rows_per_s": round(n / imported["seconds"])},
        "plan": {**planned, "digests_per_s": round(n / planned["seconds"])}
        if planned
        else "in send",
        "send": {
            **sent,
            "digests_per_s": round(outcome["sent"] / sent["seconds"]),
            "sink_cpu_seconds": sink_cpu,
        },
        "plan_and_send": {
            "seconds": round(total, 2),
            "subscribers_per_s": round(n / total),
            "digests_sent_per_s": round(outcome["sent"] / total),
        },
        "naive": {"sample": min(NAIVE_SAMPLE, n), "digests_per_s": round(naive, 1)},
        "vs_naive": round((outcome["sent"] / total) / naive, 1),
        "outcome": outcome,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
