"""The caller's usage: how many seconds its jobs have run (``service.usage()``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from qruntime.schemas.usage import AllUsage, Usage
from qruntime.server.api.deps import DbDep, UserDep
from qruntime.server.services import jobs as job_service

router = APIRouter(tags=["usage"])


@router.get(
    "/usage",
    response_model=None,
    summary="Get your usage",
    responses={
        200: {
            "model": Usage | AllUsage,
            "description": "Seconds your jobs (or, for an admin, one user's or every user's) "
            "have run.",
        }
    },
)
def usage(
    db: DbDep,
    user: UserDep,
    start: Annotated[
        datetime | None, Query(description="Only jobs that ended at or after this time.")
    ] = None,
    end: Annotated[
        datetime | None, Query(description="Only jobs that ended before this time.")
    ] = None,
    owner: Annotated[
        str | None,
        Query(alias="user", max_length=64, description="Admins: this user's usage (by name)."),
    ] = None,
    all_users: Annotated[
        bool, Query(description="Admins: every user's seconds and jobs, as `users`.")
    ] = False,
) -> dict[str, Any]:
    """Seconds your jobs have run, in all or of the jobs that ended in [``start``, ``end``);
    qruntime sets no usage limit (fair share orders users instead), so the limit is
    ``null`` and never reached. Admins may ask for another user's (``user=NAME``) or for
    every user's (``all_users=true``: ``{"users": [{"user", "usage_consumed_seconds",
    "jobs"}, ...]}``, most first)."""
    return job_service.usage_report(
        db, user=user, owner=owner, all_users=all_users, start=start, end=end
    )
