"""The answers of the IBM-compatible API, as models for its OpenAPI description.

The routes build these answers as dicts (`qruntime.server.api.ibm.shapes`), in the
shapes ``qiskit-ibm-runtime`` reads; the models say what those shapes hold, and allow
more fields, as IBM's own answers have.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qruntime.schemas.jobs import JobMetrics


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class IamToken(_Open):
    """IBM Cloud IAM's token answer, with one of qruntime's access tokens."""

    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds the token lives.")
    expiration: int = Field(description="When it expires, in seconds since the epoch.")
    scope: str


class BackendSummary(_Open):
    """One backend of the list: what ``least_busy`` reads without more calls."""

    name: str
    status: dict[str, str] = Field(examples=[{"name": "online", "reason": "available"}])
    qubits: int
    physical_qubits: int
    queue_length: int = Field(description="Jobs queued for this backend.")
    simulator: bool
    processor_type: dict[str, Any]
    performance: dict[str, Any]


class BackendSummaries(_Open):
    devices: list[BackendSummary]


class BackendStatus(_Open):
    name: str
    backend_version: str
    state: bool = Field(description="True: operational.")
    status: str = Field(examples=["active"])
    message: str
    length_queue: int


class JobState(_Open):
    status: str = Field(examples=["Completed"])
    reason: str | None = None
    reason_code: int | None = None


class Job(_Open):
    """A job in IBM's shape; ``params`` only when asked for and not private."""

    id: str
    backend: str
    state: JobState
    status: str = Field(examples=["Queued", "Running", "Completed", "Failed", "Cancelled"])
    program: dict[str, str]
    created: str | None = Field(description="ISO 8601.")
    runtime: str
    private: bool
    session_id: str | None = None
    tags: list[str]
    cost: int | None = None
    log_level: str | None = None
    params: dict[str, Any] | None = None


class JobList(_Open):
    jobs: list[Job]
    count: int


class JobCreated(_Open):
    id: str
    backend: str
    session_id: str | None = None


class JobMetricsIbm(JobMetrics):
    """qruntime's job metrics, with the ``usage`` fields IBM's ``job.usage()`` reads."""

    qiskit_version: str


class InstanceUsage(_Open):
    """The caller's usage, as IBM's instance usage; qruntime sets no limit."""

    instance_id: str
    plan_id: str
    usage_consumed_seconds: float
    usage_limit_seconds: float | None = None
    usage_limit_reached: bool
    usage_remaining_seconds: int
