"""vectors: paper embeddings and filter-text embeddings for the semantic signal

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('paper_vectors',
    sa.Column('paper_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], name=op.f('fk_paper_vectors_paper_id_papers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('paper_id', name=op.f('pk_paper_vectors'))
    )
    op.create_table('text_vectors',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', 'model', name=op.f('pk_text_vectors'))
    )


def downgrade() -> None:
    op.drop_table('text_vectors')
    op.drop_table('paper_vectors')
