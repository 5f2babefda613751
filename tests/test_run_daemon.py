"""`digest run` as a user runs it: a real process, a real SMTP server, a dumps folder."""

from __future__ import annotations

import email
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.conftest import wait_for

DATA = Path(__file__).parent / "data"


class Collect:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Collect]]:
    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, handler
    controller.stop()


def digest_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def smtp_daemon_env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    """The environment of a `digest run` that delivers over SMTP to 127.0.0.1:port."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
        f'dumps_dir = "{tmp_path / "dumps"}"\n'
        "[schedule]\ntick_seconds = 0.5\nshutdown_timeout_seconds = 20.0\n"
        '[delivery]\nbackend = "smtp"\nconcurrency = 2\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'timeout_seconds = 5.0\n[sender]\naddress = "papers@digest.test"\n'
        '[web]\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
    )
    return {**os.environ, "DIGEST_CONFIG": str(config)}


def pending_digests(database_url: str, count: int) -> list[str]:
    """`count` subscribers with a digest due since five minutes ago; their addresses."""
    from digest.store.database import open_store
    from tests.outbox_rows import make_digests

    emails = [f"u{i}@example.org" for i in range(count)]
    store = open_store(database_url)
    make_digests(store, emails, now=datetime.now(UTC) - timedelta(minutes=5))
    store.dispose()
    return emails


def start_daemon(env: dict[str, str], *, own_group: bool = False) -> subprocess.Popen[str]:
    """`digest run` with JSON logs; `own_group` to signal it as systemd does, group-wide."""
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--log-format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )


def test_daemon_ingests_a_dropped_dump_mails_it_and_stops_cleanly(
    tmp_path: Path, smtp_server: tuple[int, Collect], database_url: str
) -> None:
    port, received = smtp_server
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
        f'dumps_dir = "{dumps}"\n'
        "[sources]\npoll_minutes = 0.02\nsettle_seconds = 0.2\n"
        "[schedule]\ntick_seconds = 1.0\nshutdown_timeout_seconds = 10.0\n"
        '[delivery]\nbackend = "smtp"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout_seconds = 5.0\n'
        '[sender]\naddress = "papers@digest.test"\n'
        '[web]\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
    )
    env = {**os.environ, "DIGEST_CONFIG": str(config)}
    yesterday = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    subscribed = digest_cli(
        "subscribe",
        "reader@example.org",
        "--topic",
        "KV cache",
        "--timezone",
        "UTC",
        "--hour",
        "0",
        "--confirmed",
        "--now",
        yesterday,
        env=env,
    )
    assert subscribed.returncode == 0, subscribed.stderr

    daemon = start_daemon(env)
    try:
        time.sleep(2)  # the daemon is up and has found the folder empty
        assert received.messages == []
        partial = dumps / "incoming.txt.part"
        shutil.copy(DATA / "dumps" / "000_1a70928f5047d655.txt", partial)
        partial.rename(dumps / "000.txt")
        assert wait_for(lambda: received.messages, timeout=60), "no digest arrived"
        # while it runs, `digest status` says so, from what the daemon recorded
        status = digest_cli("status", "--json", env=env)
        alive = json.loads(status.stdout)["daemon"]
        assert alive["alive"] is True, status.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    # stopped, and read a while later: not alive, and when it was last seen
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    status = digest_cli("status", "--json", "--now", later, env=env)
    gone = json.loads(status.stdout)["daemon"]
    assert gone["alive"] is False and gone["last_seen"] >= alive["last_seen"]
    assert status.returncode == 1  # a monitor hears that the daemon stopped
    message = received.messages[0]
    assert message["To"] == "reader@example.org"
    body = "".join(
        part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
    assert "GEAR" in body  # the KV cache compression paper of that dump
    assert '"message": "ingested dump"' in log
    # the empty ticks before the dump said why, once; then what the tick did
    assert log.count('"message": "tick: planned 0, sent 0: 1 no new dumps"') == 1, log
    assert '"message": "tick: planned 1, sent 1"' in log
    assert '"message": "digest run stopped"' in log
    engine = create_engine(database_url)
    with engine.connect() as connection:
        statuses = connection.execute(text("SELECT status FROM digests")).scalars().all()
    engine.dispose()
    assert statuses == ["sent"]


def test_second_daemon_on_the_same_sqlite_database_refuses(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    (tmp_path / "d.db").touch()
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "d.db"}"\ndumps_dir = "{tmp_path}"\n'
        '[web]\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
    )
    env = {**os.environ, "DIGEST_CONFIG": str(config)}
    first = subprocess.Popen(
        [sys.executable, "-m", "digest", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: (tmp_path / "d.db.run-lock").exists(), timeout=30)
        time.sleep(1)
        second = digest_cli("run", env=env)
        assert second.returncode != 0
        assert "already using" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_sigterm_during_a_slow_delivery_round_exits_cleanly_and_sends_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    """SIGTERM while a batch is on the wire: in-flight mails finish, the rest go back
    untried, the process exits 0 well within shutdown_timeout, and the next run sends
    each remaining digest exactly once."""
    from tests.smtpd import FaultyHandler, smtp_server

    emails = pending_digests(database_url, 16)
    handler = FaultyHandler(delay=0.4)
    with smtp_server(handler) as port:
        env = smtp_daemon_env(tmp_path, database_url, port)
        daemon = start_daemon(env)
        try:
            assert wait_for(lambda: len(handler.received) >= 2, timeout=30), "nothing sent"
        finally:
            daemon.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            _out, log = daemon.communicate(timeout=30)
        took = time.monotonic() - stopped_at
        assert daemon.returncode == 0, log
        # It stopped taking messages: only those already on the wire finished
        # (the whole batch, 16 messages on 2 connections at 0.4 s each, takes 3.2 s).
        assert took < 10, f"shutdown took {took:.1f} s"
        sent_before = len(handler.received)
        assert sent_before <= 8, sent_before

        engine = create_engine(database_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT status, attempts FROM digests")).all()
        assert "sending" not in {status for status, _ in rows}
        assert sum(status == "sent" for status, _ in rows) == sent_before
        assert {attempts for status, attempts in rows if status == "pending"} == {0}

        again = digest_cli("send", env=env)
        assert again.returncode == 0, again.stderr
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM digests")).scalars().all()
        engine.dispose()
    assert set(statuses) == {"sent"}
    assert sorted(address for address, _ in handler.received) == sorted(emails)
    assert len(set(handler.message_ids())) == len(emails)


def test_sigterm_past_the_shutdown_timeout_leaves_messages_on_the_wire_leased(
    tmp_path: Path, database_url: str
) -> None:
    """A round still sending when shutdown_timeout_seconds runs out: the digests on the
    wire stay leased (they may have reached the server), the daemon exits at once, and a
    `digest send` started right after sends every other digest, none of those twice."""
    from tests.smtpd import FaultyHandler, smtp_server

    pending_digests(database_url, 12)
    handler = FaultyHandler(delay=6.0)  # every DATA reply takes 6 s: always on the wire
    with smtp_server(handler) as port:
        env = smtp_daemon_env(tmp_path, database_url, port)
        config = Path(env["DIGEST_CONFIG"])
        config.write_text(
            config.read_text().replace(
                "shutdown_timeout_seconds = 20.0", "shutdown_timeout_seconds = 0.5"
            )
        )
        daemon = start_daemon(env)
        try:
            assert wait_for(lambda: handler.mail_commands >= 2, timeout=30), "nothing sent"
        finally:
            daemon.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            _out, log = daemon.communicate(timeout=30)
        took = time.monotonic() - stopped_at
        assert daemon.returncode == 0, log
        assert took < 4, f"shutdown took {took:.1f} s, past its 0.5 s timeout"
        assert "tick still running after shutdown_timeout_seconds" in log

        engine = create_engine(database_url)
        with engine.connect() as connection:
            on_the_wire = connection.execute(
                text("SELECT count(*) FROM digests WHERE status = 'sending'")
            ).scalar_one()
        assert on_the_wire == 2  # concurrency = 2: the two messages the server was holding

        handler.delay = 0.0
        again = digest_cli("send", env=env)
        assert again.returncode == 0, again.stderr
        assert "2 digests leased by" in again.stdout
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM digests")).scalars().all()
        engine.dispose()
    assert sorted(statuses) == ["sending"] * 2 + ["sent"] * 10
    received = [address for address, _ in handler.received]
    assert len(received) == len(set(received)), "a digest on the wire was sent again"


def test_sigterm_to_digest_send_finishes_what_is_on_the_wire_and_puts_the_rest_back(
    tmp_path: Path, database_url: str
) -> None:
    """systemd stops a `digest send` with SIGTERM: it claims nothing more, the messages on
    the wire finish and are recorded, the rest goes back due at once (nothing left
    `sending` for a lease), and the next send delivers each remaining digest once."""
    from tests.smtpd import FaultyHandler, smtp_server

    emails = pending_digests(database_url, 16)
    handler = FaultyHandler(delay=0.4)
    with smtp_server(handler) as port:
        env = smtp_daemon_env(tmp_path, database_url, port)
        sender = subprocess.Popen(
            [sys.executable, "-m", "digest", "send"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_for(lambda: len(handler.received) >= 2, timeout=30), "nothing sent"
        finally:
            sender.send_signal(signal.SIGTERM)
            out, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        sent_before = len(handler.received)
        assert sent_before < len(emails), "the send finished before the signal"
        assert f"sent {sent_before}," in out
        engine = create_engine(database_url)
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM digests")).scalars().all()
        assert "sending" not in statuses
        assert statuses.count("sent") == sent_before
        again = digest_cli("send", env=env)
        assert again.returncode == 0, again.stderr
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM digests")).scalars().all()
        engine.dispose()
    assert set(statuses) == {"sent"}
    assert sorted(address for address, _ in handler.received) == sorted(emails)
