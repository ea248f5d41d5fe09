"""IBM's sessions API over qruntime's session service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from qruntime.schemas.sessions import SessionCreate, SessionOut
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.openapi import errors
from qruntime.server.services import sessions as service

router = APIRouter()

_NO_SESSION = (404, "No such session, or not yours.")


class IbmSessionCreate(SessionCreate):
    """``POST /sessions`` as IBM's client sends it (``instance`` and extras are ignored).

    The fields and their bounds are qruntime's own, so a body that validates here is one
    the session service takes.
    """

    model_config = ConfigDict(extra="ignore")


class IbmSessionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    accepting_jobs: bool


@router.post(
    "/sessions",
    status_code=200,
    response_model=None,
    summary="Open a session (IBM)",
    responses={
        200: {"model": SessionOut, "description": "The new session."},
        **errors((404, "No such backend.")),
    },
)
def create(body: IbmSessionCreate, db: DbDep, user: UserDep, state: StateDep) -> dict[str, Any]:
    """Open a ``dedicated`` or ``batch`` session on ``backend``, as ``POST /sessions``."""
    return service.open_and_notify(
        db,
        user=user,
        payload=body,
        catalogue=state.catalogue,
        interactive_ttl=state.settings.interactive_ttl,
        max_ttl_limit=state.settings.max_session_ttl,
        runtime=state.runtime,
    )


@router.get(
    "/sessions/{session_id}",
    response_model=None,
    summary="Get a session (IBM)",
    responses={
        200: {"model": SessionOut, "description": "The session's details."},
        **errors(_NO_SESSION),
    },
)
def details(session_id: str, db: DbDep, user: UserDep) -> dict[str, Any]:
    """A session's state, clocks, usage and timestamps."""
    return service.to_wire(db, service.owned_session(db, user=user, session_id=session_id))


@router.patch(
    "/sessions/{session_id}",
    status_code=204,
    summary="Close a session (IBM)",
    responses=errors(_NO_SESSION),
)
def update(
    session_id: str, body: IbmSessionUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    """``{"accepting_jobs": false}`` closes the session; its queued and running jobs
    finish."""
    if body.accepting_jobs:
        service.owned_session(db, user=user, session_id=session_id)  # reopening is not offered
    else:
        service.close_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)


@router.delete(
    "/sessions/{session_id}/close",
    status_code=204,
    summary="Cancel a session (IBM)",
    responses=errors(_NO_SESSION),
)
def cancel(session_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Close the session and cancel its queued jobs."""
    service.cancel_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)
