"""Data access for jobs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qruntime.server.store.tables import Job

__all__ = ["count_queued"]


def count_queued(db: Session, *, backend: str) -> int:
    """How many jobs wait in the queue of ``backend``."""
    query = (
        select(func.count()).select_from(Job).where(Job.backend == backend, Job.status == "Queued")
    )
    return db.scalar(query) or 0
