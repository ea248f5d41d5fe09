"""private jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

A private job's inputs are never returned and its result can be read once: the
result, inputs and interim results are deleted by that read (``result_read_at``
records when it happened, so a second read can say why there is nothing).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("jobs", sa.Column("result_read_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of the table would
    # drop the job-count triggers of 0003.
    op.drop_column("jobs", "result_read_at")
    op.drop_column("jobs", "private")
