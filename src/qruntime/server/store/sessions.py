"""Data access for sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.orm import Session

from qruntime.server.store.database import AnyRow
from qruntime.server.store.tables import Job, RuntimeSession

__all__ = [
    "add_session",
    "cancel_queued_jobs",
    "count_queued",
    "get_session",
    "job_ended",
    "list_sessions",
    "live_sessions",
    "mark_job_started",
    "session_head",
    "session_usage",
    "sessions_usage",
    "update_session",
]


def add_session(db: Session, **fields: Any) -> RuntimeSession:
    session = RuntimeSession(**fields)
    db.add(session)
    db.flush()
    return session


def get_session(
    db: Session, *, session_id: str, owner_id: str | None = None
) -> RuntimeSession | None:
    """A session; with ``owner_id``, only if it belongs to that user."""
    found = db.get(RuntimeSession, session_id)
    if found is None or (owner_id is not None and found.owner_id != owner_id):
        return None
    return found


def list_sessions(
    db: Session,
    *,
    owner_id: str | None,
    limit: int,
    offset: int = 0,
    states: Sequence[str] | None = None,
    backend: str | None = None,
    mode: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    descending: bool = True,
) -> tuple[list[RuntimeSession], int]:
    """One page of sessions (of ``owner_id``, or everyone's if None) and how many match."""
    conditions: list[Any] = []
    if owner_id is not None:
        conditions.append(RuntimeSession.owner_id == owner_id)
    if states is not None:
        conditions.append(RuntimeSession.state.in_(states))
    if backend is not None:
        conditions.append(RuntimeSession.backend == backend)
    if mode is not None:
        conditions.append(RuntimeSession.mode == mode)
    if created_after is not None:
        conditions.append(RuntimeSession.created_at >= created_after)
    if created_before is not None:
        conditions.append(RuntimeSession.created_at <= created_before)
    count = db.scalar(select(func.count()).select_from(RuntimeSession).where(*conditions)) or 0
    order = (
        (RuntimeSession.created_at.desc(), RuntimeSession.id.desc())
        if descending
        else (RuntimeSession.created_at.asc(), RuntimeSession.id.asc())
    )
    page = db.scalars(
        select(RuntimeSession).where(*conditions).order_by(*order).limit(limit).offset(offset)
    )
    return list(page), int(count)


def sessions_usage(db: Session, *, session_ids: Sequence[str]) -> dict[str, tuple[float, int, int]]:
    """`session_usage` of several sessions in one query; a session without jobs is absent."""
    if not session_ids:
        return {}
    pending = case((Job.status.in_(("Queued", "Running")), 1), else_=0)
    rows = db.execute(
        select(
            Job.session_id,
            func.coalesce(func.sum(Job.usage_seconds), 0.0),
            func.sum(pending),
            func.count(),
        )
        .where(Job.session_id.in_(session_ids))
        .group_by(Job.session_id)
    )
    return {row[0]: (float(row[1] or 0.0), int(row[2] or 0), int(row[3] or 0)) for row in rows}


def update_session(db: Session, *, session_id: str, **values: Any) -> None:
    db.execute(update(RuntimeSession).where(RuntimeSession.id == session_id).values(**values))


_sessions = cast(Table, RuntimeSession.__table__)

_HEAD = select(
    _sessions.c.owner_id,
    _sessions.c.backend,
    _sessions.c.accepting_jobs,
    _sessions.c.reason,
).where(_sessions.c.id == bindparam("session_id"))

_STARTED = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(
        last_job_started_at=bindparam("at", type_=_sessions.c.last_job_started_at.type),
        state=case((_sessions.c.state == "closed", _sessions.c.state), else_="active"),
        activated_at=func.coalesce(
            _sessions.c.activated_at, bindparam("at", type_=_sessions.c.activated_at.type)
        ),
    )
    .returning(_sessions.c.mode, _sessions.c.activated_at, _sessions.c.max_ttl)
)

_ENDED = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(last_job_ended_at=bindparam("at", type_=_sessions.c.last_job_ended_at.type))
)


def session_head(db: Session, *, session_id: str) -> AnyRow | None:
    """What a job submission needs of a session: owner, backend, accepting_jobs, reason."""
    return db.execute(_HEAD, {"session_id": session_id}).first()


def mark_job_started(db: Session, *, session_id: str, at: datetime) -> AnyRow | None:
    """A job of the session started ``at``: the session is active (unless closed), and its
    clock starts if this is its first job. Returns its ``mode`` and ``activated_at``.
    """
    return db.execute(_STARTED, {"session_id": session_id, "at": at}).first()


def job_ended(db: Session, *, session_id: str, at: datetime) -> None:
    """A job of the session ended ``at`` (its interactive timeout counts from then)."""
    db.execute(_ENDED, {"session_id": session_id, "at": at})


def live_sessions(db: Session) -> list[RuntimeSession]:
    """Sessions that are not closed, or closed with jobs still to run (to rebuild the scheduler)."""
    return list(db.scalars(select(RuntimeSession).where(RuntimeSession.state != "closed")))


def cancel_queued_jobs(db: Session, *, session_id: str, reason: str, now: Any) -> list[str]:
    """Cancel a session's queued jobs; returns their ids."""
    ids = list(
        db.scalars(select(Job.id).where(Job.session_id == session_id, Job.status == "Queued"))
    )
    if ids:
        db.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status == "Queued")
            .values(status="Cancelled", reason=reason, finished_at=now)
        )
    return ids


def count_queued(db: Session, *, session_id: str) -> int:
    query = select(func.count()).select_from(Job)
    return db.scalar(query.where(Job.session_id == session_id, Job.status == "Queued")) or 0


def session_usage(db: Session, *, session_id: str) -> tuple[float, int, int]:
    """(seconds used by its finished jobs, jobs queued or running, jobs in all)."""
    used = db.scalar(
        select(func.coalesce(func.sum(Job.usage_seconds), 0.0)).where(Job.session_id == session_id)
    )
    pending = db.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.session_id == session_id, Job.status.in_(("Queued", "Running")))
    )
    total = db.scalar(select(func.count()).select_from(Job).where(Job.session_id == session_id))
    return float(used or 0.0), int(pending or 0), int(total or 0)
