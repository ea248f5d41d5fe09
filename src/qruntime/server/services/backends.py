"""Use cases for backends: the catalogue as the REST API shows it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.errors import NotFoundError
from qruntime.server.store import jobs as job_store

__all__ = [
    "backend_configuration",
    "backend_defaults",
    "backend_properties",
    "backend_status",
    "backend_summaries",
]


def backend_summaries(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Each backend's name, kind, size and limits, from its spec alone (no documents built)."""
    return [
        {
            "name": entry.name,
            "kind": entry.spec.kind,
            "num_qubits": entry.spec.num_qubits,
            "simulator": entry.spec.simulator,
            "lanes": entry.spec.lanes,
            "description": entry.spec.description,
            "max_shots": entry.spec.max_shots,
            "max_experiments": entry.spec.max_experiments,
            "operational": entry.unavailable_reason is None,
            "status_msg": entry.unavailable_reason or "active",
        }
        for entry in catalogue
    ]


def backend_configuration(
    catalogue: Catalogue, *, name: str, calibration_id: str | None = None
) -> dict[str, Any]:
    """A backend's configuration; ``calibration_id`` names none (404): each backend has one."""
    entry = catalogue.get(name)
    if calibration_id is not None:
        raise NotFoundError(
            f"Backend {name} has no calibration {calibration_id!r}: qruntime serves one "
            "calibration per backend; leave calibration_id out."
        )
    return entry.configuration()


def backend_properties(catalogue: Catalogue, *, name: str) -> dict[str, Any]:
    properties = catalogue.get(name).properties()
    if properties is None:
        raise NotFoundError(f"Backend {name} is an ideal simulator and has no properties.")
    return properties


def backend_defaults(catalogue: Catalogue, *, name: str) -> dict[str, Any]:
    defaults = catalogue.get(name).defaults()
    if defaults is None:
        raise NotFoundError(f"Backend {name} has no pulse defaults.")
    return defaults


def backend_status(db: Session, catalogue: Catalogue, *, name: str) -> dict[str, Any]:
    entry = catalogue.get(name)
    return entry.status(pending_jobs=job_store.count_queued(db, backend=name))
