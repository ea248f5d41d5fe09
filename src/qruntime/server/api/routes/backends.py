"""The backend catalogue in IBM's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.services import backends as service

router = APIRouter(tags=["backends"])


@router.get("/backends")
def list_backends(state: StateDep, user: UserDep) -> dict[str, list[str]]:
    return {"devices": state.catalogue.names()}


@router.get("/backends/{name}/configuration")
def configuration(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    return service.backend_configuration(state.catalogue, name=name)


@router.get("/backends/{name}/properties")
def properties(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    return service.backend_properties(state.catalogue, name=name)


@router.get("/backends/{name}/defaults")
def defaults(name: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    return service.backend_defaults(state.catalogue, name=name)


@router.get("/backends/{name}/status")
def status(name: str, db: DbDep, state: StateDep, user: UserDep) -> dict[str, Any]:
    return service.backend_status(db, state.catalogue, name=name)
