"""ascii addresses: subscribers' international domains stored in their ASCII form

Releases before this one stored `user@bücher.de` as typed (its Unicode form);
addresses are now stored as any relay takes them, `user@xn--bcher-kva.de`,
and looked up that way. This rewrites the stored rows so an old subscriber is
still found (and not subscribed a second time). A row whose ASCII form is
already taken by another row is left as it is: merging two subscribers is an
operator's decision. Addresses with a non-ASCII local part (which need
SMTPUTF8) cannot be written in ASCII and are left too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _ascii(email: str) -> str | None:
    local, at, domain = email.rpartition("@")
    if not at or not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}".lower()
    except UnicodeError:
        return None


def upgrade() -> None:
    subscribers = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("email", sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(subscribers.c.id, subscribers.c.email)).all()
    taken = {email for _, email in rows}
    for row_id, email in rows:
        if email.isascii():
            continue
        converted = _ascii(email)
        if converted is None or converted in taken:
            continue
        connection.execute(
            subscribers.update().where(subscribers.c.id == row_id).values(email=converted)
        )
        taken.add(converted)


def downgrade() -> None:
    pass  # the ASCII form is the same address
