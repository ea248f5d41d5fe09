"""Use cases for sessions: open, read, close, cancel, and the checks for a session's jobs.

A session belongs to one user and one backend. The scheduler (``scheduler/runtime``)
moves it between active and inactive; here are the user's actions and what they see.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.errors import InputValueError, RuntimeInvalidStateError, SessionNotFoundError
from qruntime.schemas.sessions import SessionCreate
from qruntime.server.services.users import listed_owner, scope
from qruntime.server.store import sessions as store
from qruntime.server.store.tables import RuntimeSession, User, utcnow

if TYPE_CHECKING:
    from qruntime.server.scheduler.runtime import JobRuntime

__all__ = [
    "cancel_and_notify",
    "cancel_session",
    "close_and_notify",
    "close_session",
    "create_session",
    "list_sessions",
    "new_session",
    "open_and_notify",
    "owned_session",
    "session_for_job",
    "to_wire",
]

CANCELLED_REASON = "the session was cancelled"


def create_session(
    db: Session,
    *,
    user: User,
    payload: SessionCreate,
    catalogue: Catalogue,
    interactive_ttl: int,
    max_ttl_limit: int,
    session_id: str | None = None,
) -> RuntimeSession:
    fields = new_session(
        user=user,
        payload=payload,
        catalogue=catalogue,
        interactive_ttl=interactive_ttl,
        max_ttl_limit=max_ttl_limit,
        session_id=session_id,
    )
    return store.add_session(db, **fields)


def new_session(
    *,
    user: User,
    payload: SessionCreate,
    catalogue: Catalogue,
    interactive_ttl: int,
    max_ttl_limit: int,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Check a new session and return the row to insert (`create_session` inserts it)."""
    catalogue.get(payload.backend)  # BackendNotFoundError for an unknown name
    max_ttl = payload.max_ttl or max_ttl_limit
    if max_ttl > max_ttl_limit:
        raise InputValueError(
            f"max_time {max_ttl} s is over this server's limit of {max_ttl_limit} s."
        )
    return {
        "id": session_id or secrets.token_hex(10),
        "owner_id": user.id,
        "backend": payload.backend,
        "mode": payload.mode,
        "state": "open",
        "accepting_jobs": True,
        "max_ttl": max_ttl,
        "interactive_ttl": interactive_ttl,
        "created_at": utcnow(),
    }


def owned_session(db: Session, *, user: User, session_id: str) -> RuntimeSession:
    """A session of ``user`` (any session for an admin); `SessionNotFoundError` otherwise."""
    found = store.get_session(db, session_id=session_id, owner_id=scope(user))
    if found is None:
        raise SessionNotFoundError(f"Session not found: {session_id}")
    return found


#: What ``pending`` means for a session: not closed yet.
PENDING_STATES = ("open", "active", "inactive")


def list_sessions(
    db: Session,
    *,
    user: User,
    limit: int,
    offset: int = 0,
    state: str | None = None,
    pending: bool | None = None,
    backend: str | None = None,
    mode: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    descending: bool = True,
    owner: str | None = None,
    all_users: bool = False,
) -> dict[str, Any]:
    """A page of ``user``'s sessions, as ``{"sessions": [details...], "count": N}``; an
    admin's of one user (``owner``, a name) or of everyone (``all_users``).

    ``pending=True`` keeps sessions that are not closed, ``False`` closed ones; with
    ``state`` too, a session must match both.
    """
    states: list[str] | None = None
    if pending is not None:
        states = list(PENDING_STATES) if pending else ["closed"]
    if state is not None:
        states = [s for s in (states or [state]) if s == state]
    page, count = store.list_sessions(
        db,
        owner_id=listed_owner(db, user=user, owner=owner, all_users=all_users, what="sessions"),
        limit=limit,
        offset=offset,
        states=states,
        backend=backend,
        mode=mode,
        created_after=created_after,
        created_before=created_before,
        descending=descending,
    )
    usage = store.sessions_usage(db, session_ids=[session.id for session in page])
    return {
        "sessions": [to_wire(db, s, usage=usage.get(s.id, (0.0, 0, 0))) for s in page],
        "count": count,
    }


def session_for_job(db: Session, *, user: User, session_id: str, backend: str) -> None:
    """Check that the session a new job joins accepts it; refused with the reason if not."""
    session = store.session_head(db, session_id=session_id)
    if session is None or session.owner_id != user.id:
        raise SessionNotFoundError(f"Session not found: {session_id}")
    if not session.accepting_jobs:
        why = session.reason or "it was closed"
        raise RuntimeInvalidStateError(f"Session {session_id} does not accept new jobs: {why}.")
    if session.backend != backend:
        raise InputValueError(
            f"Session {session_id} runs on backend {session.backend}, not {backend}."
        )


