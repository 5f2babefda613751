"""How fast digest hands mail to an SMTP server, next to a naive baseline, in one run.

    python bench/deliver.py [--messages 5000] [--size-kb 42] [--concurrency 16] [--processes 2]

The server is Postfix's `smtp-sink`, which accepts and discards mail at almost
no cost, so the sender is what is measured (aiosmtpd tops out near 1,000
messages/s on a small machine and would measure itself). It is found as
$SMTP_SINK, on PATH, at /usr/sbin/smtp-sink, or unpacked from Debian's
`postfix` package (`apt-get download postfix && dpkg -x`) into
~/.cache/digest-bench without installing the MTA.

Rows (messages/s and CPU milliseconds per message, medians of --repeat runs):
- naive: smtplib, one new connection per message (what a first script does);
- smtp_mailer: digest's SmtpMailer, one process, `concurrency` reused connections;
- smtp_mailer_processes: the same split over `processes` worker processes, as
  several `digest send` workers would run;
- outbox_sqlite: the whole outbox as `digest send` runs it (claim, build,
  send, record in a SQLite file) with a `build` that returns ready bytes, to
  show what the bookkeeping costs on top of sending;
- outbox_postgresql, with --database-url postgresql+psycopg://... (an empty
  database; its tables are replaced): the same on PostgreSQL. Several
  senders on one outbox are measured end to end by `bench/e2e.py
  --processes 2`.

Speed-ups are given against the naive median and, more conservatively,
against the naive row's best repeat: one new TCP connection per message makes
that row the most sensitive to the machine's state (its rate has ranged from
~250 to ~650 messages/s here between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.orm import Session

from digest.config import DeliverySettings, Settings
from digest.mail import Outcome, OutgoingMessage, SmtpMailer
from digest.outbox import Build, ClaimedDigest, deliver_due
from digest.store.database import Store, open_store
from digest.store.schema import Digest, Subscriber

CACHE = Path.home() / ".cache" / "digest-bench" / "postfix"
WORDS = [
    "attention",
    "transformer",
    "diffusion",
    "retrieval",
    "agent",
    "benchmark",
    "reasoning",
    "scaling",
    "sparse",
    "alignment",
    "multimodal",
    "vision",
    "language",
    "robot",
    "policy",
    "reward",
    "graph",
    "protein",
    "kernel",
]


def find_sink() -> tuple[Path, dict[str, str]]:
    """The smtp-sink binary and the environment it needs (its shared libraries)."""
    env = dict(os.environ)
    for candidate in (
        os.environ.get("SMTP_SINK"),
        shutil.which("smtp-sink"),
        "/usr/sbin/smtp-sink",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate), env
    binary = CACHE / "usr/sbin/smtp-sink"
    if not binary.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(
                ["apt-get", "download", "postfix"], cwd=scratch, check=True, stdout=sys.stderr
            )
            (deb,) = Path(scratch).glob("postfix_*.deb")
            subprocess.run(["dpkg", "-x", str(deb), str(CACHE)], check=True)
    env["LD_LIBRARY_PATH"] = str(CACHE / "usr/lib/postfix")
    return binary, env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary, env = find_sink()
    port = free_port()
    command = [str(binary), "-m", "512", f"127.0.0.1:{port}", "1024"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink, port
        except OSError:
            if time.monotonic() > deadline or sink.poll() is not None:
                raise SystemExit(f"smtp-sink did not start on port {port}") from None
            time.sleep(0.05)


_BODIES: dict[int, bytes] = {}


def make_messages(stop: int, size_kb: int, start: int = 0) -> list[OutgoingMessage]:
    """Messages start..stop-1: digest-sized (CRLF, ~size_kb KB), distinct headers."""
    if size_kb not in _BODIES:
        rng = random.Random(7)
        lines, size = [], 0
        while size < size_kb * 1024 - 300:  # ~300 bytes of headers
            line = " ".join(rng.choice(WORDS) for _ in range(9))[:74]
            lines.append(line)
            size += len(line) + 2
        _BODIES[size_kb] = ("\r\n".join(lines) + "\r\n").encode()
    body = _BODIES[size_kb]
    messages = []
    for i in range(start, stop):
        recipient = f"reader{i}@example.org"
        head = (
            f"From: Paper digest <digest@example.org>\r\nTo: {recipient}\r\n"
            f"Subject: Your papers for 2026-11-22\r\nMessage-ID: <bench.{i}@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        )
        messages.append(
            OutgoingMessage(i, "digest@example.org", recipient, f"<{i}>", head.encode() + body)
        )
    return messages


def cpu_seconds() -> float:
    """CPU time of this process (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def process_cpu(pid: int) -> float:
    """CPU time of another process (the sink), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_naive(port: int, messages: list[OutgoingMessage]) -> tuple[int, float]:
    for message in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(message.sender, [message.recipient], message.data)
    return len(messages), 0.0


def run_mailer(port: int, messages: list[OutgoingMessage], concurrency: int) -> int:
    """digest's SmtpMailer over `concurrency` reused connections; returns messages sent."""
    outcomes: list[Outcome] = []
    mailer = SmtpMailer(
        host="127.0.0.1", port=port, security="none", concurrency=concurrency, timeout=30
    )
    asyncio.run(mailer.send(messages, outcomes.append))
    sent = sum(1 for o in outcomes if o.status == "sent")
    if sent != len(messages):
        raise SystemExit(f"only {sent} of {len(messages)} sent: {outcomes[-1]}")
    return sent


def _mailer_part(args: tuple[int, int, int, int, int]) -> tuple[int, float]:
    """One worker process's share; returns (messages sent, CPU seconds it used)."""
    port, start, stop, size_kb, concurrency = args
    messages = make_messages(stop, size_kb, start)
    cpu0 = time.process_time()
    sent = run_mailer(port, messages, concurrency)
    return sent, time.process_time() - cpu0


def run_processes(
    port: int, count: int, size_kb: int, concurrency: int, processes: int, pool: ProcessPoolExecutor
) -> tuple[int, float]:
    bounds = [count * k // processes for k in range(processes + 1)]
    parts = [
        (port, bounds[k], bounds[k + 1], size_kb, max(1, concurrency // processes))
        for k in range(processes)
    ]
    results = list(pool.map(_mailer_part, parts))
    return sum(sent for sent, _ in results), sum(cpu for _, cpu in results)


def outbox_store(count: int, size_kb: int, url: str) -> tuple[Store, Build]:
    """An outbox at `url` holding `count` pending digests, and a build for them."""
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    store = open_store(url)
    now = datetime.now(UTC)
    with store.transaction() as session:
        session.execute(
            insert(Subscriber),
            [
                dict(
                    email=f"reader{i}@example.org",
                    status="active",
                    created_at=now,
                    subscribed_at=now,
                    updated_at=now,
                )
                for i in range(count)
            ],
        )
        session.execute(
            insert(Digest),
            [
                dict(
                    subscriber_id=i + 1,
                    period="2026-11-22",
                    message_id=f"<bench.{i}@x>",
                    planned_at=now,
                    window_start=now,
                )
                for i in range(count)
            ],
        )
    prepared = {m.recipient: m.data for m in make_messages(count, size_kb)}

    def build(session: Session, digest: ClaimedDigest) -> bytes:
        return prepared[digest.email]

    return store, build


def run_outbox(port: int, store: Store, build: Build, concurrency: int) -> tuple[int, float]:
    """The outbox as `digest send` runs it, in this process (no child CPU to add)."""
    with store.transaction() as session:  # every digest pending again
        session.execute(update(Digest).values(status="pending", sent_at=None, attempts=0))
    settings = Settings(delivery=DeliverySettings(backend="smtp", concurrency=concurrency))
    mailer = SmtpMailer(
        host="127.0.0.1", port=port, security="none", concurrency=concurrency, timeout=30
    )
    report = deliver_due(store, settings, mailer, build, now=datetime.now(UTC))
    if report.sent == 0 or report.retry or report.failed:
        raise SystemExit(f"outbox run went wrong: {report}")
    return report.sent, 0.0


def measure(
    runs: dict[str, Callable[[], tuple[int, float]]], repeat: int, sink: subprocess.Popen[bytes]
) -> dict[str, dict[str, float]]:
    """Median messages/s and CPU per message (ours, worker processes', and the sink's).

    The variants take turns within each repeat, so a noisy neighbour slows
    them all alike instead of whichever happened to run at the time.
    """
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            cpu0, sink0, t0 = cpu_seconds(), process_cpu(sink.pid), time.perf_counter()
            sent, worker_cpu = run()
            wall = time.perf_counter() - t0
            used = cpu_seconds() - cpu0 + worker_cpu
            sink_used = process_cpu(sink.pid) - sink0
            samples[name].append((sent / wall, used / sent * 1000, sink_used / sent * 1000))
    return {
        name: {
            "messages_per_s": round(statistics.median(s[0] for s in rows)),
            "best_messages_per_s": round(max(s[0] for s in rows)),
            "cpu_ms_per_message": round(statistics.median(s[1] for s in rows), 3),
            "sink_cpu_ms_per_message": round(statistics.median(s[2] for s in rows), 3),
        }
        for name, rows in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size-kb", type=int, default=42)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DIGEST_BENCH_DATABASE_URL", ""),
        help="an empty PostgreSQL database for the outbox_postgresql rows (replaced!)",
    )
    args = parser.parse_args()

    messages = make_messages(args.messages, args.size_kb)
    scratch = tempfile.TemporaryDirectory()
    store, build = outbox_store(
        args.messages, args.size_kb, f"sqlite:///{Path(scratch.name) / 'bench.db'}"
    )
    stores = [store]
    if args.database_url:
        pg_store, pg_build = outbox_store(args.messages, args.size_kb, args.database_url)
        stores.append(pg_store)
    sink, port = start_sink()
    try:
        with ProcessPoolExecutor(args.processes) as pool:
            list(pool.map(abs, range(args.processes)))  # start the workers before timing
            runs: dict[str, Callable[[], tuple[int, float]]] = {
                "naive": lambda: run_naive(port, messages),
                "smtp_mailer": lambda: (run_mailer(port, messages, args.concurrency), 0.0),
                "smtp_mailer_processes": lambda: run_processes(
                    port, args.messages, args.size_kb, args.concurrency, args.processes, pool
                ),
                "outbox_sqlite": lambda: run_outbox(port, store, build, args.concurrency),
            }
            if args.database_url:
                runs["outbox_postgresql"] = lambda: run_outbox(
                    port, pg_store, pg_build, args.concurrency
                )
            results = measure(runs, args.repeat, sink)
    finally:
        sink.terminate()
        sink.wait()
        for opened in stores:
            opened.dispose()
        scratch.cleanup()
    naive = results["naive"]["messages_per_s"]
    naive_best = results["naive"]["best_messages_per_s"]
    print(
        json.dumps(
            {
                "messages": args.messages,
                "message_bytes": len(messages[0].data),
                "concurrency": args.concurrency,
                "processes": args.processes,
                "cpus": os.cpu_count(),
                "results": results,
                "speedup_vs_naive": {
                    name: round(row["messages_per_s"] / naive, 2) for name, row in results.items()
                },
                "speedup_vs_naive_best": {
                    name: round(row["messages_per_s"] / naive_best, 2)
                    for name, row in results.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
