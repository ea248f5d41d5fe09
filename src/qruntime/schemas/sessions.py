"""Wire models for sessions (the shapes of IBM's sessions API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    """``POST /sessions``."""

    model_config = ConfigDict(extra="ignore")

    mode: Literal["dedicated", "batch"] = "dedicated"
    backend: str = Field(min_length=1, max_length=64, examples=["aer_simulator"])
    max_ttl: int | None = Field(default=None, gt=0, description="max_time in seconds.")


class SessionUpdate(BaseModel):
    """``PATCH /sessions/{id}``: ``accepting_jobs: false`` closes the session."""

    model_config = ConfigDict(extra="forbid")

    accepting_jobs: bool


class SessionJobs(BaseModel):
    total: int
    pending: int = Field(description="Queued or running.")


class SessionTimestamp(BaseModel):
    status: str = Field(examples=["open"])
    timestamp: str | None = Field(description="ISO 8601.")


class SessionOut(BaseModel):
    """A session's details (IBM's shape): its state, clocks, timestamps and usage."""

    model_config = ConfigDict(extra="allow")

    id: str
    backend_name: str
    mode: Literal["dedicated", "batch"]
    state: Literal["open", "active", "inactive", "closed"]
    state_reason: str | None = None
    accepting_jobs: bool
    max_ttl: float = Field(description="max_time in seconds.")
    interactive_ttl: float = Field(description="Seconds it stays active between two jobs.")
    active_ttl: float = Field(description="Seconds of max_time left.")
    elapsed_time: float = Field(description="Seconds since its first job started.")
    usage_time: float = Field(description="Seconds its jobs have run.")
    jobs: SessionJobs
    created_at: str | None = None
    started_at: str | None = None
    activated_at: str | None = None
    last_job_started: str | None = None
    last_job_completed: str | None = None
    closed_at: str | None = None
    timestamps: list[SessionTimestamp]
    node: str | None = Field(
        default=None,
        description="The Ray node a dedicated session's jobs run on (its pin); "
        "null on one machine and before its first job.",
    )


class SessionList(BaseModel):
    """``GET /sessions``: a page of sessions, and how many match in all."""

    sessions: list[SessionOut]
    count: int
