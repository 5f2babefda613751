"""Kill the sender at random moments and check what a rerun sends twice.

    PYTHONPATH=. python bench/crash.py [--digests 2000] [--kills 10] [--mode send|run|term]

Sets up one outbox (the bundled dumps ingested, N generated subscribers
imported with `digest import`, their digests recorded with `digest plan`),
then for each trial, on a fresh copy of it:

- `send`: starts `digest send`, SIGKILLs it once the SMTP server (aiosmtpd on
  127.0.0.1, in this process, recording every message's recipient and
  Message-ID) has received a random share (5-95 %) of the digests, then runs
  `digest retry --stale` and `digest send` again;
- `run`: the same with `digest run` (its first tick delivers) as the victim;
- `term`: `digest run` gets SIGTERM instead, and a `digest send` is started
  at the same moment, beside the daemon still shutting down.

Each trial checks that every digest ended `sent`, that every reader got their
digest (0 lost), that the messages received more than once are at most
`crash_bound(concurrency)` (what the outbox promises: messages handed to the
server whose outcome was not yet committed), and that every copy of a message
carries its first copy's Message-ID. Prints one JSON line per trial and a
summary; exits 1 if any trial broke a promise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.outbox import crash_bound  # noqa: E402
from tests.smtpd import FaultyHandler, smtp_server  # noqa: E402

CHECKOUT = ROOT  # whose `digest` runs (--root: a baseline checkout)
TOPICS = ["diffusion", "language models", "reinforcement learning", "reasoning", "video", "agents"]


def digest(env: dict[str, str], *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "digest", *args], env=env, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise SystemExit(f"digest {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def environment(folder: Path, port: int, concurrency: int) -> dict[str, str]:
    config = folder / "config.toml"
    config.write_text(
        f'database_url = "sqlite:///{folder / "digest.db"}"\n'
        f'dumps_dir = "{folder / "dumps"}"\n'
        "[schedule]\ntick_seconds = 0.5\n"
        f'[delivery]\nbackend = "smtp"\nconcurrency = {concurrency}\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        '[sender]\naddress = "papers@digest.test"\n'
        f'[web]\nsecret = "crash-bench-{"x" * 40}"\n'
        '[semantic]\nenabled = "off"\n'
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return {**keep, "DIGEST_CONFIG": str(config), "PYTHONPATH": str(CHECKOUT)}


def set_up(folder: Path, env: dict[str, str], count: int, now: datetime) -> int:
    """Ingest, import `count` readers due at midnight UTC, plan; how many digests to send."""
    (folder / "dumps").mkdir()
    digest(env, "db", "upgrade")
    dumps = sorted(str(p) for p in (ROOT / "examples" / "dumps").glob("*.txt"))
    digest(env, "ingest", *dumps, str(ROOT / "examples" / "hf_daily_papers.json"))
    rng = random.Random(5)
    with (folder / "readers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "topics", "timezone", "hour", "frequency"])
        for i in range(count):
            topics = "; ".join(rng.sample(TOPICS, rng.randint(1, 2)))
            writer.writerow([f"reader{i}@example.org", topics, "UTC", 0, "daily"])
    digest(env, "import", str(folder / "readers.csv"), "--confirmed")
    digest(env, "plan", "--now", now.isoformat())
    pending = statuses(folder)["pending"]
    if not pending:
        raise SystemExit(f"digest plan recorded no digest to send: {dict(statuses(folder))}")
    return pending


def statuses(folder: Path) -> Counter[str]:
    import sqlite3

    with sqlite3.connect(folder / "digest.db") as connection:
        rows = connection.execute("SELECT status, count(*) FROM digests GROUP BY status")
        return Counter(dict(rows.fetchall()))


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def trial(
    mode: str, template: Path, folder: Path, concurrency: int, share: float, now: datetime
) -> dict[str, Any]:
    later = (now + timedelta(hours=1)).isoformat()  # past any lease the victim took
    shutil.copytree(template, folder)
    expected = statuses(folder)["pending"]
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        env = environment(folder, port, concurrency)
        command = ("send", "--now", now.isoformat()) if mode == "send" else ("run",)
        victim = start(env, *command)
        target = int(expected * share)
        deadline = time.monotonic() + 120
        while len(handler.received) < target and victim.poll() is None:
            if time.monotonic() > deadline:
                raise SystemExit("the sender is too slow to reach its kill point")
            time.sleep(0.002)
        at = len(handler.received)
        if mode == "term":
            victim.send_signal(signal.SIGTERM)
            beside = start(env, "send", "--now", now.isoformat())  # while the daemon shuts down
            beside.wait()
        else:
            victim.send_signal(signal.SIGKILL)
        victim.wait()
        # --stale is what an operator runs after a crash; a checkout before it has
        # none, and the rerun comes after the lease anyway
        digest(env, "retry", "--stale", "--now", now.isoformat(), check=False)
        digest(env, "send", "--now", later, check=False)
    final = statuses(folder)
    ids: dict[str, set[str]] = defaultdict(set)
    copies: Counter[str] = Counter()
    for address, message_id in handler.received:
        ids[address].add(message_id)
        copies[address] += 1
    duplicates = sum(n - 1 for n in copies.values())
    shutil.rmtree(folder)
    return {
        "mode": mode,
        "digests": expected,
        "killed_at": at,
        "lost": expected - len(copies),
        "duplicates": duplicates,
        "changed_message_id": sum(1 for found in ids.values() if len(found) > 1),
        "final": dict(final),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--digests", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--mode", choices=["send", "run", "term"], default="send")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--root", type=Path, default=ROOT, help="run another checkout's digest")
    args = parser.parse_args()
    global CHECKOUT
    CHECKOUT = args.root.resolve()
    rng = random.Random(args.seed)
    # readers joining today get their first digest at the next midnight (UTC)
    now = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), dt_time(0, 30), UTC)
    bound = crash_bound(args.concurrency)
    base = Path(tempfile.mkdtemp(prefix="digest-crash-"))
    template = base / "template"
    template.mkdir()
    try:
        expected = set_up(template, environment(template, 25, args.concurrency), args.digests, now)
        print(json.dumps({"digests": expected, "bound": bound, "mode": args.mode}), flush=True)
        broken = 0
        results = []
        for n in range(args.kills):
            share = rng.uniform(0.05, 0.95)
            result = trial(args.mode, template, base / f"t{n}", args.concurrency, share, now)
            result["ok"] = (
                result["lost"] == 0
                and result["duplicates"] <= bound
                and result["changed_message_id"] == 0
                and set(result["final"]) <= {"sent", "skipped"}
            )
            broken += not result["ok"]
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    dups = sorted(r["duplicates"] for r in results)
    summary = {
        "mode": args.mode,
        "trials": len(results),
        "bound": bound,
        "duplicates_max": dups[-1],
        "duplicates_median": dups[len(dups) // 2],
        "lost_total": sum(r["lost"] for r in results),
        "broken_trials": broken,
    }
    print(json.dumps(summary))
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
