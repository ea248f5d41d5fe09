"""IBM's sessions API over qruntime's session service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from qruntime.schemas.sessions import SessionCreate
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.services import sessions as service

router = APIRouter()


class IbmSessionCreate(BaseModel):
    """``POST /sessions`` as IBM's client sends it (``instance`` and extras are ignored)."""

    model_config = ConfigDict(extra="ignore")

    mode: str = "dedicated"
    backend: str = Field(min_length=1, max_length=64)
    max_ttl: int | None = Field(default=None, gt=0)


class IbmSessionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    accepting_jobs: bool


@router.post("/sessions", status_code=200)
def create(body: IbmSessionCreate, db: DbDep, user: UserDep, state: StateDep) -> dict[str, Any]:
    payload = SessionCreate.model_validate(body.model_dump())
    return service.open_and_notify(
        db,
        user=user,
        payload=payload,
        catalogue=state.catalogue,
        interactive_ttl=state.settings.interactive_ttl,
        max_ttl_limit=state.settings.max_session_ttl,
        runtime=state.runtime,
    )


@router.get("/sessions/{session_id}")
def details(session_id: str, db: DbDep, user: UserDep) -> dict[str, Any]:
    return service.to_wire(db, service.owned_session(db, user=user, session_id=session_id))


@router.patch("/sessions/{session_id}", status_code=204)
def update(
    session_id: str, body: IbmSessionUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    if body.accepting_jobs:
        service.owned_session(db, user=user, session_id=session_id)  # reopening is not offered
    else:
        service.close_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)


@router.delete("/sessions/{session_id}/close", status_code=204)
def cancel(session_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    service.cancel_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)
