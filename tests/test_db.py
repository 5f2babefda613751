"""The store: migrations on real databases, pragmas, drift between models and migrations."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digest.store import database as db
from digest.store.database import Store
from digest.store.schema import Base, Dump, Subscriber
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
    assert diff == [], f"the schema and alembic/versions differ; add a migration: {diff}"


def test_cli_db_upgrade_and_current(cli: CliRunner, config_file: object) -> None:
    head = db.head_revision()
    assert head is not None
    code, out, _ = invoke(cli, "db", "current")
    assert (code, out.strip()) == (0, f"empty database (behind head {head})")
    code, out, _ = invoke(cli, "db", "upgrade")
    assert (code, out.strip()) == (0, f"upgraded empty database -> {head}")
    code, out, _ = invoke(cli, "db", "upgrade")
    assert (code, out.strip()) == (0, f"already at {head}; nothing to do")
    code, out, _ = invoke(cli, "db", "current")
    assert out.strip() == f"{head} (up to date)"


def test_upgrading_a_0001_database_keeps_its_rows_and_adds_the_vector_tables(
    tmp_path: Path,
) -> None:
    """A database made by the first release migrates in place, data intact."""
    from alembic import command

    engine = db.make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(db._alembic_config(engine), "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO papers (key, title, abstract, authors, extra, first_seen) "
                "VALUES ('k', 'A title', '', '[]', '{}', '2026-11-22 06:00:00+00:00')"
            )
        )
    before, after = db.upgrade(engine)
    assert (before, after) == ("0001", db.head_revision())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT title FROM papers")).scalar() == "A title"
        assert connection.execute(text("SELECT count(*) FROM paper_vectors")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM text_vectors")).scalar() == 0
    engine.dispose()


def test_upgrading_stores_old_unicode_domains_in_ascii_so_they_are_found_again(
    tmp_path: Path,
) -> None:
    """0003: an address stored in its Unicode form by an earlier release is rewritten
    to the ASCII form lookups use; one whose ASCII form is taken, or that cannot be
    written in ASCII, is left alone."""
    from alembic import command
    from sqlalchemy import insert, select

    from digest.config import ScheduleSettings
    from digest.store.schema import Subscriber
    from digest.subscribers.manage import get_subscriber

    engine = db.make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(db._alembic_config(engine), "0002")
    then = datetime(2026, 11, 1, tzinfo=UTC)
    defaults = ScheduleSettings()
    stored = ["user@bücher.de", "both@bücher.de", "both@xn--bcher-kva.de", "üser@example.org"]
    with engine.begin() as connection:
        connection.execute(
            insert(Subscriber),
            [
                {
                    "email": email,
                    "status": "active",
                    "timezone": "UTC",
                    "send_hour": defaults.default_send_hour,
                    "frequency": "daily",
                    "weekday": 0,
                    "max_papers": 10,
                    "created_at": then,
                    "subscribed_at": then,
                    "updated_at": then,
                    "consecutive_failures": 0,
                }
                for email in stored
            ],
        )
    assert db.upgrade(engine)[1] == db.head_revision()
    with engine.connect() as connection:
        emails = set(connection.execute(select(Subscriber.email)).scalars())
    assert emails == {
        "user@xn--bcher-kva.de",
        "both@bücher.de",
        "both@xn--bcher-kva.de",
        "üser@example.org",
    }
    engine.dispose()
    store = db.open_store(f"sqlite:///{tmp_path}/old.db")
    with store.sessions() as session:
        assert get_subscriber(session, "user@bücher.de").email == "user@xn--bcher-kva.de"
    store.dispose()


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: object) -> None:
    store = db.open_store("sqlite:///var/nested/x.db")  # folder is created
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
        # negative: KiB, not pages (the default 2 MiB made a planning pass reread pages)
        assert connection.execute(text("PRAGMA cache_size")).scalar() == -db.SQLITE_CACHE_KIB
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


def test_a_sqlite_write_transaction_that_reads_first_survives_another_writer(
    tmp_path: object,
) -> None:
    """Two processes (mailer and web app) on one SQLite file: a transaction that reads
    and then writes must not fail because the other committed in between."""
    url = f"sqlite:///{tmp_path}/shared.db"
    mailer, web = db.open_store(url), db.open_store(url)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    times = {"created_at": now, "subscribed_at": now, "updated_at": now, "status": "active"}
    with web.transaction() as session:
        session.add(Subscriber(email="a@example.org", **times))
    other_done = threading.Event()

    def other_writer() -> None:
        with web.transaction() as session:
            session.add(Subscriber(email="b@example.org", **times))
        other_done.set()

    try:
        with mailer.transaction() as session:
            reader = session.scalars(select(Subscriber)).one()
            writer = threading.Thread(target=other_writer)
            writer.start()
            # it waits for our write lock instead of committing under our snapshot
            assert not other_done.wait(0.3)
            reader.status = "bounced"
        writer.join(5)
        assert other_done.is_set()
        with mailer.sessions() as session:
            assert sorted(session.scalars(select(Subscriber.status))) == ["active", "bounced"]
    finally:
        mailer.dispose()
        web.dispose()


def test_upgrading_moves_each_items_explanation_to_one_shared_row(database_url: str) -> None:
    """0007: items that had copies of one explanation share one row, and every item
    still says why it was chosen; a downgrade gives each item its copy back."""
    from alembic import command

    if database_url.startswith("postgresql"):
        from tests.conftest import _reset_postgres

        _reset_postgres(database_url)
    engine = db.make_engine(database_url)
    config = db._alembic_config(engine)
    command.upgrade(config, "0006")
    why = [
        {"matched": [{"term": "diffusion", "field": "title", "start": 0, "end": 9}], "parts": {}},
        {"matched": [], "parts": {"title": 0.5, "liked": 2.0, "votes": 0.1}},
    ]
    then = "'2026-11-22 06:00:00'"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (id, email, status, timezone, send_hour, frequency,"
                " weekday, max_papers, created_at, subscribed_at, updated_at,"
                f" consecutive_failures) VALUES (1, 'a@example.org', 'active', 'UTC', 8,"
                f" 'daily', 0, 10, {then}, {then}, {then}, 0)"
            )
        )
        for paper in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO papers (id, key, title, abstract, authors, extra, first_seen)"
                    f" VALUES ({paper}, 'k{paper}', 'T', '', '[]', '{{}}', {then})"
                )
            )
        for digest in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO digests (id, subscriber_id, period, status, message_id,"
                    " planned_at, window_start, attempts) VALUES"
                    f" ({digest}, 1, '2026-11-2{digest}', 'sent', '<m{digest}@x>', {then},"
                    f" {then}, 0)"
                )
            )
        items = [(1, 1, why[0]), (2, 1, why[0]), (2, 2, why[1]), (1, 3, why[1])]
        for digest, paper, explanation in items:
            connection.execute(
                text(
                    "INSERT INTO digest_items (digest_id, paper_id, rank, score, topic_label,"
                    " explanation) VALUES (:d, :p, 1, 1.0, 'diffusion', :e)"
                ),
                {"d": digest, "p": paper, "e": json.dumps(explanation)},
            )
    command.upgrade(config, "0007")
    from digest.store.schema import DigestItem, Explanation

    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Explanation)) == 2
        moved = {
            (i.digest_id, i.paper_id): i.explanation for i in session.scalars(select(DigestItem))
        }
    assert moved == {(d, p): e for d, p, e in items}
    command.downgrade(config, "0006")
    with engine.connect() as connection:
        back = {
            (d, p): json.loads(e) if isinstance(e, str) else e
            for d, p, e in connection.execute(
                text("SELECT digest_id, paper_id, explanation FROM digest_items")
            )
        }
    assert back == {(d, p): e for d, p, e in items}
    engine.dispose()
