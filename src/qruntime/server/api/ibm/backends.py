"""IBM's backends API: the list with queue lengths, configuration, properties and status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.ibm import shapes
from qruntime.server.services import backends as service
from qruntime.server.store import jobs as job_store

router = APIRouter()


@router.get("/backends")
def list_backends(db: DbDep, state: StateDep, user: UserDep) -> dict[str, list[dict[str, Any]]]:
    # ``include_mocks`` is accepted and ignored: qruntime has no mock backends.
    return {
        "devices": [
            shapes.backend_summary(
                entry, pending_jobs=job_store.count_queued(db, backend=entry.name)
            )
            for entry in state.catalogue
        ]
    }


@router.get("/backends/{name}/configuration")
def configuration(
    name: str, state: StateDep, user: UserDep, calibration_id: str | None = None
) -> dict[str, Any]:
    return service.backend_configuration(state.catalogue, name=name, calibration_id=calibration_id)


@router.get("/backends/{name}/properties")
def properties(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    # An ideal simulator has none; IBM answers an empty document, which the client skips.
    entry = state.catalogue.get(name)
    return entry.properties() or {}


@router.get("/backends/{name}/defaults")
def defaults(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    return service.backend_defaults(state.catalogue, name=name)


@router.get("/backends/{name}/status")
def status(name: str, db: DbDep, state: StateDep, user: UserDep) -> dict[str, Any]:
    entry = state.catalogue.get(name)
    return shapes.backend_status(entry, pending_jobs=job_store.count_queued(db, backend=name))
