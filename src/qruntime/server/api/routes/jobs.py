"""Jobs: submit, follow, list, cancel, delete; a WebSocket stream and a long poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

from qruntime.errors import InputValueError, QRuntimeError
from qruntime.schemas.jobs import (
    InterimResults,
    JobCreate,
    JobCreated,
    JobList,
    JobMetrics,
    JobOut,
    JobState,
    TagsUpdate,
)
from qruntime.server.api.deps import (
    DbDep,
    StateDep,
    UserDep,
    access_token,
    body_size,
    resolve_user,
)
from qruntime.server.api.job_filters import JobFiltersDep
from qruntime.server.api.openapi import errors
from qruntime.server.api.paging import MAX_OFFSET
from qruntime.server.api.state import AppState
from qruntime.server.services import jobs as service
from qruntime.server.store.tables import User

router = APIRouter(tags=["jobs"])

#: For the routes that read the token themselves (a long poll need not hold a thread).
_NEEDS_TOKEN: dict[str, Any] = {"security": [{"AccessToken": []}]}
_NO_JOB = (404, "No such job, or not yours.")


@router.post(
    "/jobs",
    response_model=JobCreated,
    status_code=201,
    summary="Submit a job",
    responses=errors(
        (404, "No such program (or not visible to you), backend or session."),
        (409, "The session takes no new jobs (closed, cancelled or out of time)."),
        (429, "You have as many queued jobs as the server allows (`quota_exceeded`)."),
        503,
    ),
)
async def submit(body: JobCreate, user: UserDep, state: StateDep, request: Request) -> JobCreated:
    """Queue a job: run ``program_id`` on ``backend`` with ``params`` as its inputs.

    The inputs are runtime-encoded JSON (`qruntime.encoding`), checked against the
    program's parameters before the job is queued. The job is stored before its id is
    returned; follow it with ``GET /jobs/{id}/results?wait=...`` or the WebSocket
    ``/stream/jobs/{id}``. ``session_id`` runs it in a session, ``start_session`` opens
    a dedicated one for it; ``private`` keeps its inputs secret and lets its result be
    read once.
    """
    # async: the checks take one hop to a thread (none for a loop's remembered inputs),
    # the insert joins the store writer's next commit (`AppState.queue_job`): the
    # hottest route of all.
    job = await state.queue_job(user, body, size=body_size(request))
    return JobCreated(id=job.id, backend=job.backend)


@router.get(
    "/jobs",
    response_model=JobList,
    response_model_exclude_none=True,
    summary="List jobs",
    responses=errors((403, "Only admins may list other users' jobs.")),
)
def list_jobs(
    db: DbDep,
    user: UserDep,
    filters: JobFiltersDep,
) -> JobList:
    """Your jobs, newest first (``sort=ASC``: oldest), a page of ``limit`` from ``offset``,
    with ``count``, the number of jobs that match. Filters: ``pending`` (queued or
    running; false: ended), ``program``, ``backend``, ``session_id``, ``tags`` (all of
    them), ``created_after``, ``created_before``. Inputs (``params``) are left out."""
    jobs, count = service.list_jobs(db, user=user, **filters.service_arguments())
    return JobList(jobs=jobs, count=count)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    response_model_exclude_none=True,
    summary="Get a job",
    responses=errors(_NO_JOB),
)
def get_job(job_id: str, db: DbDep, user: UserDep, exclude_params: bool = False) -> JobOut:
    """A job's state (with the reason it failed or was cancelled), program, backend,
    session, tags and timestamps; its inputs unless ``exclude_params`` (never a private
    job's)."""
    return service.get_job(db, user=user, job_id=job_id, include_params=not exclude_params)


@router.get(
    "/jobs/{job_id}/wait",
    response_model=JobOut,
    response_model_exclude_none=True,
    summary="Wait for a job to end",
    responses=errors(_NO_JOB),
    openapi_extra=_NEEDS_TOKEN,
)
async def wait_for_job(
    job_id: str,
    request: Request,
    state: StateDep,
    timeout: Annotated[float, Query(ge=0, le=300)] = 30.0,
) -> JobOut:
    """Long poll: answer as soon as the job is final, or after ``timeout`` seconds."""
    user = await resolve_user(state, access_token(request))
    return await _await_final(state, user, job_id, timeout)


async def _await_final(state: AppState, user: User, job_id: str, timeout: float) -> JobOut:
    """The job once it is final, or as it is after ``timeout`` seconds (woken, not polled)."""
    queue = state.runtime.hub.subscribe(job_id)
    try:
        job = await state.in_thread(_read_job, state, user, job_id)
        if job.status in (JobState.QUEUED, JobState.RUNNING) and timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while not (await queue.get()).get("final"):
                        pass
            job = await state.in_thread(_read_job, state, user, job_id)
        return job
    finally:
        state.runtime.hub.unsubscribe(job_id, queue)


def _read_job(state: AppState, user: User, job_id: str) -> JobOut:
    with state.db.session() as db:
        return service.get_job(db, user=user, job_id=job_id, include_params=False)


@router.get(
    "/jobs/{job_id}/results",
    summary="Get a job's result",
    responses={
        200: {
            "description": "The job's result, runtime-encoded JSON (`qruntime.encoding`).",
            "content": {"application/json": {"schema": {}}},
        },
        202: {"model": JobOut, "description": "Still queued or running after ``wait``."},
        **errors(
            (403, "A private job's result is for its owner alone."),
            _NO_JOB,
            (409, "The job ended without a result, or its private result was read already."),
        ),
    },
    openapi_extra=_NEEDS_TOKEN,
)
async def results(
    job_id: str,
    request: Request,
    state: StateDep,
    wait: Annotated[float, Query(ge=0, le=300)] = 0.0,
) -> Response:
    """The encoded result of a completed job.

    With ``wait``, a job that is not final yet is waited for up to that many seconds
    (a long poll, woken by the job's end); if it is still queued or running then, the
    answer is 202 with the job's state. A job that ended without a result gets 409.
    """
    user = await resolve_user(state, access_token(request))
    return await results_response(state, user, job_id, wait)


async def results_response(state: AppState, user: User, job_id: str, wait: float) -> Response:
    """The answer of ``GET /jobs/{job_id}/results`` (shared with `qruntime.server.api.hot`)."""
    hub = state.runtime.hub
    queue = hub.subscribe(job_id)
    try:
        if wait > 0 and hub.pending_for(job_id, user.id):
            # Subscribed while it is pending: its end will come through the hub.
            status, text = JobState.QUEUED, None
        else:
            status, text = await state.in_thread(_outcome, state, user, job_id)
        if not status.is_final and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while not (message := await queue.get()).get("final"):
                        pass
                    if "result" in message:  # the result itself, straight from the worker
                        return Response(message["result"], media_type="application/json")
            status, text = await state.in_thread(_outcome, state, user, job_id)
        if not status.is_final:
            job = await state.in_thread(_read_job, state, user, job_id)
            return Response(
                job.model_dump_json(exclude_none=True),
                status_code=202,
                media_type="application/json",
            )
    finally:
        hub.unsubscribe(job_id, queue)
    return Response(text, media_type="application/json")


def _outcome(state: AppState, user: User, job_id: str) -> tuple[JobState, str | None]:
    """A job's state, and its result text once it completed (one query)."""
    with state.db.session() as db:
        return service.job_outcome(db, user=user, job_id=job_id)


@router.get(
    "/jobs/{job_id}/interim_results",
    response_model=InterimResults,
    summary="List a job's interim results",
    responses=errors(_NO_JOB),
)
def interim_results(job_id: str, db: DbDep, user: UserDep) -> dict[str, list[str]]:
    """What the job's program published with ``user_messenger.publish``, oldest first."""
    return {"interim_results": service.interim_results(db, user=user, job_id=job_id)}


@router.get(
    "/jobs/{job_id}/logs",
    response_class=PlainTextResponse,
    summary="Get a job's log",
    responses=errors(_NO_JOB),
)
def logs(job_id: str, db: DbDep, user: UserDep) -> Response:
    """What the job's program printed and logged (at its ``log_level`` or above), as text."""
    return Response(service.job_logs(db, user=user, job_id=job_id), media_type="text/plain")


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=None,
    summary="Get a job's metrics",
    responses={200: {"model": JobMetrics, "description": "The job's metrics."}, **errors(_NO_JOB)},
)
def metrics(job_id: str, db: DbDep, user: UserDep) -> dict[str, Any]:
    """When the job was created, started and ended, how long it ran, and what its worker
    reused (transpiled circuits, simulators)."""
    return service.job_metrics(db, user=user, job_id=job_id)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=204,
    summary="Cancel a job",
    responses=errors(_NO_JOB, (409, "The job has already ended.")),
)
def cancel(job_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Cancel a queued job, or kill a running one; it ends ``Cancelled``."""
    service.cancel_and_kill(db, user=user, job_id=job_id, runtime=state.runtime)
    return Response(status_code=204)


@router.put(
    "/jobs/{job_id}/tags",
    status_code=204,
    summary="Replace a job's tags",
    responses=errors(_NO_JOB),
)
def update_tags(job_id: str, body: TagsUpdate, db: DbDep, user: UserDep) -> Response:
    """Replace the job's tags with ``tags`` (up to 64)."""
    service.update_tags(db, user=user, job_id=job_id, tags=body.tags)
    return Response(status_code=204)


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    summary="Delete a job",
    responses=errors(_NO_JOB),
)
def delete(job_id: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Delete a job with its result, interim results and log; a queued or running job is
    cancelled first."""
    service.delete_job(db, user=user, job_id=job_id, runtime=state.runtime)
    return Response(status_code=204)


@router.websocket("/stream/jobs/{job_id}")
async def stream(websocket: WebSocket, job_id: str) -> None:
    """Interim results in publish order (stored ones first), then the final state, then close.

    Authenticate with ``Authorization: Bearer`` (or ``?access_token=`` where a client
    cannot set headers). ``?after=N`` skips interim results up to sequence number N.
    """
    state: AppState = websocket.app.state.qruntime
    token = access_token(websocket) or websocket.query_params.get("access_token")
    queue = state.runtime.hub.subscribe(job_id)
    try:
        try:
            after = _sequence_number(websocket.query_params.get("after", "-1"))
            user = await resolve_user(state, token)
            job, stored = await state.in_thread(_stream_start, state, user, job_id, after)
        except QRuntimeError as error:
            await websocket.accept()
            await websocket.send_text(json.dumps({"type": "error", **error.to_dict()["error"]}))
            await websocket.close(code=4000 + error.status_code)
            return
        await websocket.accept()
        for seq, data in stored:
            await websocket.send_text(json.dumps({"type": "interim", "seq": seq, "data": data}))
            after = seq
        if JobState(job.status).is_final:
            await websocket.send_text(json.dumps(_final(job.status, job.state.reason)))
        else:
            while True:
                message = await queue.get()
                if message["type"] == "interim":
                    if message["seq"] <= after:
                        continue
                    after = message["seq"]
                elif message["type"] != "state":
                    continue
                else:
                    message = {k: v for k, v in message.items() if k != "result"}
                await websocket.send_text(json.dumps(message))
                if message.get("final"):
                    break
        await websocket.close()
    except WebSocketDisconnect:
        pass
    finally:
        state.runtime.hub.unsubscribe(job_id, queue)


def _sequence_number(text: str) -> int:
    """``?after=``: -1 (from the start) or a sequence number the store can hold."""
    try:
        after = int(text)
    except ValueError:
        raise InputValueError(f"after must be an integer, not {text!r}.") from None
    if not -1 <= after <= MAX_OFFSET:
        raise InputValueError(f"after must be from -1 to {MAX_OFFSET}.")
    return after


def _final(status: str, reason: str | None) -> dict[str, Any]:
    return {"type": "state", "status": status, "reason": reason, "final": True}


def _stream_start(
    state: AppState, user: User, job_id: str, after: int
) -> tuple[JobOut, list[tuple[int, str]]]:
    with state.db.session() as db:
        job = service.get_job(db, user=user, job_id=job_id, include_params=False)
        return job, service.interim_results_since(db, user=user, job_id=job_id, after=after)
