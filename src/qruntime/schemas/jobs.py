"""Wire models for jobs, and the one table of legal job state transitions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobState(StrEnum):
    """A job's status as the REST API spells it."""

    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

#: Which state may follow which. Running -> Queued is the re-queue after a server restart.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

#: The reason of a job cancelled for running over its max_execution_time (IBM's wording).
RAN_TOO_LONG = "RAN TOO LONG"


def sources_of(target: JobState) -> list[str]:
    """The states from which ``target`` may be entered, as wire strings."""
    return [state.value for state, nexts in TRANSITIONS.items() if target in nexts]


class JobCreate(BaseModel):
    """``POST /jobs``."""

    model_config = ConfigDict(extra="forbid")

    program_id: str = Field(min_length=1, max_length=128, examples=["hello-world"])
    backend: str = Field(min_length=1, max_length=64, examples=["aer_simulator"])
    params: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = None
    start_session: bool = False
    session_time: int | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list, max_length=64)
    log_level: str | None = None
    cost: int | None = Field(default=None, gt=0, description="max_execution_time in seconds.")
    private: bool = Field(
        default=False,
        description="Inputs never returned; the result can be read once, then is deleted.",
    )


class JobCreated(BaseModel):
    id: str
    backend: str


class JobStateOut(BaseModel):
    status: JobState
    reason: str | None = None
    reason_code: int | None = None


class JobOut(BaseModel):
    id: str
    backend: str
    state: JobStateOut
    status: JobState
    program: dict[str, str]
    created: datetime
    running: datetime | None = None
    finished: datetime | None = None
    session_id: str | None = None
    tags: list[str]
    log_level: str | None = None
    cost: int
    params: dict[str, Any] | None = None
    private: bool = False
    owner: str | None = Field(default=None, description="The name of the job's owner.")


class JobList(BaseModel):
    jobs: list[JobOut]
    count: int


class TagsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(max_length=64)


class InterimResults(BaseModel):
    """``GET /jobs/{id}/interim_results``: what the job published so far, oldest first."""

    interim_results: list[str] = Field(description="Each one runtime-encoded JSON text.")


class JobTimestamps(BaseModel):
    created: str | None = Field(description="ISO 8601.")
    running: str | None = Field(description="When it started; null while queued.")
    finished: str | None = Field(description="When it ended; null until then.")


class JobUsage(BaseModel):
    model_config = ConfigDict(extra="allow")

    seconds: float = Field(description="Seconds the job ran.")
    quantum_seconds: float


class JobMetrics(BaseModel):
    """``GET /jobs/{id}/metrics``: when the job ran, for how long, and what it reused.

    ``cache`` (what its worker reused: transpiled circuits, simulators) and ``worker``
    (``pool``, ``session`` or ``sandbox``) come once the job has ended.
    """

    model_config = ConfigDict(extra="allow")

    timestamps: JobTimestamps
    usage: JobUsage
    bss: dict[str, float]
    executions: int | None = None
    cache: dict[str, int] | None = None
    worker: str | None = None
