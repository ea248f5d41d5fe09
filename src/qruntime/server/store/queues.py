"""Counts of jobs by backend, state and owner: what the dashboard's overview shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qruntime.server.store.tables import Job, RuntimeSession

__all__ = ["active_dedicated_sessions", "finished_since", "pending_counts"]

_PENDING = ("Queued", "Running")


def pending_counts(db: Session) -> list[tuple[str, str, str, int]]:
    """(backend, owner id, status, count) of the queued and running jobs."""
    query = (
        select(Job.backend, Job.owner_id, Job.status, func.count())
        .where(Job.status.in_(_PENDING))
        .group_by(Job.backend, Job.owner_id, Job.status)
    )
    return [(row[0], row[1], row[2], int(row[3])) for row in db.execute(query)]


def finished_since(db: Session, *, since: datetime) -> dict[str, int]:
    """How many jobs ended on each backend at or after ``since``."""
    query = select(Job.backend, func.count()).where(Job.finished_at >= since).group_by(Job.backend)
    return {row[0]: int(row[1]) for row in db.execute(query)}


def active_dedicated_sessions(db: Session) -> list[RuntimeSession]:
    """The dedicated sessions that are active now: each holds its backend's lane."""
    query = select(RuntimeSession).where(
        RuntimeSession.state == "active", RuntimeSession.mode == "dedicated"
    )
    return list(db.scalars(query))
