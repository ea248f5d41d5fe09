"""The backend catalogue in IBM's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.schemas.backends import (
    BackendConfiguration,
    BackendDefaults,
    BackendList,
    BackendProperties,
    BackendStatus,
)
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.openapi import errors
from qruntime.server.services import backends as service

router = APIRouter(tags=["backends"])

_NO_BACKEND = (404, "No backend of that name in the server's catalogue.")


@router.get("/backends", response_model=BackendList, summary="List backends")
def list_backends(state: StateDep, user: UserDep) -> dict[str, Any]:
    """The names of the server's backends, in the order its configuration gives them, and
    the same backends with their size and kind (what a list needs, without their
    configuration and properties, which the client fetches per backend when used)."""
    return {
        "devices": state.catalogue.names(),
        "backends": service.backend_summaries(state.catalogue),
    }


@router.get(
    "/backends/{name}/configuration",
    response_model=None,
    summary="Get a backend's configuration",
    responses={
        200: {"model": BackendConfiguration, "description": "IBM's configuration document."},
        **errors(_NO_BACKEND),
    },
)
def configuration(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """The backend's qubits, basis gates, coupling map and limits, in IBM's format (the
    client builds a Qiskit ``Target`` from it)."""
    return service.backend_configuration(state.catalogue, name=name)


@router.get(
    "/backends/{name}/properties",
    response_model=None,
    summary="Get a backend's properties",
    responses={
        200: {"model": BackendProperties, "description": "IBM's properties document."},
        **errors((404, "No such backend, or an ideal simulator, which has no properties.")),
    },
)
def properties(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """The calibration of a noisy backend: each qubit's T1, T2, frequency and readout
    error, each gate's error and length, in IBM's format."""
    return service.backend_properties(state.catalogue, name=name)


@router.get(
    "/backends/{name}/defaults",
    response_model=None,
    summary="Get a backend's pulse defaults",
    responses={
        200: {"model": BackendDefaults, "description": "IBM's pulse defaults document."},
        **errors((404, "No such backend, or one without pulse defaults.")),
    },
)
def defaults(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """The estimated qubit and measurement frequencies of a noisy backend (pulse-level
    control is not offered)."""
    return service.backend_defaults(state.catalogue, name=name)


@router.get(
    "/backends/{name}/status",
    response_model=None,
    summary="Get a backend's status",
    responses={
        200: {"model": BackendStatus, "description": "IBM's status document."},
        **errors(_NO_BACKEND),
    },
)
def status(name: str, db: DbDep, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Whether the backend takes jobs, and how many are queued for it."""
    return service.backend_status(db, state.catalogue, name=name)
