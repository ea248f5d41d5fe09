"""disabled users

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

An admin can disable a user (``qruntime users disable``): a disabled user cannot log
in and its access tokens are refused, but its API tokens, jobs and programs are kept,
so enabling it again restores everything.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
