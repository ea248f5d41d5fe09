"""Runtime programs: the shapes of IBM's legacy programs API."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from qruntime.errors import InputValueError
from qruntime.schemas import ProgramCreate, ProgramCreated, ProgramList, ProgramOut, ProgramUpdate
from qruntime.schemas.programs import ProgramEnvironment
from qruntime.server.api.deps import DbDep, StateDep, UserDep
from qruntime.server.api.openapi import errors
from qruntime.server.api.paging import Offset
from qruntime.server.services import programs as service
from qruntime.server.services.environment import environment_listing

router = APIRouter(tags=["programs"])

_NO_PROGRAM = (404, "No such program, or a private program that is not yours.")
_NOT_YOURS = (403, "Only the program's owner (or an admin) may change it; built-ins never.")


@router.get("/programs", response_model=ProgramList, summary="List programs")
def list_programs(
    db: DbDep,
    user: UserDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Offset = 0,
) -> ProgramList:
    """The programs you can run: the built-ins, the public ones and your own, a page of
    ``limit`` (all if absent) from ``offset``, with ``count``, the number in all."""
    programs, count = service.list_programs(db, user=user, limit=limit, offset=offset)
    return ProgramList(programs=programs, count=count)


@router.post(
    "/programs",
    response_model=ProgramCreated,
    status_code=201,
    summary="Upload a program",
    responses=errors((409, "You already have a program of that name.")),
)
def create_program(
    body: ProgramCreate, db: DbDep, user: UserDep, state: StateDep
) -> ProgramCreated:
    """Upload a program: its source (base64; a zip archive for a folder program, with
    its ``entry_point``), name, description, ``max_execution_time``, the JSON Schemas of
    its parameters and results (``spec``) and its ``dependencies``, checked against the
    server's environment. The source must define ``main(backend, user_messenger,
    **kwargs)``; it is compiled, not run, on upload."""
    program_id = service.create_program(
        db,
        user=user,
        payload=body,
        max_bytes=state.settings.max_program_bytes,
        max_cost=state.settings.max_execution_time_limit,
    )
    return ProgramCreated(id=program_id)


@router.get(
    "/programs/environment", response_model=ProgramEnvironment, summary="List importable packages"
)
def program_environment(user: UserDep) -> ProgramEnvironment:
    """What uploaded programs can import: the Python version and the installed packages.

    A program's ``dependencies`` are checked against this list when it is uploaded.
    Admins add packages by installing them into the server's Python environment (see
    the README); nothing is installed when a job runs.
    """
    return ProgramEnvironment.model_validate(environment_listing())


@router.get(
    "/programs/{program_id}",
    response_model=ProgramOut,
    response_model_exclude_none=True,
    summary="Get a program",
    responses=errors(_NO_PROGRAM),
)
def get_program(program_id: str, db: DbDep, user: UserDep) -> ProgramOut:
    """A program's metadata: name, description, spec, ``max_execution_time``, whether it
    is public, its owner; not its source."""
    return service.get_program(db, user=user, program_id=program_id)


@router.patch(
    "/programs/{program_id}",
    status_code=204,
    summary="Update a program's metadata",
    responses=errors(_NOT_YOURS, _NO_PROGRAM, (409, "You already have a program of that name.")),
)
def update_program(
    program_id: str, body: ProgramUpdate, db: DbDep, user: UserDep, state: StateDep
) -> Response:
    """Change the fields given (name, description, spec, ``max_execution_time``, ...)."""
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


#: How ``PUT /programs/{id}/data`` takes its body, which `program_data` reads itself.
_PROGRAM_DATA_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "The source, base64."},
                        "entry_point": {
                            "type": "string",
                            "maxLength": 200,
                            "description": "A zip archive's entry module.",
                        },
                    },
                }
            },
            "text/plain": {"schema": {"type": "string", "description": "The source, base64."}},
        },
    }
}


@router.put(
    "/programs/{program_id}/data",
    status_code=204,
    summary="Replace a program's source",
    responses=errors(_NOT_YOURS, _NO_PROGRAM),
    openapi_extra=_PROGRAM_DATA_BODY,
)
def update_program_data(
    program_id: str,
    body: Annotated[tuple[str, str | None], Depends(program_data)],
    db: DbDep,
    user: UserDep,
    state: StateDep,
) -> Response:
    """Replace the program's source (base64, as on upload); checked the same way."""
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


@router.put(
    "/programs/{program_id}/public",
    status_code=204,
    summary="Make a program public",
    responses=errors(_NOT_YOURS, _NO_PROGRAM),
)
def make_public(program_id: str, db: DbDep, user: UserDep) -> Response:
    """Let every user see and run the program (not change it)."""
    service.set_visibility(db, user=user, program_id=program_id, public=True)
    return Response(status_code=204)


@router.put(
    "/programs/{program_id}/private",
    status_code=204,
    summary="Make a program private",
    responses=errors(_NOT_YOURS, _NO_PROGRAM),
)
def make_private(program_id: str, db: DbDep, user: UserDep) -> Response:
    """Only you (and admins) may see and run the program from now on."""
    service.set_visibility(db, user=user, program_id=program_id, public=False)
    return Response(status_code=204)


@router.delete(
    "/programs/{program_id}",
    status_code=204,
    summary="Delete a program",
    responses=errors(_NOT_YOURS, _NO_PROGRAM),
)
def delete_program(program_id: str, db: DbDep, user: UserDep) -> Response:
    """Delete the program; its jobs are kept, and one still queued fails when its turn
    comes."""
    service.delete_program(db, user=user, program_id=program_id)
    return Response(status_code=204)
