"""Translations between qruntime's wire models and the shapes IBM's client reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Header

from qruntime.backends.catalogue import BackendEntry
from qruntime.errors import InputValueError
from qruntime.schemas.jobs import RAN_TOO_LONG, JobOut, JobState

__all__ = [
    "RAN_TOO_LONG_CODE",
    "backend_status",
    "backend_summary",
    "check_service_crn",
    "job_to_ibm",
    "metrics_to_ibm",
]

#: IBM's reason code for a job cancelled at its max_execution_time; the client raises
#: ``RuntimeJobMaxTimeoutError`` for it.
RAN_TOO_LONG_CODE = 1305


async def check_service_crn(service_crn: str | None = Header(default=None)) -> None:
    """Refuse a ``Service-CRN`` header that is not a CRN; its content is otherwise unused.

    qruntime has no IBM Cloud instances: who may do what follows from the access token.
    """
    if service_crn is not None and not service_crn.startswith("crn:"):
        raise InputValueError(f"Service-CRN {service_crn!r} is not a CRN (crn:v1:...).")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_to_ibm(job: JobOut) -> dict[str, Any]:
    """A job as IBM's ``GET /jobs/{id}`` shows it."""
    reason_code = job.state.reason_code
    if job.status == JobState.CANCELLED and job.state.reason == RAN_TOO_LONG:
        reason_code = RAN_TOO_LONG_CODE
    state: dict[str, Any] = {"status": job.status.value}
    if job.state.reason:
        state["reason"] = job.state.reason
    if reason_code is not None:
        state["reason_code"] = reason_code
    body: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": job.status.value,
        "program": {"id": job.program["id"]},
        "created": _iso(job.created),
        "runtime": "",
        "private": job.private,
        "session_id": job.session_id,
        "tags": job.tags,
        "cost": job.cost,
        "log_level": job.log_level,
    }
    if job.params is not None:
        body["params"] = job.params
    return body


def backend_status(entry: BackendEntry, *, pending_jobs: int) -> dict[str, Any]:
    """IBM's ``/backends/{name}/status`` (``state``, ``status``, ``length_queue``)."""
    status = entry.status(pending_jobs=pending_jobs)
    return {
        "name": entry.name,
        "backend_version": status["backend_version"],
        "state": bool(status["operational"]),
        "status": status["status_msg"],
        "message": "",
        "length_queue": pending_jobs,
    }


def backend_summary(entry: BackendEntry, *, pending_jobs: int) -> dict[str, Any]:
    """One item of IBM's ``GET /backends`` list: what ``least_busy`` reads without more calls."""
    reason = entry.unavailable_reason
    return {
        "name": entry.name,
        "status": {"name": "offline", "reason": reason}
        if reason is not None
        else {"name": "online", "reason": "available"},
        "qubits": entry.spec.num_qubits,
        "physical_qubits": entry.spec.num_qubits,
        "queue_length": pending_jobs,
        "simulator": entry.spec.simulator,
        "processor_type": {"family": "qruntime", "revision": "1"},
        "performance": {},
    }


def metrics_to_ibm(metrics: dict[str, Any], *, job: JobOut) -> dict[str, Any]:
    """qruntime's job metrics plus the ``usage`` fields IBM's ``job.usage()`` reads."""
    seconds = float(metrics.get("usage", {}).get("seconds") or 0.0)
    usage = dict(metrics.get("usage") or {})
    usage.update(
        quantum_seconds=seconds,
        seconds=seconds,
        qpu_charge_time_seconds=seconds,
        # "pending" makes job.usage() answer 0 until the job has ended.
        status="final" if job.status.is_final else "pending",
    )
    return {**metrics, "usage": usage, "qiskit_version": metrics.get("qiskit_version", "")}