def close_session(db: Session, *, user: User, session_id: str) -> None:
    """Accept no new jobs; queued and running jobs finish."""
    session = owned_session(db, user=user, session_id=session_id)
    if not session.accepting_jobs:
        return
    _, pending, _ = store.session_usage(db, session_id=session_id)
    values: dict[str, Any] = {
        "accepting_jobs": False,
        "reason": session.reason or "closed by the user",
    }
    if pending == 0:
        values.update(state="closed", closed_at=utcnow())
    store.update_session(db, session_id=session_id, **values)


def cancel_session(db: Session, *, user: User, session_id: str) -> list[str]:
    """Close the session and cancel its queued jobs; returns the cancelled job ids."""
    session = owned_session(db, user=user, session_id=session_id)
    now = utcnow()
    cancelled = store.cancel_queued_jobs(
        db, session_id=session_id, reason=CANCELLED_REASON, now=now
    )
    if session.state != "closed":
        store.update_session(
            db,
            session_id=session_id,
            accepting_jobs=False,
            state="closed",
            reason=session.reason if not session.accepting_jobs else "cancelled by the user",
            closed_at=now,
        )
    return cancelled


def open_and_notify(
    db: Session,
    *,
    user: User,
    payload: SessionCreate,
    catalogue: Catalogue,
    interactive_ttl: int,
    max_ttl_limit: int,
    runtime: JobRuntime,
) -> dict[str, Any]:
    """`create_session`, committed, the scheduler told; returns the session's details."""
    session = create_session(
        db,
        user=user,
        payload=payload,
        catalogue=catalogue,
        interactive_ttl=interactive_ttl,
        max_ttl_limit=max_ttl_limit,
    )
    db.commit()
    runtime.refresh_session(session.id)
    return to_wire(db, session)


def close_and_notify(db: Session, *, user: User, session_id: str, runtime: JobRuntime) -> None:
    """`close_session`, committed, and the scheduler told."""
    close_session(db, user=user, session_id=session_id)
    db.commit()
    runtime.refresh_session(session_id)


def cancel_and_notify(db: Session, *, user: User, session_id: str, runtime: JobRuntime) -> None:
    """`cancel_session`, committed, and the scheduler and the jobs' waiters told."""
    cancelled = cancel_session(db, user=user, session_id=session_id)
    db.commit()
    runtime.refresh_session(session_id)
    runtime.announce_cancelled(cancelled, reason=CANCELLED_REASON)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def to_wire(
    db: Session, session: RuntimeSession, *, usage: tuple[float, int, int] | None = None
) -> dict[str, Any]:
    """IBM's session details: state, clocks, timestamps and usage.

    ``usage`` is `store.session_usage`'s answer when the caller read it already.
    """
    used, pending, total = usage or store.session_usage(db, session_id=session.id)
    now = utcnow()
    elapsed = (now - session.activated_at).total_seconds() if session.activated_at else 0.0
    if session.closed_at and session.activated_at:
        elapsed = (session.closed_at - session.activated_at).total_seconds()
    remaining = max(session.max_ttl - elapsed, 0.0) if session.activated_at else session.max_ttl
    timestamps = [
        {"status": status, "timestamp": _iso(at)}
        for status, at in (
            ("open", session.created_at),
            ("active", session.activated_at),
            ("closed", session.closed_at),
        )
        if at is not None
    ]
    return {
        "id": session.id,
        "backend_name": session.backend,
        "mode": session.mode,
        "state": session.state,
        "state_reason": session.reason,
        "accepting_jobs": session.accepting_jobs,
        "max_ttl": session.max_ttl,
        "interactive_ttl": session.interactive_ttl,
        "active_ttl": remaining,
        "elapsed_time": elapsed,
        "usage_time": used,
        "jobs": {"total": total, "pending": pending},
        "created_at": _iso(session.created_at),
        "started_at": _iso(session.activated_at),
        "activated_at": _iso(session.activated_at),
        "last_job_started": _iso(session.last_job_started_at),
        "last_job_completed": _iso(session.last_job_ended_at),
        "closed_at": _iso(session.closed_at),
        "timestamps": timestamps,
        "node": session.node,
    }
