"""The store: the schema, the connection, and the queries several stages share.

Owns the database: its tables (and, with alembic/, their migrations), how a
process connects, and writing ingested dumps. The stages that open sessions
(ingest, planner, outbox, subscribers, the CLI's read commands) do it through
`Store` from here. Base layer: may import only `digest.values`, `digest.errors`
and the small utilities (`digest.keys`, `digest.resources`), never a stage.

Modules:

- `schema`    the SQLAlchemy models, every table declared once (UTC datetimes)
- `database`  `open_store` / `Store`: engine, sessions and transactions, SQLite
              pragmas, migrations brought to the head on open
- `dumps`     ingest writes: a parsed dump and its papers, once, whole, deduplicated
- `reads`     read queries more than one stage asks: a paper's latest upvotes and
              the scorer's view of a paper (`PaperText`)
"""
