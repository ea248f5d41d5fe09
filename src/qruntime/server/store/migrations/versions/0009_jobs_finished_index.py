"""an index on when jobs ended

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

``ix_jobs_finished_at``: the dashboard's overview counts the jobs each backend finished
in the last hour, and usage (``GET /usage``, the admin page) sums the jobs that ended
in a period; both read a range of ``finished_at``, which was a scan of every job.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
