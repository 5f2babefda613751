"""`digest send --now T` end to end: ingest, plan, render, deliver to a real Maildir.

What a subscriber would notice: how many digests arrive for which local date,
and that no paper arrives twice, whichever dump or source it came from.
"""

from __future__ import annotations

import email
import json
import mailbox
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.store.database import Store, open_store
from digest.store.job_runs import record_run, record_seen
from digest.store.schema import Digest, Dump, DumpPaper, Paper
from tests.conftest import DATA, invoke, wait_for


@pytest.fixture
def send_config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'dumps_dir = "{tmp_path / "dumps"}"\n'
        '[delivery]\nbackend = "maildir"\n'
        f'maildir_path = "{tmp_path / "maildir"}"\n'
        '[sender]\naddress = "papers@digest.test"\n'
        '[web]\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
    )
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    return path


def utc(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def subscribe(cli: CliRunner, address: str, zone: str, hour: int, topic: str, at: str) -> None:
    code, out, err = invoke(
        cli,
        *("subscribe", address, "--topic", topic, "--timezone", zone),
        *("--hour", str(hour), "--confirmed", "--now", at),
    )
    assert code == 0, out + err


def ingest(cli: CliRunner, path: Path, at: str) -> None:
    code, out, err = invoke(cli, "ingest", str(path), "--now", at)
    assert code == 0, out + err


def send(cli: CliRunner, at: str) -> str:
    code, out, err = invoke(cli, "send", "--now", at)
    assert code == 0, out + err
    return out


def inbox(tmp_path: Path) -> list[Message]:
    box = mailbox.Maildir(tmp_path / "maildir", create=True)
    return [email.message_from_bytes(box.get_bytes(key)) for key in box.iterkeys()]


def periods(database_url: str) -> list[tuple[str, str]]:
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            rows = session.execute(select(Digest.period, Digest.status).order_by(Digest.id))
            return [(period, status) for period, status in rows]
    finally:
        store.dispose()


def plain_text(message: Message) -> str:
    return "".join(
        part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )


# A topic the four sample dumps match every time (each lists language-model papers).
TOPIC = "language OR LLM OR LLMs"

# (instant in UTC, what Berlin's clock says) through both 2026 transitions, send hour 2.
SPRING = [
    ("2026-03-28T23:30", "00:30 CET, before the send hour"),
    ("2026-03-29T00:59", "01:59 CET, a minute before the gap"),
    ("2026-03-29T01:00", "03:00 CEST, the first instant after 02:00 CET: due"),
    ("2026-03-29T01:30", "03:30 CEST, already sent"),
    ("2026-03-29T21:59", "23:59 CEST, still the same local date"),
    ("2026-03-29T22:30", "00:30 CEST on the 30th, before the send hour"),
    ("2026-03-30T00:00", "02:00 CEST on the 30th: due"),
    ("2026-03-30T06:00", "08:00 CEST on the 30th, already sent"),
]
AUTUMN = [
    ("2026-10-24T23:30", "01:30 CEST, before the send hour"),
    ("2026-10-25T00:00", "02:00 CEST, the first 02:00: due"),
    ("2026-10-25T00:30", "02:30 CEST"),
    ("2026-10-25T01:00", "02:00 CET, the repeated hour: not again"),
    ("2026-10-25T01:30", "02:30 CET"),
    ("2026-10-25T22:59", "23:59 CET, still the same local date"),
    ("2026-10-25T23:30", "00:30 CET on the 26th"),
    ("2026-10-26T01:00", "02:00 CET on the 26th: due"),
]


@pytest.mark.parametrize(
    ("instants", "days"),
    [(SPRING, ["2026-03-29", "2026-03-30"]), (AUTUMN, ["2026-10-25", "2026-10-26"])],
    ids=["spring-forward", "fall-back"],
)
def test_one_digest_per_berlin_date_across_dst(
    cli: CliRunner,
    send_config: Path,
    database_url: str,
    tmp_path: Path,
    instants: list[tuple[str, str]],
    days: list[str],
) -> None:
    first = utc(instants[0][0])
    subscribe(cli, "berlin@example.org", "Europe/Berlin", 2, TOPIC, at=utc("2026-03-01T00:00"))
    dumps = sorted((DATA / "dumps").glob("*.txt"))
    ingest(cli, dumps[0], at=first)
    sent_at: list[str] = []
    for index, (instant, what) in enumerate(instants):
        if instant.endswith("T22:30") or (instant.endswith("T23:30") and index > 2):
            ingest(cli, dumps[1], at=utc(instant))  # new papers for the next local date
        before = len(inbox(tmp_path))
        send(cli, utc(instant))
        if len(inbox(tmp_path)) > before:
            sent_at.append(what)
    assert [period for period, _ in periods(database_url)] == days
    assert {status for _, status in periods(database_url)} == {"sent"}
    assert len(inbox(tmp_path)) == 2
    assert all(what.endswith("due") for what in sent_at), sent_at


def test_catch_up_after_an_outage_is_one_digest_with_everything_new(
    cli: CliRunner, send_config: Path, database_url: str, tmp_path: Path
) -> None:
    subscribe(cli, "ny@example.org", "America/New_York", 8, TOPIC, at=utc("2026-10-30T00:00"))
    dumps = sorted((DATA / "dumps").glob("*.txt"))
    ingest(cli, dumps[0], at=utc("2026-10-31T10:00"))
    # The mailer is down from Oct 31 to the morning of Nov 3; dumps keep arriving
    # (and New York falls back on Nov 1).
    ingest(cli, dumps[1], at=utc("2026-11-01T10:00"))
    ingest(cli, dumps[2], at=utc("2026-11-02T10:00"))
    send(cli, utc("2026-11-03T12:59"))  # 07:59 EST: not yet
    assert inbox(tmp_path) == []
    send(cli, utc("2026-11-03T13:00"))  # 08:00 EST
    send(cli, utc("2026-11-03T18:00"))
    assert periods(database_url) == [("2026-11-03", "sent")]
    (message,) = inbox(tmp_path)
    assert message["To"] == "ny@example.org"
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            digest = session.scalars(select(Digest)).one()
            # the one digest draws on every dump of the outage (lookback is 7 days)
            assert digest.window_start <= datetime(2026, 10, 31, 10, tzinfo=UTC)
            listed = {
                paper_id
                for (paper_id,) in session.execute(
                    select(DumpPaper.paper_id).join(Dump).where(Dump.source_ref.contains("002_"))
                )
            }
            assert listed & {item.paper_id for item in digest.items}, "the last dump is missing"
    finally:
        store.dispose()


def test_a_paper_is_never_sent_twice_across_sources(
    cli: CliRunner, send_config: Path, database_url: str, tmp_path: Path
) -> None:
    """First seen title-only in a page dump, later in the HF list with its arXiv id."""
    hf_items = json.loads((DATA / "hf_daily_papers.json").read_text())
    known = [item["paper"] for item in hf_items[:3]]

    def page(day: str) -> Path:
        path = tmp_path / f"page-{day}.txt"
        path.write_text(
            "New\n\nGet trending papers in your email inbox!\n\nSubscribe\n\n"
            f"byAK and the research community\n\nJun {day}\n\n"
            + "".join(f"{paper['title']}\n\n{paper['summary']}\n\n" for paper in known)
        )
        return path

    subscribe(cli, "ada@example.org", "UTC", 8, "LLM OR LLMs OR agents", at=utc("2026-06-01T00:00"))
    ingest(cli, page("26"), at=utc("2026-06-26T06:00"))
    send(cli, utc("2026-06-26T08:00"))
    ingest(cli, DATA / "hf_daily_papers.json", at=utc("2026-06-27T06:00"))
    send(cli, utc("2026-06-27T08:00"))
    ingest(cli, page("28"), at=utc("2026-06-28T06:00"))  # a new page listing them again
    send(cli, utc("2026-06-28T08:00"))

    assert periods(database_url) == [
        ("2026-06-26", "sent"),
        ("2026-06-27", "sent"),
        ("2026-06-28", "skipped"),
    ]
    first, second = sorted(inbox(tmp_path), key=lambda m: str(m["Date"]))
    first_body, second_body = plain_text(first), plain_text(second)
    matched = [paper for paper in known if paper["title"][:40] in first_body]
    assert matched, "the page's papers should have matched the topic"
    for paper in matched:
        assert paper["title"][:40] not in second_body, f"sent twice: {paper['title']}"
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            for paper in known:  # one row each, now knowing its arXiv id
                rows = session.scalars(select(Paper.arxiv_id).where(Paper.title == paper["title"]))
                assert list(rows) == [paper["id"]]
    finally:
        store.dispose()


# --- the same under a shifted process clock (libfaketime): no hidden second clock ---

LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
needs_faketime = pytest.mark.skipif(
    LIBFAKETIME is None and not os.environ.get("CI"),
    reason="needs libfaketime (apt-get install faketime); CI installs it",
)


def faked_env(env: dict[str, str], start: str) -> dict[str, str]:
    """`env` with the process clock shifted so that it reads `start` (UTC) now.

    The library is preloaded directly rather than through the `faketime`
    wrapper, so that signals reach the Python process. Only the wall clock is
    shifted: Python's timed waits (threading, hence APScheduler) sleep on
    CLOCK_MONOTONIC deadlines in the kernel, which libfaketime does not see,
    so a faked monotonic clock makes them hang.
    """
    assert LIBFAKETIME is not None, "libfaketime is not installed (apt-get install faketime)"
    target = datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    return {
        **env,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": str(round(target - time.time())),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "TZ": "UTC",
    }


def shifted(start: str, *args: str, env: dict[str, str], timeout: float = 60) -> str:
    """Run `digest ARGS` with the process clock at `start` (UTC), without --now."""
    done = subprocess.run(
        [sys.executable, "-m", "digest", *args],
        env=faked_env(env, start),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_faketime
def test_send_and_run_under_a_shifted_clock_send_once_for_the_shifted_day(
    cli: CliRunner, send_config: Path, database_url: str, tmp_path: Path
) -> None:
    dumps_dir = tmp_path / "dumps"
    dumps_dir.mkdir()
    with send_config.open("a") as config:
        config.write(
            "[sources]\npoll_minutes = 0.02\nsettle_seconds = 0.2\n"
            "[schedule]\ntick_seconds = 0.5\nshutdown_timeout_seconds = 10.0\n"
        )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "DIGEST_CONFIG": str(send_config), "PYTHONPATH": root}
    subscribe(cli, "berlin@example.org", "Europe/Berlin", 2, TOPIC, at=utc("2026-03-01T00:00"))
    dumps = sorted((DATA / "dumps").glob("*.txt"))
    ingest(cli, dumps[0], at=utc("2026-03-28T20:00"))

    # 01:30 UTC is 03:30 CEST on the spring-forward day: due (02:00 did not exist).
    out = shifted("2026-03-29 01:30:00", "send", env=env)
    assert "sent 1," in out
    assert "sent 0," in shifted("2026-03-29 05:00:00", "send", env=env)
    assert periods(database_url) == [("2026-03-29", "sent")]

    # The daemon, its clock on the next morning, finds a dump dropped into the
    # folder (whose mtime is the real "now", far later than the shifted clock).
    shutil.copy(dumps[1], dumps_dir / "next.txt")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "digest", "run"],
        env=faked_env(env, "2026-03-30 00:30:00"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        arrived = wait_for(lambda: len(inbox(tmp_path)) >= 2, timeout=30)
        time.sleep(1.5)  # a few more ticks: nothing more may go out
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            _out, log = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _out, log = daemon.communicate()
    assert daemon.returncode == 0, log
    assert arrived, f"the next day's digest never came:\n{log}"
    assert periods(database_url) == [("2026-03-29", "sent"), ("2026-03-30", "sent")]
    assert len(inbox(tmp_path)) == 2


def test_status_shows_the_last_ingest_the_next_runs_and_the_outbox(
    cli: CliRunner, send_config: Path, database_url: str
) -> None:
    code, out, _ = invoke(cli, "status", "--now", utc("2026-03-29T05:00"))
    assert code == 1 and "last ingest: never" in out and "outbox: empty" in out
    assert "warning: no dump ingested yet" in out
    subscribe(cli, "berlin@example.org", "Europe/Berlin", 2, TOPIC, at=utc("2026-03-01T00:00"))
    dumps = sorted((DATA / "dumps").glob("*.txt"))
    ingest(cli, dumps[0], at=utc("2026-03-28T20:00"))
    send(cli, utc("2026-03-29T01:00"))
    code, out, _ = invoke(cli, "status", "--now", utc("2026-03-29T05:00"), "--json")
    assert code == 0  # nothing needs attention
    data = json.loads(out)
    assert data["ok"] is True and data["warnings"] == []
    assert data["last_ingest"]["at"] == utc("2026-03-28T20:00")
    assert data["last_ingest"]["source"].endswith(dumps[0].name)
    assert data["next_runs"] == {
        "ingest": utc("2026-03-29T05:10"),
        "hf": utc("2026-03-29T06:00"),
        "tick": utc("2026-03-29T05:01"),
    }
    assert data["outbox"] == {"sent": 1}
    code, out, _ = invoke(cli, "status", "--now", utc("2026-03-29T05:00"))
    assert "last ingest: 2026-03-28 20:00Z" in out and "sent" in out
    # three days later with no new dump: a monitor running `digest status` hears of it
    code, out, _ = invoke(cli, "status", "--now", utc("2026-04-01T05:00"))
    assert code == 1 and "warning: no new dump for 3 days" in out


@pytest.mark.parametrize(
    ("started", "finished", "seen", "said", "alive"),
    [
        (None, None, None, "no run recorded", False),
        ("04:59:30", "04:59:31", None, "alive (host:1, last seen 29 s ago)", True),
        # a ten-minute delivery round that ended a moment ago
        ("04:50:00", "04:59:55", None, "alive (host:1, last seen 5 s ago)", True),
        # a round still running: the ticks that find it busy are its heartbeat
        ("04:00:00", None, "04:59:50", "alive (host:1, last seen 10 s ago, a tick running", True),
        ("01:00:00", "01:01:00", None, "not running? last seen 3 h ago", False),
        ("04:00:00", None, None, "a tick started 60 min ago by host:1 has not finished", None),
    ],
)
def test_status_tells_a_live_daemon_from_a_dead_one(
    cli: CliRunner,
    send_config: Path,
    store: Store,
    started: str | None,
    finished: str | None,
    seen: str | None,
    said: str,
    alive: bool | None,
) -> None:
    def at(clock: str | None) -> datetime | None:
        return datetime.fromisoformat(f"2026-03-29T{clock}+00:00") if clock else None

    if started is not None:
        with store.transaction() as session:
            record_run(
                session, "tick", worker="host:1", started=at(started),  # type: ignore[arg-type]
                finished=at(finished), error=None,
            )  # fmt: skip
            if seen is not None:
                record_seen(session, "tick", worker="host:1", at=at(seen))  # type: ignore[arg-type]
            record_run(
                session, "hf", worker="host:1", started=at(started),  # type: ignore[arg-type]
                finished=at(started), error="SourceError: HTTP 503 from huggingface.co",
            )  # fmt: skip
    code, out, _ = invoke(cli, "status", "--now", utc("2026-03-29T05:00"))
    assert code == 1  # no dump yet, and (with runs) the HF fetch failed
    flat = " ".join(out.split())
    assert f"digest run: {said}" in flat
    data = json.loads(invoke(cli, "status", "--now", utc("2026-03-29T05:00"), "--json")[1])
    if started is not None:
        assert data["jobs"]["hf"]["error"] == "SourceError: HTTP 503 from huggingface.co"
        assert "warning: hf: the last run failed: SourceError: HTTP 503" in flat
    assert data["daemon"]["alive"] is alive
    # a daemon that ran and is not ticking now is a warning; one never started is not
    assert ("warning: digest run:" in flat) == (started is not None and alive is not True)
