"""`digest db ...` and `digest config ...`: the store's schema and the effective settings."""

from __future__ import annotations

import typer

from digest.cli.app import app
from digest.cli.options import ConfigOption, refuse_missing_database, settings_from
from digest.config import example_toml, iter_settings
from digest.store import database as db

db_app = typer.Typer(
    help="The database schema: upgrade it, show its revision.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the schema to the newest revision (safe to run again)."""
    settings = settings_from(config)
    store = db.open_store(settings.database_url, migrate=False)
    try:
        before, after = db.upgrade(store.engine)
    finally:
        store.dispose()
    if before == after:
        typer.echo(f"already at {after}; nothing to do")
    else:
        typer.echo(f"upgraded {before or 'empty database'} -> {after}")


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Show the schema revision of the database and the newest one available."""
    settings = settings_from(config)
    refuse_missing_database(settings.database_url)
    store = db.open_store(settings.database_url, migrate=False)
    try:
        current = db.current_revision(store.engine)
    finally:
        store.dispose()
    head = db.head_revision()
    state = "up to date" if current == head else f"behind head {head}"
    typer.echo(f"{current or 'empty database'} ({state})")


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print every setting with its effective value (secrets masked)."""
    settings = settings_from(config)
    typer.echo(f"# from {settings.source_file or 'built-in defaults'} and DIGEST_* variables")
    for key, f in iter_settings():
        value: object = settings
        for part in key.split("."):
            value = getattr(value, part)
        if f.metadata.get("secret") and value:
            value = "********"
        typer.echo(f"{key} = {value!r}")


@config_app.command("example")
def config_example() -> None:
    """Print a config file with every setting, its default and what it does."""
    typer.echo(example_toml(), nl=False)
