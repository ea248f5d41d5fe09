"""IBM's backends API: the list with queue lengths, configuration, properties and status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.schemas.backends import BackendConfiguration, BackendDefaults, BackendProperties
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.ibm import models, shapes
from qruntime.server.api.openapi import errors
from qruntime.server.services import backends as service
from qruntime.server.store import jobs as job_store

router = APIRouter()

_NO_BACKEND = (404, "No backend of that name in the server's catalogue.")


@router.get(
    "/backends",
    response_model=None,
    summary="List backends (IBM)",
    responses={200: {"model": models.BackendSummaries, "description": "The backends."}},
)
def list_backends(db: DbDep, state: StateDep, user: UserDep) -> dict[str, list[dict[str, Any]]]:
    """The backends with their qubit counts and queue lengths, as ``least_busy`` reads
    them."""
    # ``include_mocks`` is accepted and ignored: qruntime has no mock backends.
    return {
        "devices": [
            shapes.backend_summary(
                entry, pending_jobs=job_store.count_queued(db, backend=entry.name)
            )
            for entry in state.catalogue
        ]
    }


@router.get(
    "/backends/{name}/configuration",
    response_model=None,
    summary="Get a backend's configuration (IBM)",
    responses={
        200: {"model": BackendConfiguration, "description": "IBM's configuration document."},
        **errors((404, "No such backend, or a calibration_id it does not have.")),
    },
)
def configuration(
    name: str, state: StateDep, user: UserDep, calibration_id: str | None = None
) -> dict[str, Any]:
    """The backend's configuration; each backend has one calibration, so a
    ``calibration_id`` gets 404."""
    return service.backend_configuration(state.catalogue, name=name, calibration_id=calibration_id)


@router.get(
    "/backends/{name}/properties",
    response_model=None,
    summary="Get a backend's properties (IBM)",
    responses={
        200: {"model": BackendProperties, "description": "IBM's properties document."},
        **errors(_NO_BACKEND),
    },
)
def properties(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """The backend's calibration; ``{}`` for an ideal simulator, as IBM answers."""
    # An ideal simulator has none; IBM answers an empty document, which the client skips.
    entry = state.catalogue.get(name)
    return entry.properties() or {}


@router.get(
    "/backends/{name}/defaults",
    response_model=None,
    summary="Get a backend's pulse defaults (IBM)",
    responses={
        200: {"model": BackendDefaults, "description": "IBM's pulse defaults document."},
        **errors((404, "No such backend, or one without pulse defaults.")),
    },
)
def defaults(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """The estimated qubit and measurement frequencies of a noisy backend."""
    return service.backend_defaults(state.catalogue, name=name)


@router.get(
    "/backends/{name}/status",
    response_model=None,
    summary="Get a backend's status (IBM)",
    responses={
        200: {"model": models.BackendStatus, "description": "IBM's status document."},
        **errors(_NO_BACKEND),
    },
)
def status(name: str, db: DbDep, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Whether the backend takes jobs (``state``), and its queue's length."""
    entry = state.catalogue.get(name)
    return shapes.backend_status(entry, pending_jobs=job_store.count_queued(db, backend=name))
