"""votes: readers' "more / less like this" per subscriber, paper and topic

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.store.schema

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('votes',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('paper_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('vote', sa.Integer(), nullable=False),
    sa.Column('voted_at', digest.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('vote IN (-1, 1)', name=op.f('ck_votes_vote')),
    sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], name=op.f('fk_votes_paper_id_papers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_votes_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_votes_topic_id_topics'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'paper_id', 'topic_id', name=op.f('pk_votes'))
    )
    op.create_index('ix_votes_topic_id', 'votes', ['topic_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_votes_topic_id', table_name='votes')
    op.drop_table('votes')
