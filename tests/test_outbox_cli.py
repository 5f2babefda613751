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
