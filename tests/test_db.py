"""The store: migrations on real databases, pragmas, drift between models and migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from digest import db
from digest.db import Store
from digest.models import Base, Dump, Subscriber
from tests.conftest import invoke

TABLES = {"subscribers", "topics", "dumps", "papers", "dump_papers", "digests", "digest_items"}


def test_upgrade_creates_schema_and_second_run_changes_nothing(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) is None
    before, after = db.upgrade(engine)
    assert (before, after) == (None, db.head_revision())
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert db.upgrade(engine) == (after, after)
    engine.dispose()


def test_models_and_migrations_do_not_drift(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models.py and alembic/versions differ; add a migration: {diff}"


def test_cli_db_upgrade_and_current(cli: CliRunner, config_file: object) -> None:
    code, out, _ = invoke(cli, "db", "current")
    assert (code, out.strip()) == (0, "empty database (behind head 0001)")
    code, out, _ = invoke(cli, "db", "upgrade")
    assert (code, out.strip()) == (0, "upgraded empty database -> 0001")
    code, out, _ = invoke(cli, "db", "upgrade")
    assert (code, out.strip()) == (0, "already at 0001; nothing to do")
    code, out, _ = invoke(cli, "db", "current")
    assert out.strip() == "0001 (up to date)"


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: object) -> None:
    store = db.open_store("sqlite:///var/nested/x.db")  # folder is created
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    store.dispose()


def test_times_come_back_aware_utc(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=berlin)
    with store.transaction() as session:
        session.add(
            Dump(
                sha256="0" * 64,
                source="text",
                source_ref="x",
                issue_date=date(2026, 3, 29),
                ingested_at=moment,
            )
        )
    with store.transaction() as session:
        stored = session.scalars(select(Dump.ingested_at)).one()
    assert stored == moment
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"), store.transaction() as session:
        session.add(
            Dump(
                sha256="1" * 64,
                source="text",
                source_ref="x",
                issue_date=date(2026, 1, 1),
                ingested_at=datetime(2026, 1, 1),
            )
        )
        session.flush()


def test_unique_email_is_enforced(store: Store) -> None:
    now = datetime.now(UTC)

    def subscriber() -> Subscriber:
        return Subscriber(email="a@example.org", created_at=now, subscribed_at=now, updated_at=now)

    with store.transaction() as session:
        session.add(subscriber())
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(subscriber())
        session.flush()
