"""`digest plan` against a real database file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from digest.store.database import Store
from tests.conftest import invoke
from tests.plan_factories import T0, add_dump, add_subscriber, days, digests_of

NOW = "2026-11-22T09:00:00+01:00"  # T0


def test_plan_prints_each_subscriber_and_records(
    cli: CliRunner, config_file: Path, store: Store
) -> None:
    ada = add_subscriber(store, "ada@example.org")
    add_subscriber(store, "bob@example.org", topics=("quantum error correction",))
    add_subscriber(store, "cy@example.org", send_hour=20)
    add_dump(store, T0 - days(1), ["Diffusion Models for Video Generation"])

    code, out, _ = invoke(cli, "plan", "--now", NOW, "--dry-run")
    assert code == 0, out
    assert "would plan 1 digest(s), 1 empty, 1 subscriber(s) skipped at 2026-11-22 08:00 UTC" in out
    assert digests_of(store, ada) == []

    code, out, _ = invoke(cli, "plan", "--now", NOW)
    assert code == 0, out
    assert "ada@example.org" in out and "2026-11-22" in out and "planned" in out
    assert "empty, not sent: no new paper matched" in out
    assert "skipped: not due: next digest at 2026-11-22 20:00 UTC" in out
    assert "planned 1 digest(s), 1 empty, 1 subscriber(s) skipped at 2026-11-22 08:00 UTC" in out
    assert [status for _, status, _ in digests_of(store, ada)] == ["pending"]

    code, out, _ = invoke(cli, "plan", "--now", NOW, "--json", "--email", "ada@example.org")
    assert code == 0
    data = json.loads(out)
    assert data["planned"] == []
    assert data["skipped"][0]["reason"].startswith("not due: 2026-11-22 already planned")


def test_plan_refuses_an_unknown_subscriber_and_a_bad_time(
    cli: CliRunner, config_file: Path
) -> None:
    code, _, err = invoke(cli, "plan", "--email", "nobody@example.org")
    assert code == 2 and "no subscriber with the address nobody@example.org" in err
    code, _, err = invoke(cli, "plan", "--now", "tomorrow")
    assert code == 2 and "--now" in err
