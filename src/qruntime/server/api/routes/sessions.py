"""Sessions: open, read, close (no new jobs), cancel (and cancel queued jobs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from qruntime.schemas.sessions import SessionCreate, SessionUpdate
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.services import sessions as service

router = APIRouter(tags=["sessions"])


@router.post("/sessions", status_code=201)
def create(body: SessionCreate, db: DbDep, user: UserDep, state: StateDep) -> dict[str, Any]:
    return service.open_and_notify(
        db,
        user=user,
        payload=body,
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
    session_id: str, body: SessionUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    if not body.accepting_jobs:
        service.close_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    else:
        service.owned_session(db, user=user, session_id=session_id)  # reopening is not offered
    return Response(status_code=204)


@router.delete("/sessions/{session_id}/close", status_code=204)
def cancel(session_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    service.cancel_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)
