"""a dedicated session's node

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``sessions.node``: the node of the executor (a Ray node id) that a dedicated session
is pinned to, recorded when its first job starts there. Any leader, after a failover
or a restart, runs the session's next jobs on that node while it lives. Not announced
by a notice: only the leader reads it, and only the leader writes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("node", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("node")
