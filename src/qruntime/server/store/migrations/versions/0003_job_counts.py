"""per-user job counts, kept by the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

The first page of a user's jobs comes with how many jobs the user has; with tens of
thousands queued, counting them was most of that request. Triggers keep one row per
user, so the count stays right whatever writes the jobs table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SQLITE = [
    """
    CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs
    BEGIN
        INSERT OR IGNORE INTO job_counts (owner_id, total) VALUES (NEW.owner_id, 0);
        UPDATE job_counts SET total = total + 1 WHERE owner_id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs
    BEGIN
        UPDATE job_counts SET total = total - 1 WHERE owner_id = OLD.owner_id;
    END
    """,
]

_POSTGRESQL = [
    """
    CREATE FUNCTION qruntime_count_jobs() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO job_counts (owner_id, total) VALUES (NEW.owner_id, 1)
            ON CONFLICT (owner_id) DO UPDATE SET total = job_counts.total + 1;
        ELSE
            UPDATE job_counts SET total = total - 1 WHERE owner_id = OLD.owner_id;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER jobs_counted AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION qruntime_count_jobs()
    """,
]


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id"),
    )
    op.execute(
        "INSERT INTO job_counts (owner_id, total) "
        "SELECT owner_id, count(*) FROM jobs GROUP BY owner_id"
    )
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRESQL if dialect == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS jobs_counted ON jobs")
        op.execute("DROP FUNCTION IF EXISTS qruntime_count_jobs()")
    else:
        op.execute("DROP TRIGGER IF EXISTS jobs_counted_insert")
        op.execute("DROP TRIGGER IF EXISTS jobs_counted_delete")
    op.drop_table("job_counts")
