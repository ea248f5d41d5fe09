"""the leader's nodes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

``cluster_leader.nodes`` and ``nodes_at``: the nodes the leader's executor runs jobs on
(id, address, whether its workers are ready, resources), as the leader last recorded
them, and when. The leader writes them, fenced by its epoch, when a node joins, becomes
ready or is lost, not per job; any server's cluster view (``GET /cluster``) shows them,
where only the leader could list its executor's nodes before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cluster_leader", sa.Column("nodes", sa.JSON(), nullable=True))
    op.add_column(
        "cluster_leader", sa.Column("nodes_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("cluster_leader") as batch:
        batch.drop_column("nodes_at")
        batch.drop_column("nodes")
