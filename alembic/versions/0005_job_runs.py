"""job runs: the last run of each `digest run` job, for `digest status`

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.store.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('started_at', digest.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', digest.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('ok_at', digest.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_job_runs'))
    )


def downgrade() -> None:
    op.drop_table('job_runs')
