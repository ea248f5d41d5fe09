"""a completed job's small result in its notice

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

The ``j`` notice of a job that became ``Completed`` (migration 0007) carries the job's
result after a newline, when the job is not private and the whole payload stays under
PostgreSQL's 8,000-byte limit: a server whose client waits on a job that another server
ran answers with the result it heard, without reading it back from the store. A private
job's result is never sent (it is read once, from the store); a larger one is read from
the store as before.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SERVER = "coalesce(nullif(current_setting('qruntime.server', true), ''), '-')"
#: The most bytes a payload may hold here (PostgreSQL refuses 8,000 and more).
_MOST = 7900


def _function(*, result: bool) -> str:
    sent = (
        f"""
            IF NEW.status = 'Completed' AND NOT coalesce(NEW.private, false)
                    AND NEW.result IS NOT NULL
                    AND octet_length(payload) + octet_length(NEW.result) < {_MOST} THEN
                payload := payload || E'\\n' || NEW.result;
            END IF;"""
        if result
        else ""
    )
    return f"""
    CREATE OR REPLACE FUNCTION qruntime_job_notice() RETURNS trigger AS $$
    DECLARE
        payload text;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM pg_notify('qruntime', concat_ws(' ', 'q', {_SERVER}, NEW.id, NEW.seq,
                NEW.owner_id, coalesce(NEW.session_id, '-'), NEW.backend));
        ELSE
            payload := concat_ws(' ', 'j', {_SERVER}, NEW.id, OLD.status, NEW.status,
                NEW.seq, NEW.owner_id, coalesce(NEW.session_id, '-'), NEW.backend);{sent}
            PERFORM pg_notify('qruntime', payload);
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function(result=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function(result=False))
