"""several servers on one PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

``cluster_leader`` holds one row: the epoch of the server that leads (it runs the
scheduler), bumped by each server that takes the lead. A dispatch writes a job
``Running`` only while the epoch it was made under is still the current one, so a
deposed leader cannot start a job twice; ``jobs.dispatches`` counts the dispatches
of each job.

On PostgreSQL, triggers NOTIFY channel ``qruntime`` of what the servers must hear
from one another, in the transaction that writes it: a job queued (``q``), a job's
status changed (``j``), an interim result stored (``i``), a session opened or
closed (``S``). A payload is a few words: the kind, the writing server's id (the
``qruntime.server`` setting of its connections, ``-`` for other writers), the row's
keys; listeners read the rest from the store. Log lines are not announced.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SERVER = "coalesce(nullif(current_setting('qruntime.server', true), ''), '-')"

_POSTGRESQL = [
    f"""
    CREATE FUNCTION qruntime_job_notice() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM pg_notify('qruntime', concat_ws(' ', 'q', {_SERVER}, NEW.id, NEW.seq,
                NEW.owner_id, coalesce(NEW.session_id, '-'), NEW.backend));
        ELSE
            PERFORM pg_notify('qruntime', concat_ws(' ', 'j', {_SERVER}, NEW.id, OLD.status,
                NEW.status, NEW.seq, NEW.owner_id, coalesce(NEW.session_id, '-'), NEW.backend));
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER jobs_noticed_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION qruntime_job_notice()
    """,
    """
    CREATE TRIGGER jobs_noticed_status AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION qruntime_job_notice()
    """,
    f"""
    CREATE FUNCTION qruntime_interim_notice() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('qruntime', concat_ws(' ', 'i', {_SERVER}, NEW.job_id, NEW.seq));
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER interim_noticed AFTER INSERT ON job_interim_results
    FOR EACH ROW EXECUTE FUNCTION qruntime_interim_notice()
    """,
    f"""
    CREATE FUNCTION qruntime_session_notice() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('qruntime', concat_ws(' ', 'S', {_SERVER}, NEW.id));
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER sessions_noticed_insert AFTER INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION qruntime_session_notice()
    """,
    """
    CREATE TRIGGER sessions_noticed_closed AFTER UPDATE OF accepting_jobs ON sessions
    FOR EACH ROW WHEN (OLD.accepting_jobs IS DISTINCT FROM NEW.accepting_jobs)
    EXECUTE FUNCTION qruntime_session_notice()
    """,
    # A non-leader counts a user's queued jobs from the store (the per-user cap).
    "CREATE INDEX ix_jobs_queued_owner ON jobs (owner_id) WHERE status = 'Queued'",
]


def upgrade() -> None:
    op.create_table(
        "cluster_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("server", sa.String(length=64), nullable=True),
        sa.Column("elected_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO cluster_leader (id, epoch) VALUES (1, 0)")
    op.add_column("jobs", sa.Column("dispatches", sa.Integer(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRESQL:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_jobs_queued_owner")
        op.execute("DROP TRIGGER IF EXISTS sessions_noticed_closed ON sessions")
        op.execute("DROP TRIGGER IF EXISTS sessions_noticed_insert ON sessions")
        op.execute("DROP FUNCTION IF EXISTS qruntime_session_notice()")
        op.execute("DROP TRIGGER IF EXISTS interim_noticed ON job_interim_results")
        op.execute("DROP FUNCTION IF EXISTS qruntime_interim_notice()")
        op.execute("DROP TRIGGER IF EXISTS jobs_noticed_status ON jobs")
        op.execute("DROP TRIGGER IF EXISTS jobs_noticed_insert ON jobs")
        op.execute("DROP FUNCTION IF EXISTS qruntime_job_notice()")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dispatches")
    op.drop_table("cluster_leader")
