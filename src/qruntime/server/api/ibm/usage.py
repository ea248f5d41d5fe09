"""IBM's instance usage: what the client reads before each job and in ``service.usage()``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qruntime.server.api.deps import DbDep, UserDep
from qruntime.server.api.ibm.models import InstanceUsage
from qruntime.server.services import jobs as job_service

router = APIRouter()

#: What "no usage limit" reads as, in seconds (about 68 years).
UNLIMITED_SECONDS = 2**31 - 1


@router.get(
    "/instances/usage",
    response_model=None,
    summary="Get your usage (IBM)",
    responses={200: {"model": InstanceUsage, "description": "Your usage."}},
)
def instance_usage(db: DbDep, user: UserDep) -> dict[str, Any]:
    """Seconds your jobs have run, as IBM's instance usage; no limit is set or reached."""
    # qruntime has no usage limits (fair share orders users instead), so none is reached.
    return {
        "instance_id": f"crn:v1:qruntime:public:quantum-computing:local:a/{user.id}::",
        "plan_id": "qruntime",
        "usage_consumed_seconds": job_service.usage_seconds(db, user=user),
        "usage_limit_seconds": None,
        "usage_limit_reached": False,
        # A number, as the client expects one: no limit, so the most a 32-bit count holds.
        "usage_remaining_seconds": UNLIMITED_SECONDS,
    }
