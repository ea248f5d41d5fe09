"""Runtime programs: the shapes of IBM's legacy programs API."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from qruntime.errors import InputValueError
from qruntime.schemas import ProgramCreate, ProgramCreated, ProgramList, ProgramOut, ProgramUpdate
from qruntime.schemas.programs import ProgramEnvironment
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.paging import Offset
from qruntime.server.services import programs as service
from qruntime.server.services.environment import environment_listing

router = APIRouter(tags=["programs"])


@router.get("/programs", response_model=ProgramList)
def list_programs(
    db: DbDep,
    user: UserDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Offset = 0,
) -> ProgramList:
    programs, count = service.list_programs(db, user=user, limit=limit, offset=offset)
    return ProgramList(programs=programs, count=count)


@router.post("/programs", response_model=ProgramCreated, status_code=201)
def create_program(
    body: ProgramCreate, db: DbDep, user: UserDep, state: StateDep
) -> ProgramCreated:
    program_id = service.create_program(
        db,
        user=user,
        payload=body,
        max_bytes=state.settings.max_program_bytes,
        max_cost=state.settings.max_execution_time_limit,
    )
    return ProgramCreated(id=program_id)


@router.get("/programs/environment", response_model=ProgramEnvironment)
def program_environment(user: UserDep) -> ProgramEnvironment:
    """What uploaded programs can import: the Python version and the installed packages.

    A program's ``dependencies`` are checked against this list when it is uploaded.
    Admins add packages by installing them into the server's Python environment (see
    the README); nothing is installed when a job runs.
    """
    return ProgramEnvironment.model_validate(environment_listing())


@router.get("/programs/{program_id}", response_model=ProgramOut, response_model_exclude_none=True)
def get_program(program_id: str, db: DbDep, user: UserDep) -> ProgramOut:
    return service.get_program(db, user=user, program_id=program_id)


@router.patch("/programs/{program_id}", status_code=204)
def update_program(
    program_id: str, body: ProgramUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    service.update_program(
        db,
        user=user,
        program_id=program_id,
        payload=body,
        max_cost=state.settings.max_execution_time_limit,
    )
    return Response(status_code=204)


async def program_data(request: Request) -> tuple[str, str | None]:
    """The new code of ``PUT /programs/{id}/data``: ``{"data": base64, "entry_point": ...}``
    (``entry_point`` optional, for a zip archive) or a raw base64 body."""
    body = await request.body()
    if not request.headers.get("content-type", "").startswith("application/json"):
        return body.decode("ascii", errors="replace").strip(), None
    try:
        parsed = json.loads(body)
        data = parsed["data"]
    except (ValueError, KeyError, TypeError):
        raise InputValueError('Expected a JSON body {"data": "<base64 source>"}.') from None
    if not isinstance(data, str):
        raise InputValueError("data must be a base64 string.")
    entry_point = parsed.get("entry_point")
    if entry_point is not None and (not isinstance(entry_point, str) or len(entry_point) > 200):
        raise InputValueError("entry_point must be a path of at most 200 characters.")
    return data, entry_point


@router.put("/programs/{program_id}/data", status_code=204)
def update_program_data(
    program_id: str,
    body: Annotated[tuple[str, str | None], Depends(program_data)],
    db: DbDep,
    user: UserDep,
    state: StateDep,
) -> Response:
    data, entry_point = body
    service.update_program_data(
        db,
        user=user,
        program_id=program_id,
        data=data,
        max_bytes=state.settings.max_program_bytes,
        entry_point=entry_point,
    )
    return Response(status_code=204)


@router.put("/programs/{program_id}/public", status_code=204)
def make_public(program_id: str, db: DbDep, user: UserDep) -> Response:
    service.set_visibility(db, user=user, program_id=program_id, public=True)
    return Response(status_code=204)


@router.put("/programs/{program_id}/private", status_code=204)
def make_private(program_id: str, db: DbDep, user: UserDep) -> Response:
    service.set_visibility(db, user=user, program_id=program_id, public=False)
    return Response(status_code=204)


@router.delete("/programs/{program_id}", status_code=204)
def delete_program(program_id: str, db: DbDep, user: UserDep) -> Response:
    service.delete_program(db, user=user, program_id=program_id)
    return Response(status_code=204)
