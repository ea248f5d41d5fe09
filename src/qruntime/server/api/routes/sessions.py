"""Sessions: open, list, read, close (no new jobs), cancel (and cancel queued jobs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from qruntime.schemas.sessions import SessionCreate, SessionList, SessionOut, SessionUpdate
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.openapi import errors
from qruntime.server.api.paging import Offset
from qruntime.server.services import sessions as service

router = APIRouter(tags=["sessions"])

_NO_SESSION = (404, "No such session, or not yours.")


@dataclass
class SessionFilters:
    """Paging, filters and order of a session listing."""

    limit: Annotated[int, Query(ge=1, le=1000)] = 10
    offset: Offset = 0
    state: Literal["open", "active", "inactive", "closed"] | None = None
    pending: Annotated[bool | None, Query(description="True: not closed; false: closed.")] = None
    backend: str | None = None
    mode: Literal["dedicated", "batch"] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: Annotated[str, Query(pattern="^(ASC|DESC|asc|desc)$")] = "DESC"
    user: Annotated[
        str | None,
        Query(max_length=64, description="Admins: list this user's sessions (by name)."),
    ] = None
    all_users: Annotated[bool, Query(description="Admins: list every user's sessions.")] = False


@router.get(
    "/sessions",
    response_model=None,
    summary="List sessions",
    responses={200: {"model": SessionList, "description": "A page of your sessions."}},
)
def list_sessions(
    filters: Annotated[SessionFilters, Depends()], db: DbDep, user: UserDep
) -> dict[str, Any]:
    """Your sessions, newest first (``sort=ASC``: oldest), a page of ``limit`` from
    ``offset``, with ``count``, the number that match. Filters: ``state``, ``pending``
    (not closed; false: closed), ``backend``, ``mode``, ``created_after``,
    ``created_before``."""
    return service.list_sessions(
        db,
        user=user,
        limit=filters.limit,
        offset=filters.offset,
        state=filters.state,
        pending=filters.pending,
        backend=filters.backend,
        mode=filters.mode,
        created_after=filters.created_after,
        created_before=filters.created_before,
        descending=filters.sort.upper() == "DESC",
        owner=filters.user,
        all_users=filters.all_users,
    )


@router.post(
    "/sessions",
    status_code=201,
    response_model=None,
    summary="Open a session",
    responses={
        201: {"model": SessionOut, "description": "The new session."},
        **errors((404, "No such backend.")),
    },
)
def create(body: SessionCreate, db: DbDep, user: UserDep, state: StateDep) -> dict[str, Any]:
    """Open a session on ``backend``: ``dedicated`` (its jobs run one after another in a
    worker of its own, which keeps its caches) or ``batch`` (its jobs run side by side).
    Its ``max_ttl`` clock starts with its first job; submit jobs with its ``id`` as
    ``session_id``."""
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
    summary="Get a session",
    responses={
        200: {"model": SessionOut, "description": "The session's details."},
        **errors(_NO_SESSION),
    },
)
def details(session_id: str, db: DbDep, user: UserDep) -> dict[str, Any]:
    """A session's state, clocks (``max_ttl``, ``active_ttl``, ``elapsed_time``), usage
    and timestamps."""
    return service.to_wire(db, service.owned_session(db, user=user, session_id=session_id))


@router.patch(
    "/sessions/{session_id}",
    status_code=204,
    summary="Close a session",
    responses=errors(_NO_SESSION),
)
def update(
    session_id: str, body: SessionUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    """``{"accepting_jobs": false}`` closes the session: it takes no new jobs, and its
    queued and running jobs finish. ``true`` changes nothing: a session is not reopened."""
    if not body.accepting_jobs:
        service.close_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    else:
        service.owned_session(db, user=user, session_id=session_id)  # reopening is not offered
    return Response(status_code=204)


@router.delete(
    "/sessions/{session_id}/close",
    status_code=204,
    summary="Cancel a session",
    responses=errors(_NO_SESSION),
)
def cancel(session_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Close the session and cancel its queued jobs; a running job runs to its end."""
    service.cancel_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return Response(status_code=204)
