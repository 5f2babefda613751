"""Alembic environment: runs migrations on digest's engine.

`digest.store.database` passes its engine in `config.attributes["engine"]`; the plain
`alembic` command falls back to the URL from digest's settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from digest.config import load_settings
from digest.store.database import make_engine
from digest.store.schema import Base

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(load_settings().database_url)
    return engine


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
