"""``GET /cluster``: the servers on this database, which one leads, where jobs run (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.schemas.server import ClusterOut
from qruntime.server.api.deps import StateDep, UserDep
from qruntime.server.api.state import AppState
from qruntime.server.services import cluster
from qruntime.server.services.users import require_admin

__all__ = ["cluster_view", "router"]

router = APIRouter(tags=["server"])


def _stored(state: AppState) -> dict[str, Any]:
    with state.db.session() as db:
        return cluster.stored_view(db, runtime=state.runtime, settings=state.settings)


async def cluster_view(state: AppState) -> dict[str, Any]:
    """The cluster as `ClusterOut` tells it: the store's part read on a store thread; the
    nodes from the executor, on the event loop it lives on, where this server leads, else
    as the leader recorded them."""
    view = await state.in_thread(_stored, state)
    recorded, recorded_at = view.pop("recorded_nodes"), view.pop("recorded_at")
    if state.runtime.leading:
        view["nodes"], view["nodes_as_of"] = state.runtime.executor.nodes(), None
    elif recorded is not None:
        view["nodes"] = [{**node, "jobs": None, "sessions": None} for node in recorded]
        view["nodes_as_of"] = recorded_at
    else:
        view["nodes"], view["nodes_as_of"] = None, None
    return view


@router.get("/cluster", response_model=ClusterOut, summary="Servers, leader and nodes")
async def get_cluster(state: StateDep, user: UserDep) -> dict[str, Any]:
    """Admins: the servers sharing this database (each holds a listening connection to
    it), which one leads (runs the scheduler and the executor) under which epoch, the
    nodes the leader's executor runs jobs on (from another server: as the leader last
    recorded them, at ``nodes_as_of``, without running jobs), and how many jobs are
    queued and running. A lone server on SQLite is its own leader."""
    require_admin(user, "see the cluster")
    return await cluster_view(state)
