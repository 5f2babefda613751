"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and the CLI.

Set DIGEST_TEST_DATABASE_URL=postgresql+psycopg://... to run every database
test against PostgreSQL as well; each test then gets an emptied schema.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from digest.cli import app
from digest.store.database import Store, open_store

POSTGRES_URL = os.environ.get("DIGEST_TEST_DATABASE_URL", "")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
DATA = Path(__file__).parent / "data"


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts with no DIGEST_* settings (semantic off) and runs in its own directory."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") and name != "DIGEST_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    # Words alone unless a test asks for the semantic signal: embedding the sample
    # papers with the real encoder costs a tenth of a second each. Tests of the
    # semantic path set it on, with the tiny encoder of tests/tiny_encoder.py.
    monkeypatch.setenv("DIGEST_SEMANTIC__ENABLED", "off")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database: a fresh SQLite file, or an emptied PostgreSQL schema.

    The SQLite file exists, empty, as after `touch`: commands other than `digest db
    upgrade` refuse a missing one, and migrate an empty one.
    """
    if request.param == "sqlite":
        (tmp_path / "test.db").touch()
        return f"sqlite:///{tmp_path / 'test.db'}"
    _reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on a real database."""
    opened = open_store(database_url)
    yield opened
    opened.dispose()


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def config_file(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config.toml in the test's directory pointing at the test database."""
    path = tmp_path / "config.toml"
    path.write_text(f'database_url = "{database_url}"\n')
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    return path


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def wait_for(condition: Callable[[], object], timeout: float) -> bool:
    """Poll `condition` every 0.2 s until it is truthy (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
