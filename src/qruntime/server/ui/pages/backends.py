"""The backends, ``/ui/backends``: each one's status, lanes and queue; a backend's page
adds its coupling map (qubits coloured by readout error or T1, couplings by two-qubit
error) and its calibration table, from the documents the API serves."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from qruntime.errors import NotFoundError
from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.services import backends as service
from qruntime.server.services import queues
from qruntime.server.ui.auth import UiCaller
from qruntime.server.ui.coupling_map import COLOUR_BY, coupling_map_svg, read_calibration
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()


@router.get("/ui/backends")
def backends(
    request: Request, db: DbDep, state: StateDep, user: UiCaller, fragment: str | None = None
) -> Response:
    loads = {
        load.name: load for load in queues.backend_loads(db, user=user, catalogue=state.catalogue)
    }
    rows = [
        {**summary, "load": loads.get(summary["name"])}
        for summary in service.backend_summaries(state.catalogue)
    ]
    return render(request, "backends.html", backends=rows, fragment=fragment)


@router.get("/ui/backends/{name}")
def backend(
    name: str,
    request: Request,
    db: DbDep,
    state: StateDep,
    user: UiCaller,
    colour_by: str = "readout_error",
    fragment: str | None = None,
) -> Response:
    configuration = service.backend_configuration(state.catalogue, name=name)  # 404 if unknown
    try:
        properties: dict[str, Any] | None = service.backend_properties(state.catalogue, name=name)
    except NotFoundError:  # an ideal simulator: no calibration
        properties = None
    summary = next(s for s in service.backend_summaries(state.catalogue) if s["name"] == name)
    load = next(
        (
            b
            for b in queues.backend_loads(db, user=user, catalogue=state.catalogue)
            if b.name == name
        ),
        None,
    )
    num_qubits = int(configuration.get("n_qubits") or summary["num_qubits"])
    coupling_map = configuration.get("coupling_map")
    calibration = read_calibration(properties, num_qubits=num_qubits)
    by = colour_by if colour_by in COLOUR_BY else "readout_error"
    svg = None
    if coupling_map:
        svg = coupling_map_svg(
            coupling_map, calibration, colour_by=by, title=f"Coupling map of {name}"
        )
    return render(
        request,
        "backend.html",
        backend=summary,
        load=load,
        configuration=configuration,
        calibration=calibration if properties else None,
        coupling_svg=svg,
        colour_by=by,
        colour_choices=COLOUR_BY,
        fragment=fragment,
    )
