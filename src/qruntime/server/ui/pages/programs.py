"""Programs, ``/ui/programs``: the catalogue the caller can run, and a program's page with
its spec as tables, its source (to its owner only), and for the owner the public/private
switch and Delete."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from qruntime.server.api.deps import DbDep
from qruntime.server.services import programs as service
from qruntime.server.ui.auth import UiCaller, UiFormDep
from qruntime.server.ui.program_spec import spec_parts
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()


@router.get("/ui/programs")
def programs(request: Request, db: DbDep, user: UiCaller) -> Response:
    found, count = service.list_programs(db, user=user, limit=None, offset=0)
    return render(request, "programs.html", programs=found, count=count)


@router.get("/ui/programs/{program_id}")
def program(program_id: str, request: Request, db: DbDep, user: UiCaller) -> Response:
    found = service.get_program(db, user=user, program_id=program_id)  # 404 if not visible
    return render(
        request,
        "program.html",
        program=found,
        parts=spec_parts(found.spec),
        requirements=(found.spec or {}).get("backend_requirements") or {},
        # The API gives the source to the owner only; built-ins belong to no one here.
        mine=found.owner == user.name,
    )


@router.post("/ui/programs/{program_id}/visibility")
def visibility(program_id: str, db: DbDep, user: UiCaller, form: UiFormDep) -> Response:
    """``PUT /programs/{id}/public`` or ``/private``: the form's ``public`` is 1 or 0."""
    service.set_visibility(db, user=user, program_id=program_id, public=form.get("public") == "1")
    return RedirectResponse(f"/ui/programs/{program_id}", status_code=303)


@router.post("/ui/programs/{program_id}/delete")
def delete(program_id: str, db: DbDep, user: UiCaller, form: UiFormDep) -> Response:
    service.delete_program(db, user=user, program_id=program_id)
    return RedirectResponse("/ui/programs?deleted=" + program_id, status_code=303)
