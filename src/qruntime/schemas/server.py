"""Wire models of the server itself: its health, and the servers and nodes it runs with."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    """``GET /health``: the server answers, and which version it is."""

    status: Literal["ok", "stopping"] = Field(
        description="'stopping' while the server shuts down: it takes no new jobs."
    )
    version: str = Field(examples=["0.1.0"])
    leader: bool = Field(
        default=True,
        description="Whether this server runs the scheduler: of several servers on one "
        "PostgreSQL exactly one does (the others take over if it dies); a lone server does.",
    )


def resources_text(amounts: dict[str, float]) -> str:
    """What a node has, for people: ``CPU=2 GPU=1 memory=8.0GiB`` (Ray counts memory in
    bytes)."""
    parts = []
    for name, amount in sorted(amounts.items()):
        if name in ("memory", "object_store_memory"):
            parts.append(f"{name}={amount / 1024**3:.1f}GiB")
        else:
            parts.append(f"{name}={amount:g}")
    return " ".join(parts)


class ClusterLeaderOut(BaseModel):
    """Which server runs the scheduler and the executor."""

    server: str | None = Field(description="The leader's server id (None: none yet).")
    epoch: int | None = Field(
        description="How many times a server took the lead on this database (PostgreSQL); "
        "None for a lone server on SQLite."
    )
    since: datetime | None = Field(description="When it took the lead (or started, alone).")
    alive: bool = Field(
        description="Whether that server is among the live ones; false for the few seconds "
        "between a leader's death and a standby taking over."
    )


class ClusterServerOut(BaseModel):
    """One live server: it holds its listening connection to the database."""

    server: str = Field(description="The server's id (its log lines name it).")
    listen: str = Field(description="Where it serves the API, as its --host:--port.")
    address: str | None = Field(
        description="Where its database connection comes from (None over a Unix socket "
        "or on SQLite)."
    )
    since: datetime = Field(description="Since when (its listening connection's start).")
    leader: bool
    this: bool = Field(description="Whether it is the server that answered.")


class ClusterNodeOut(BaseModel):
    """A machine that runs jobs, as the leader's executor sees it now."""

    node_id: str = Field(description="Ray's node id, or 'local' for the local executor.")
    address: str
    ready: bool = Field(description="Whether qruntime's workers there take jobs.")
    jobs: int | None = Field(
        description="Jobs running there now (None in the nodes the leader recorded)."
    )
    sessions: int | None = Field(
        description="Dedicated sessions with a worker there (None as for ``jobs``)."
    )
    resources: dict[str, float] = Field(description="What the node has, in Ray's names.")


class ClusterOut(BaseModel):
    """``GET /cluster``: the servers on this database, which one leads, and where jobs run."""

    server: str = Field(description="The id of the server that answered.")
    store: Literal["sqlite", "postgresql"]
    executor: Literal["local", "ray"]
    ray_address: str | None = Field(description="The Ray cluster's address (executor ray).")
    leader: ClusterLeaderOut
    servers: list[ClusterServerOut]
    nodes: list[ClusterNodeOut] | None = Field(
        description="The leader's nodes: live from the leader; from any other server as "
        "the leader last recorded them (a node joining, getting ready or lost), without "
        "their running jobs; None if no leader recorded any yet."
    )
    nodes_as_of: datetime | None = Field(
        description="When the leader recorded ``nodes``; None when they are live (this "
        "server leads)."
    )
    queued_jobs: int
    running_jobs: int
