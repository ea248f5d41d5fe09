"""The database tables: one SQLAlchemy 2 declarative model per table.

Timestamps are stored timezone-aware (UTC). Identifiers are strings so that
they can be shown to users as they are (``hello-world-nQ9dgRjGEe``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware in UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Base of every table."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When an admin disabled the user (it cannot log in); None while it is enabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiToken(Base):
    """A long-lived API token, stored as a SHA-256 hash only."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccessToken(Base):
    """A short-lived access token obtained by exchanging an API token."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    api_token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ServerSecret(Base):
    """Secrets the server generates once and keeps (e.g. the access-token signing key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_programs_owner_name"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text)
    #: A folder program: its files as a zip archive; ``source`` is its entry module's.
    archive: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    entry_point: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dependencies: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    max_execution_time: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    builtin: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """A job: durable from the moment its id is returned to the client."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        Index("ix_jobs_status_backend", "status", "backend"),
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    program_id: Mapped[str] = mapped_column(String(128), index=True)
    backend: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    log_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    max_execution_time: Mapped[int] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    logs: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    running_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    usage_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: A private job's params are never returned; its result is deleted when first read.
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    result_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: How many times the job was dispatched (marked Running): more than 1 only for a
    #: job queued again after its server died or stopped.
    dispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ClusterLeader(Base):
    """The one row that says which server leads, under which epoch (migration 0007)."""

    __tablename__ = "cluster_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    server: Mapped[str | None] = mapped_column(String(64), nullable=True)
    elected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The leader's executor's nodes as it last recorded them, and when (migration 0011).
    nodes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    nodes_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobCount(Base):
    """How many jobs a user has: kept by database triggers on ``jobs`` (migration 0003)."""

    __tablename__ = "job_counts"

    owner_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(Integer)


class JobInterimResult(Base):
    """One interim result of a job, in publish order."""

    __tablename__ = "job_interim_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuntimeSession(Base):
    """A session: one user's jobs on one backend, scheduled together (dedicated or batch)."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    backend: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    accepting_jobs: Mapped[bool] = mapped_column(Boolean, default=True)
    max_ttl: Mapped[int] = mapped_column(Integer)
    interactive_ttl: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The executor's node a dedicated session is pinned to (a Ray node id): its jobs
    #: run there, whichever server leads. None on one machine.
    node: Mapped[str | None] = mapped_column(String(128), nullable=True)
