"""explanations: one row per distinct explanation, referenced by digest items

Every subscriber whose topic chose the same paper in a planning pass had a copy
of the same explanation JSON in their item: most of the bytes a day's digests
added. Existing items keep theirs, moved to one row per distinct text.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 07:00:00
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

CHUNK = 1000  # digests per round of the data move
DISTINCT_KEPT = 50_000  # distinct explanations remembered while moving

_items = sa.table(
    'digest_items',
    sa.column('digest_id', sa.Integer()),
    sa.column('paper_id', sa.Integer()),
    sa.column('explanation', sa.JSON()),
    sa.column('explanation_id', sa.Integer()),
)
_explanations = sa.table(
    'explanations', sa.column('id', sa.Integer()), sa.column('body', sa.JSON())
)


def upgrade() -> None:
    op.create_table(
        'explanations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_explanations')),
    )
    with op.batch_alter_table('digest_items') as batch:
        batch.add_column(sa.Column('explanation_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f('fk_digest_items_explanation_id_explanations'),
            'explanations',
            ['explanation_id'],
            ['id'],
        )
    connection = op.get_bind()
    # by ranges of digests, so a large outbox is not read into memory at once; each
    # distinct text is known by its hash and inserted once (explanations repeat
    # within a planning pass, whose digests are neighbours; the memory stays bounded)
    ids: dict[bytes, int] = {}
    for low, high in _ranges(connection):
        if len(ids) > DISTINCT_KEPT:
            ids.clear()
        rows = connection.execute(
            sa.select(_items.c.digest_id, _items.c.paper_id, sa.cast(_items.c.explanation, sa.Text))
            .where(_items.c.digest_id >= low, _items.c.digest_id < high)
        ).all()
        moved = []
        for digest_id, paper_id, text in rows:
            key = hashlib.sha256(text.encode()).digest()
            if key not in ids:
                ids[key] = connection.execute(
                    sa.insert(_explanations)
                    .values(body=json.loads(text))
                    .returning(_explanations.c.id)
                ).scalar_one()
            moved.append({'d': digest_id, 'p': paper_id, 'v': ids[key]})
        _set(connection, 'explanation_id', moved)
    with op.batch_alter_table('digest_items') as batch:
        batch.drop_column('explanation')


def _set(connection: sa.Connection, column: str, rows: list[dict[str, object]]) -> None:
    """Set `column` of the items named by each row's d(igest) and p(aper) to its v(alue)."""
    if rows:
        connection.execute(
            sa.update(_items)
            .where(_items.c.digest_id == sa.bindparam('d'), _items.c.paper_id == sa.bindparam('p'))
            .values({column: sa.bindparam('v')}),
            rows,
        )


def _ranges(connection: sa.Connection) -> list[tuple[int, int]]:
    """[low, high) ranges of digest ids covering every item, CHUNK ids each."""
    low, high = connection.execute(
        sa.select(sa.func.min(_items.c.digest_id), sa.func.max(_items.c.digest_id))
    ).one()
    if low is None:
        return []
    return [(start, start + CHUNK) for start in range(low, high + 1, CHUNK)]


def downgrade() -> None:
    with op.batch_alter_table('digest_items') as batch:
        batch.add_column(sa.Column('explanation', sa.JSON(), nullable=True))
    connection = op.get_bind()
    for low, high in _ranges(connection):
        rows = connection.execute(
            sa.select(
                _items.c.digest_id, _items.c.paper_id, sa.cast(_explanations.c.body, sa.Text)
            )
            .select_from(
                _items.outerjoin(_explanations, _explanations.c.id == _items.c.explanation_id)
            )
            .where(_items.c.digest_id >= low, _items.c.digest_id < high)
        ).all()
        moved = [{'d': d, 'p': p, 'v': json.loads(body) if body else {}} for d, p, body in rows]
        _set(connection, 'explanation', moved)
    with op.batch_alter_table('digest_items') as batch:
        batch.alter_column('explanation', existing_type=sa.JSON(), nullable=False)
        batch.drop_constraint(op.f('fk_digest_items_explanation_id_explanations'), type_='foreignkey')
        batch.drop_column('explanation_id')
    op.drop_table('explanations')
