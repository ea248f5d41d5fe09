"""The overview, ``/ui/``: the backends' lanes and queues, the caller's pending jobs, and
(for admins) each user's queue. Refreshed live by ``/ui/events/queue``."""

from __future__ import annotations

from fastapi import Request, Response

from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.services import jobs as job_service
from qruntime.server.services import queues
from qruntime.server.ui.auth import UiCaller
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()

#: The most of the caller's pending jobs the overview lists (the jobs page has them all).
PENDING_SHOWN = 20


@router.get("/ui/")
def overview(request: Request, db: DbDep, state: StateDep, user: UiCaller) -> Response:
    pending, pending_count = job_service.list_jobs(
        db,
        user=user,
        limit=PENDING_SHOWN,
        pending=True,
        descending=False,
    )
    return render(
        request,
        "overview.html",
        backends=queues.backend_loads(db, user=user, catalogue=state.catalogue),
        running=[job for job in pending if job.status.value == "Running"],
        queued=[job for job in pending if job.status.value == "Queued"],
        pending_count=pending_count,
        user_queues=queues.queues_by_user(db, user=user) if user.is_admin else None,
    )
