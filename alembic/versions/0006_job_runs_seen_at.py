"""job runs seen_at: the daemon's last sign of life, also while a long tick runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.store.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_runs') as batch:
        batch.add_column(sa.Column('seen_at', digest.store.schema.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_runs') as batch:
        batch.drop_column('seen_at')
