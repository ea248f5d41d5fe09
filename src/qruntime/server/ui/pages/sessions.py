"""Sessions, ``/ui/sessions``: the caller's sessions, and a session's page with its mode,
state, clocks (counting down in the page), its jobs, and Close and Cancel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.services import jobs as job_service
from qruntime.server.services import sessions as service
from qruntime.server.ui.auth import UiCaller, UiFormDep
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()

PAGE_SIZE = 25
#: The most of a session's jobs its page lists (newest first; the jobs page has them all).
JOBS_SHOWN = 50


def _deadline(start: str | None, seconds: float | None) -> str | None:
    """``start`` plus ``seconds``, as ISO text for the page's clock."""
    if not start or seconds is None:
        return None
    return (datetime.fromisoformat(start) + timedelta(seconds=seconds)).isoformat()


def _clocks(session: dict[str, Any]) -> dict[str, str | None]:
    """When the session's clocks run out, for those that are running now.

    ``max_time`` runs from the first job's start; the interactive timeout from the last
    job's end while nothing is queued or running (an active dedicated session only).
    """
    if session["state"] != "active":
        return {"max_deadline": None, "interactive_deadline": None}
    interactive = None
    if session["mode"] == "dedicated" and session["jobs"]["pending"] == 0:
        interactive = _deadline(session["last_job_completed"], session["interactive_ttl"])
    return {
        "max_deadline": _deadline(session["activated_at"], session["max_ttl"]),
        "interactive_deadline": interactive,
    }


@router.get("/ui/sessions")
def sessions(
    request: Request,
    db: DbDep,
    user: UiCaller,
    state: Literal["open", "active", "inactive", "closed"] | None = None,
    pending: bool | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    fragment: str | None = None,
) -> Response:
    found = service.list_sessions(
        db, user=user, limit=PAGE_SIZE, offset=offset, state=state, pending=pending
    )
    return render(
        request,
        "sessions.html",
        sessions=found["sessions"],
        count=found["count"],
        offset=offset,
        page_size=PAGE_SIZE,
        state=state,
        pending=pending,
        fragment=fragment,
    )


@router.get("/ui/sessions/{session_id}")
def session(
    session_id: str, request: Request, db: DbDep, user: UiCaller, fragment: str | None = None
) -> Response:
    details = service.to_wire(db, service.owned_session(db, user=user, session_id=session_id))
    jobs, job_count = job_service.list_jobs(
        db,
        user=user,
        limit=JOBS_SHOWN,
        session_id=session_id,
        all_users=user.is_admin,  # an admin sees another user's session: its jobs too
    )
    return render(
        request,
        "session.html",
        session=details,
        jobs=jobs,
        job_count=job_count,
        fragment=fragment,
        clocks=_clocks(details),
    )


@router.post("/ui/sessions/{session_id}/close")
def close(session_id: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep) -> Response:
    """No new jobs; queued and running ones finish (``PATCH /sessions/{id}``)."""
    service.close_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return RedirectResponse(f"/ui/sessions/{session_id}", status_code=303)


@router.post("/ui/sessions/{session_id}/cancel")
def cancel(
    session_id: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep
) -> Response:
    """Close, and cancel the queued jobs (``DELETE /sessions/{id}/close``)."""
    service.cancel_and_notify(db, user=user, session_id=session_id, runtime=state.runtime)
    return RedirectResponse(f"/ui/sessions/{session_id}", status_code=303)
