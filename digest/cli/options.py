"""Options and small helpers shared by the command modules."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from digest.config import Settings, load_settings
from digest.errors import BadInput, ConfigError
from digest.store.database import Store, missing_sqlite_file, open_store

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="DIGEST_CONFIG",
        help="Settings file (TOML). Default: ./config.toml if present, else built-in defaults.",
        show_default=False,
        dir_okay=False,
    ),
]

NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Act as if it were this time (ISO 8601 with offset, e.g. 2026-11-22T08:00+01:00). "
        "Default: the system clock.",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings_from(config: Path | None) -> Settings:
    """Load settings for a command (the --config path, else the default places)."""
    return load_settings(config)


def store_from(settings: Settings) -> Store:
    """Open (and if needed migrate) the configured database; it must exist.

    Only `digest db upgrade` creates a SQLite file (see `missing_sqlite_file`).
    """
    refuse_missing_database(settings.database_url)
    return open_store(settings.database_url)


def refuse_missing_database(database_url: str) -> None:
    """ConfigError (exit 3) when the configured SQLite file does not exist."""
    missing = missing_sqlite_file(database_url)
    if missing is not None:
        raise ConfigError(
            f"no database at {missing}: run `digest db upgrade` to create it "
            "(or check database_url / DIGEST_DATABASE_URL)"
        )


def parse_now(value: str | None) -> datetime:
    """`--now` as an aware UTC datetime; the system clock when not given."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--now: not an ISO 8601 time: {value!r} (e.g. 2026-11-22T08:00+01:00)"
        ) from None
    if parsed.tzinfo is None:
        raise BadInput(f"--now: {value!r} has no UTC offset (add Z or +HH:MM)")
    return parsed.astimezone(UTC)


PIPED_WIDTH = 10_000
"""Columns a table may take when output goes to a pipe or file (nothing there wraps)."""


def table_console(*, stderr: bool = False) -> Console:
    """A Console for tables: the terminal's width on a terminal; when piped, wide enough
    that no cell is cut (Rich's 80-column default turned `grace@example.org` into
    `grace@e…` in `digest subscribers | grep`)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=True, highlight=False)
