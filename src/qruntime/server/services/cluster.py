"""The cluster view: the servers on one database, which one leads, where jobs run.

A lone server on SQLite is its own leader and the only server. On PostgreSQL the live
servers are those with a listening connection open (`cluster_store.live_servers`), and
the leader is the one the ``cluster_leader`` row names. Only the leader runs the
executor: it lists the nodes as they are; the others show them as the leader last
recorded them in that row (without their running jobs).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.settings import Settings
from qruntime.server.store import cluster as cluster_store
from qruntime.server.store import queues as queue_store

__all__ = ["stored_view"]


def stored_view(db: Session, *, runtime: JobRuntime, settings: Settings) -> dict[str, Any]:
    """What the database says (call on a store thread): ``leader``, ``servers``, the job
    counts and the nodes the leader recorded (``recorded_nodes``, ``recorded_at``); the
    caller settles ``nodes`` on the event loop."""
    leader: dict[str, Any]
    recorded: list[dict[str, Any]] | None = None
    recorded_at = None
    if runtime.db.is_sqlite:
        since = runtime.started_at
        leader = {"server": runtime.server_id, "epoch": None, "since": since}
        servers: list[dict[str, Any]] = [
            {"server": runtime.server_id, "listen": runtime.listen, "address": None, "since": since}
        ]
    else:
        row = cluster_store.leader(db)
        leader = {
            "server": row.server if row is not None else None,
            "epoch": row.epoch if row is not None else None,
            "since": row.elected_at if row is not None else None,
        }
        servers = cluster_store.live_servers(db)
        if row is not None:
            recorded, recorded_at = row.nodes, row.nodes_at
    live = {server["server"] for server in servers}
    leader["alive"] = leader["server"] in live
    for server in servers:
        server["leader"] = server["server"] == leader["server"]
        server["this"] = server["server"] == runtime.server_id
    counts = {"Queued": 0, "Running": 0}
    for _backend, _owner, status, count in queue_store.pending_counts(db):
        counts[status] += count
    return {
        "server": runtime.server_id,
        "store": "sqlite" if runtime.db.is_sqlite else "postgresql",
        "executor": settings.executor,
        "ray_address": settings.ray_address if settings.executor == "ray" else None,
        "leader": leader,
        "servers": servers,
        "queued_jobs": counts["Queued"],
        "running_jobs": counts["Running"],
        "recorded_nodes": recorded,
        "recorded_at": recorded_at,
    }
