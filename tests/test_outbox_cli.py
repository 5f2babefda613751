"""`digest outbox` and `digest retry` against a real database file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from digest.config import Settings
from digest.mail import MemoryMailer
from digest.outbox import deliver_due
from digest.store.database import open_store
from tests.conftest import invoke
from tests.outbox_rows import T0, build, make_digests


def _deliver_with_trouble(database_url: str) -> None:
    store = open_store(database_url)
    make_digests(store, ["ok@example.org", "later@example.org", "nope@example.org"])
    mailer = MemoryMailer({"later@example.org": "retry", "nope@example.org": "failed"})
    deliver_due(store, Settings(), mailer, build, now=T0)
    store.dispose()


def test_outbox_lists_states_and_counts(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    _deliver_with_trouble(database_url)
    code, out, _ = invoke(cli, "outbox", "--json")
    assert code == 0
    data = json.loads(out)
    assert {k: v for k, v in data["counts"].items() if v} == {"sent": 1, "retry": 1, "failed": 1}
    by_email = {d["email"]: d for d in data["digests"]}
    assert by_email["nope@example.org"]["last_error"] == "failed (memory)"
    assert by_email["later@example.org"]["next_attempt_at"].startswith("2026-11-22T08:0")

    code, out, _ = invoke(cli, "outbox", "--status", "failed", "--json")
    assert [d["email"] for d in json.loads(out)["digests"]] == ["nope@example.org"]

    code, out, _ = invoke(cli, "outbox")
    assert code == 0 and "1 retry, 1 sent, 1 failed" in out


def test_outbox_rejects_an_unknown_status(cli: CliRunner, config_file: Path) -> None:
    code, _, err = invoke(cli, "outbox", "--status", "lost")
    assert code == 2 and "unknown status 'lost'" in err


def test_retry_makes_digests_due_and_send_delivers_them(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    _deliver_with_trouble(database_url)
    now = T0.isoformat()
    assert invoke(cli, "retry", "--now", now)[:2] == (
        0,
        "1 digest due again; the next `digest send` delivers them\n",
    )
    code, out, _ = invoke(cli, "retry", "--failed", "--email", "nope@example.org", "--now", now)
    assert code == 0 and out.startswith("1 digest due again")
    store = open_store(database_url)
    report = deliver_due(store, Settings(), MemoryMailer(), build, now=T0)
    store.dispose()
    assert report.sent == 2


def _claimed_by_a_dead_sender(
    database_url: str, emails: list[str], *, pid: int | None = None
) -> str:
    """Rows `sending` under the name of a process of this host that is not running (a
    crash): a pid above the kernel's pid_max, which no process can have. `pid` names
    another holder instead."""
    import socket

    from digest.outbox import claim

    if pid is None:
        pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    worker = f"{socket.gethostname()}:{pid}"
    store = open_store(database_url)
    make_digests(store, emails)
    with store.transaction() as session:
        claim(session, now=T0, limit=len(emails), lease_seconds=600, worker=worker)
    store.dispose()
    return worker


def test_after_a_crash_outbox_status_and_send_say_who_holds_leased_digests(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    worker = _claimed_by_a_dead_sender(database_url, ["a@example.org", "b@example.org"])
    now = T0.isoformat()
    code, out, _ = invoke(cli, "outbox", "--now", now)
    assert code == 0
    assert f"2 digests leased by {worker} (no longer running) until 2026-11-22 08:10 UTC" in out
    assert "digest retry --stale" in out
    leases = json.loads(invoke(cli, "status", "--json", "--now", now)[1])["leases"]
    assert leases == [
        {"worker": worker, "digests": 2, "until": leases[0]["until"], "running": False}
    ]
    assert leases[0]["until"].startswith("2026-11-22T08:10")
    code, out, _ = invoke(cli, "send", "--now", now)
    assert code == 0 and "sent 0" in out
    assert f"2 digests leased by {worker} (no longer running)" in out


def test_retry_stale_takes_back_a_dead_senders_digests_with_a_warning(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    worker = _claimed_by_a_dead_sender(database_url, ["a@example.org", "b@example.org"])
    now = T0.isoformat()
    code, out, err = invoke(cli, "retry", "--stale", "--now", now)
    assert code == 0 and out == "2 digests due again; the next `digest send` delivers them\n"
    assert f"warning: took back 2 digests leased by {worker} (no longer running)" in err
    assert "leased" not in invoke(cli, "outbox", "--now", now)[1]
    store = open_store(database_url)
    report = deliver_due(store, Settings(), MemoryMailer(), build, now=T0)
    store.dispose()
    assert report.sent == 2


def test_retry_stale_leaves_leases_whose_time_has_not_come_alone_without_the_flag(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    _claimed_by_a_dead_sender(database_url, ["a@example.org"])
    code, out, err = invoke(cli, "retry", "--now", T0.isoformat())
    assert code == 0 and out.startswith("0 digests due again") and err == ""
    code, _, err = invoke(cli, "retry", "--stale", "--email", "a@example.org")
    assert code == 2 and "--stale" in err


def test_retry_stale_leaves_a_sender_that_is_still_running_alone(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    import os

    worker = _claimed_by_a_dead_sender(database_url, ["a@example.org"], pid=os.getpid())
    code, out, err = invoke(cli, "retry", "--stale", "--now", T0.isoformat())
    assert code == 0 and out.startswith("0 digests due again")
    assert f"left alone: 1 digest leased by {worker} (running)" in err
    assert "leased by" in invoke(cli, "outbox", "--now", T0.isoformat())[1]
