"""IBM's jobs API over qruntime's job service: submit, read, list, results, cancel, tags, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from qruntime.errors import InputValueError
from qruntime.schemas.jobs import JobCreate, JobState
from qruntime.server.api.deps import DbDep, StateDep, UserDep, body_size
from qruntime.server.api.ibm import models, shapes
from qruntime.server.api.job_filters import JobFiltersDep
from qruntime.server.api.openapi import errors
from qruntime.server.api.state import AppState
from qruntime.server.services import jobs as service
from qruntime.server.services import sessions as session_service
from qruntime.server.store.tables import User

router = APIRouter()

_NO_JOB = (404, "No such job, or not yours.")


class IbmJobCreate(BaseModel):
    """``POST /jobs`` as IBM's client sends it; fields qruntime has no use for are ignored."""

    model_config = ConfigDict(extra="ignore")

    program_id: str = Field(min_length=1, max_length=128, examples=["sampler"])
    backend: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["aer_simulator"]
    )
    params: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = None
    start_session: bool = False
    session_time: int | None = Field(default=None, gt=0)
    tags: list[str] | None = Field(default=None, max_length=64)
    log_level: str | None = None
    cost: int | None = Field(default=None, gt=0)
    private: bool = False
    # ``runtime`` (an image) and ``calibration_id`` have no meaning here.


@router.post(
    "/jobs",
    status_code=200,
    response_model=None,
    summary="Submit a job (IBM)",
    responses={
        200: {"model": models.JobCreated, "description": "The queued job."},
        **errors(
            (404, "No such program (or not visible to you), backend or session."),
            (409, "The session takes no new jobs (closed, cancelled or out of time)."),
            (429, "You have as many queued jobs as the server allows (`quota_exceeded`)."),
            503,
        ),
    },
)
async def submit(
    body: IbmJobCreate, user: UserDep, state: StateDep, request: Request
) -> dict[str, Any]:
    """Queue a job as ``POST /jobs`` does; a job in a session may leave ``backend`` out."""
    backend = body.backend
    if backend is None and body.session_id is not None:
        # IBM lets a session's job leave the backend out: the session names it.
        backend = await state.in_thread(_session_backend, state, user, body.session_id)
    if not backend:
        raise InputValueError("backend: a job needs a backend, or the session_id of a session.")
    payload = JobCreate(
        program_id=body.program_id,
        backend=backend,
        params=body.params,
        session_id=body.session_id,
        start_session=body.start_session,
        session_time=body.session_time,
        tags=body.tags or [],
        log_level=body.log_level,
        cost=body.cost,
        private=body.private,
    )
    job = await state.queue_job(user, payload, size=body_size(request))
    return {"id": job.id, "backend": job.backend, "session_id": job.session_id}


def _session_backend(state: AppState, user: User, session_id: str) -> str:
    with state.db.session() as db:
        return session_service.owned_session(db, user=user, session_id=session_id).backend


@router.get(
    "/jobs",
    response_model=None,
    summary="List jobs (IBM)",
    responses={
        200: {"model": models.JobList, "description": "A page of your jobs."},
        **errors((403, "Only admins may list other users' jobs.")),
    },
)
def list_jobs(
    db: DbDep,
    user: UserDep,
    filters: JobFiltersDep,
    exclude_params: bool = True,
) -> dict[str, Any]:
    """Your jobs, newest first, with the filters and paging of ``GET /jobs``."""
    jobs, count = service.list_jobs(db, user=user, **filters.service_arguments())
    return {"jobs": [shapes.job_to_ibm(job) for job in jobs], "count": count}


@router.get(
    "/jobs/{job_id}",
    response_model=None,
    summary="Get a job (IBM)",
    responses={200: {"model": models.Job, "description": "The job."}, **errors(_NO_JOB)},
)
def get_job(job_id: str, db: DbDep, user: UserDep, exclude_params: bool = False) -> dict[str, Any]:
    """A job's state, program, backend, session and tags; its inputs unless
    ``exclude_params``."""
    job = service.get_job(db, user=user, job_id=job_id, include_params=not exclude_params)
    return shapes.job_to_ibm(job)


@router.get(
    "/jobs/{job_id}/results",
    summary="Get a job's result (IBM)",
    responses={
        200: {
            "description": (
                "A completed job's result (runtime-encoded JSON); a failed or cancelled "
                "job's reason (text)."
            ),
            "content": {
                "application/json": {"schema": {}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        204: {"description": "The job is still queued or running."},
        **errors(
            (403, "A private job's result is for its owner alone."),
            _NO_JOB,
            (409, "A private job's result was read already."),
        ),
    },
)
def results(job_id: str, db: DbDep, user: UserDep) -> Response:
    """The encoded result; for a failed job, its reason (the client shows it as the error)."""
    job = service.get_job(db, user=user, job_id=job_id, include_params=False)
    if job.status == JobState.COMPLETED:
        return Response(
            service.job_result(db, user=user, job_id=job_id), media_type="application/json"
        )
    if not job.status.is_final:
        return Response(status_code=204)
    return Response(job.state.reason or "", media_type="text/plain")


@router.get(
    "/jobs/{job_id}/logs",
    response_class=PlainTextResponse,
    summary="Get a job's log (IBM)",
    responses=errors(_NO_JOB),
)
def logs(job_id: str, db: DbDep, user: UserDep) -> Response:
    """What the job's program printed and logged, as text."""
    return Response(service.job_logs(db, user=user, job_id=job_id), media_type="text/plain")


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=None,
    summary="Get a job's metrics (IBM)",
    responses={
        200: {"model": models.JobMetricsIbm, "description": "The job's metrics."},
        **errors(_NO_JOB),
    },
)
def metrics(job_id: str, db: DbDep, user: UserDep) -> dict[str, Any]:
    """qruntime's job metrics, with the ``usage`` fields that ``job.usage()`` reads."""
    job = service.get_job(db, user=user, job_id=job_id, include_params=False)
    return shapes.metrics_to_ibm(service.job_metrics(db, user=user, job_id=job_id), job=job)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=204,
    summary="Cancel a job (IBM)",
    responses=errors(_NO_JOB, (409, "The job has already ended.")),
)
def cancel(job_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Cancel a queued job, or kill a running one."""
    service.cancel_and_kill(db, user=user, job_id=job_id, runtime=state.runtime)
    return Response(status_code=204)


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tags: list[str] = Field(max_length=64)


@router.put(
    "/jobs/{job_id}/tags",
    status_code=204,
    summary="Replace a job's tags (IBM)",
    responses=errors(_NO_JOB),
)
def update_tags(job_id: str, body: TagsBody, db: DbDep, user: UserDep) -> Response:
    """Replace the job's tags."""
    service.update_tags(db, user=user, job_id=job_id, tags=body.tags)
    return Response(status_code=204)


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    summary="Delete a job (IBM)",
    responses=errors(_NO_JOB),
)
def delete(job_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Delete a job; a queued or running job is cancelled first."""
    service.delete_job(db, user=user, job_id=job_id, runtime=state.runtime)
    return Response(status_code=204)
