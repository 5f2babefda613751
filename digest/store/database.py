"""The store's connection: engine and session factory, SQLite pragmas, migrations.

This module owns how digest connects to its database. SQLite (the embedded
default) gets WAL, foreign keys and a busy timeout on every connection;
PostgreSQL is the same code through a `postgresql+psycopg://` URL. `open_store`
brings the schema to the newest migration on first use, so a fresh install
needs no separate setup step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from digest.errors import ConfigError
from digest.resources import migrations_dir

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 16_384
"""Each SQLite connection's page cache. The default (2 MiB) cannot hold the index pages
a planning pass keeps writing (one per paper in the items' paper index, the
digests' unique keys), so SQLite read them back from the file again and again."""


def make_engine(database_url: str) -> Engine:
    """Create an engine; for a SQLite file, create its folder and set the pragmas."""
    url = make_url(database_url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            folder = Path(url.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                why = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror
                raise ConfigError(
                    f"database_url: cannot create the folder {folder} for the SQLite "
                    f"database: {why}"
                ) from None
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT;
    # turn it off and emit BEGIN ourselves (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


WRITE_TRANSACTION = "digest_write_transaction"
"""Execution option set by `Store.transaction`: this transaction will write."""


def _sqlite_begin(connection: Any) -> None:
    # A transaction that reads and then writes must hold the write lock from the
    # start: begun deferred, its first write fails at once (SQLITE_BUSY_SNAPSHOT,
    # no busy timeout) whenever another process committed since its first read
    # (the web app recording an unsubscribe while the mailer records failures).
    immediate = connection.get_execution_options().get(WRITE_TRANSACTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version of digest."""
    return ScriptDirectory(str(migrations_dir())).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to head; returns (revision before, revision after)."""
    before = current_revision(engine)
    if before != head_revision():
        command.upgrade(_alembic_config(engine), "head")
    return before, current_revision(engine)


@dataclass
class Store:
    """An engine plus its session factory: what store-facing code is handed."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions.begin() as session:
            session.connection(execution_options={WRITE_TRANSACTION: True})
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        """Leaving a `with open_store(...)` block closes the pool, error or not."""
        self.dispose()


def missing_sqlite_file(database_url: str) -> str | None:
    """The path of a SQLite database file that does not exist yet, else None.

    SQLite creates a missing file on first connect: a mistyped path would
    quietly become an empty database, and `digest outbox` would say "the
    outbox is empty". Commands other than `digest db upgrade` refuse instead.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    path = url.database or ""
    if path in ("", ":memory:") or path.startswith("file:") or Path(path).exists():
        return None
    return path


def open_store(database_url: str, *, migrate: bool = True) -> Store:
    """Connect to the database and, unless told not to, migrate it to head."""
    engine = make_engine(database_url)
    if migrate:
        try:
            upgrade(engine)
        except DBAPIError as exc:  # unreachable server, not a database file, no permission
            engine.dispose()
            reason = " ".join(str(exc.orig).split())  # drivers' messages span lines
            raise ConfigError(
                f"cannot open database {make_url(database_url).render_as_string()}: {reason}"
            ) from None
    return Store(engine, sessionmaker(engine, expire_on_commit=False))
