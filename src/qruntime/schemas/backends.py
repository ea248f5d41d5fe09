"""Wire models of the backend catalogue: IBM's documents, as the REST API serves them.

They document the answers; the documents themselves are built by
`qruntime.backends.catalogue` and hold more fields than listed here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BackendSummary(BaseModel):
    """One backend of ``GET /backends``: what a list shows without its documents."""

    name: str
    kind: str = Field(examples=["device"], description="aer, device or provider.")
    num_qubits: int
    simulator: bool
    lanes: int = Field(description="Jobs that may run on it at once.")
    description: str
    max_shots: int
    max_experiments: int
    operational: bool = Field(default=True, description="Whether it can run jobs here.")
    status_msg: str = Field(
        default="active", description="Why it cannot run jobs (and what to install), if not."
    )


class BackendList(BaseModel):
    """``GET /backends``: the server's backends, as configured."""

    devices: list[str] = Field(examples=[["aer_simulator", "fake_5q", "fake_27q"]])
    backends: list[BackendSummary] = Field(
        default_factory=list,
        description="The same backends in the same order, each with its size and kind.",
    )


class BackendConfiguration(BaseModel):
    """IBM's backend configuration: qubits, gates, coupling map, limits."""

    model_config = ConfigDict(extra="allow")

    backend_name: str
    backend_version: str
    n_qubits: int
    basis_gates: list[str]
    coupling_map: list[list[int]] | None = Field(
        default=None, description="null: all-to-all (an ideal simulator)."
    )
    simulator: bool
    max_shots: int


class BackendProperties(BaseModel):
    """IBM's backend properties: each qubit's and gate's calibration (T1, T2, errors).

    Empty (``{}``) in the IBM-compatible API for an ideal simulator, which has none.
    """

    model_config = ConfigDict(extra="allow")

    backend_name: str | None = None
    backend_version: str | None = None
    last_update_date: str | None = None
    qubits: list[list[dict[str, Any]]] | None = None
    gates: list[dict[str, Any]] | None = None
    general: list[dict[str, Any]] | None = None


class BackendDefaults(BaseModel):
    """IBM's pulse defaults: only the estimated frequencies (pulse control is gone)."""

    model_config = ConfigDict(extra="allow")

    qubit_freq_est: list[float | None]
    meas_freq_est: list[float]


class BackendStatus(BaseModel):
    """IBM's backend status, with the length of the backend's queue."""

    model_config = ConfigDict(extra="allow")

    backend_name: str
    backend_version: str
    operational: bool
    pending_jobs: int = Field(description="Jobs queued for this backend.")
    status_msg: str = Field(examples=["active"])
