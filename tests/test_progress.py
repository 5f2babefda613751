"""Progress on long commands: a spinner while planning, on a terminal only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA


def test_plan_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "digest.db"}"\n')
    env = {**os.environ, "DIGEST_CONFIG": str(config), "COLUMNS": "100", "TERM": "xterm"}
    digest = [sys.executable, "-m", "digest"]
    subprocess.run([*digest, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*digest, "ingest", str(DATA / "hf_daily_papers.json")], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    # on a terminal (stderr a pty): the spinner is drawn while the pass runs
    leader, follower = pty.openpty()
    done = subprocess.run(
        [*digest, "plan", "--dry-run"], env=env, stdout=subprocess.PIPE, stderr=follower,
        timeout=60,
    )  # fmt: skip
    os.close(follower)
    drawn = b""
    try:
        while chunk := os.read(leader, 65536):
            drawn += chunk
    except OSError:  # the other end is closed: all read
        pass
    os.close(leader)
    assert done.returncode == 0
    assert b"planning" in drawn
    # in a pipe: nothing but the command's own lines
    piped = subprocess.run([*digest, "plan", "--dry-run"], env=env, capture_output=True, timeout=60)
    assert piped.returncode == 0 and b"planning" not in piped.stderr
