"""Server-sent events for the dashboard's live parts, fed by the job hub.

The hub (`qruntime.server.scheduler.hub.JobHub`) is what the API's WebSocket stream and
long polls wait on; these streams read the same messages, so a page hears of a change
as soon as a client would.

- ``/ui/events/jobs/{id}``: one job, as the job page shows it. On (re)connection: the
  whole log (``log`` with ``reset``), the stored interim results (``interim`` with their
  ``seq``: a page skips those it has) and the state; then each interim result, log
  text and state as it happens; after the final state, ``end``.
- ``/ui/events/jobs``: ``changed`` (``{"id", "status"}``) when one of the caller's jobs
  is queued, starts or ends; an admin hears of every user's.
- ``/ui/events/queue``: ``changed`` (``{}``, no job named) when any job is queued,
  starts or ends: what moves the lanes and queue lengths everyone sees.

Each stream sends a comment every `KEEPALIVE_SECONDS`, which finds a client that went
away and keeps proxies from closing an idle stream, and ends while the server drains.
Visibility is the API's: the job stream reads the job through `services.jobs` first, so
another user's job gives the same not-found answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from qruntime.schemas.jobs import JobOut
from qruntime.server.api.deps import StateDep
from qruntime.server.api.state import AppState
from qruntime.server.services import jobs as job_service
from qruntime.server.store.tables import User
from qruntime.server.ui.auth import UiCaller
from qruntime.server.ui.previews import interim_text
from qruntime.server.ui.routing import page_router

__all__ = ["KEEPALIVE_SECONDS", "router", "sse"]

router = page_router()

#: Seconds between keep-alive comments on a quiet stream.
KEEPALIVE_SECONDS = 15.0
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any) -> str:
    """One server-sent event: its name and JSON data."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=_HEADERS)


async def _next(queue: asyncio.Queue[Any]) -> Any | None:
    """The queue's next item; None after `KEEPALIVE_SECONDS` of quiet."""
    try:
        return await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
    except TimeoutError:
        return None


def _job_start(
    state: AppState, user: User, job_id: str
) -> tuple[JobOut, str, list[tuple[int, str]]]:
    with state.db.session() as db:
        job = job_service.get_job(db, user=user, job_id=job_id, include_params=False)
        logs = job_service.job_logs(db, user=user, job_id=job_id)
        return job, logs, job_service.interim_results_since(db, user=user, job_id=job_id)


def _already_logged(logs: str, pending: list[str]) -> int:
    """How many of the first ``pending`` log texts are already the end of ``logs``.

    The hub publishes a log text after it is committed: those queued while the store
    was read may be in what was read (a prefix of them, in order) or not.
    """
    for count in range(len(pending), 0, -1):
        if logs.endswith("".join(pending[:count])):
            return count
    return 0


@router.get("/ui/events/jobs/{job_id}")
async def job_events(job_id: str, request: Request, state: StateDep, user: UiCaller) -> Response:
    hub = state.runtime.hub
    queue = hub.subscribe(job_id)  # before the store is read: nothing falls in between
    try:
        job, logs, stored = await state.in_thread(_job_start, state, user, job_id)
    except BaseException:
        hub.unsubscribe(job_id, queue)
        raise
    early: list[dict[str, Any]] = []
    while not queue.empty():
        early.append(queue.get_nowait())
    early_logs = [m["data"] for m in early if m.get("type") == "log"]
    skip_logs = _already_logged(logs, early_logs)

    async def events() -> AsyncIterator[str]:
        try:
            yield sse("log", {"reset": True, "text": logs})
            after = -1
            for seq, data in stored:
                yield sse("interim", {"seq": seq, "text": interim_text(data)})
                after = seq
            yield sse(
                "state",
                {
                    "status": job.status.value,
                    "reason": job.state.reason,
                    "final": job.status.is_final,
                },
            )
            if job.status.is_final:
                yield sse("end", {})
                return
            logs_to_skip = skip_logs
            backlog = list(early)
            while True:
                message = backlog.pop(0) if backlog else await _next(queue)
                if message is None:
                    if state.runtime.draining:
                        return
                    yield ": keep-alive\n\n"
                    continue
                kind = message.get("type")
                if kind == "log":
                    if logs_to_skip:
                        logs_to_skip -= 1
                        continue
                    yield sse("log", {"text": message.get("data", "")})
                elif kind == "interim":
                    if message["seq"] <= after:
                        continue
                    after = message["seq"]
                    yield sse("interim", {"seq": after, "text": interim_text(message["data"])})
                elif kind == "state":
                    final = bool(message.get("final"))
                    yield sse(
                        "state",
                        {
                            "status": message.get("status"),
                            "reason": message.get("reason"),
                            "final": final,
                        },
                    )
                    if final:
                        yield sse("end", {})
                        return
        finally:
            hub.unsubscribe(job_id, queue)

    return _stream(events())


def _changes(
    state: AppState, visible: Callable[[str | None], bool], *, with_id: bool
) -> AsyncIterator[str]:
    """``changed`` for each job state change the caller may hear of."""
    hub = state.runtime.hub

    async def events() -> AsyncIterator[str]:
        queue = hub.watch()
        try:
            yield ": connected\n\n"  # the page knows the stream is open (and refetches)
            while True:
                item = await _next(queue)
                if item is None:
                    if state.runtime.draining:
                        return
                    yield ": keep-alive\n\n"
                    continue
                job_id, owner_id, message = item
                if message.get("type") != "state" or not visible(owner_id):
                    continue
                data = {"id": job_id, "status": message.get("status")} if with_id else {}
                yield sse("changed", data)
        finally:
            hub.unwatch(queue)

    return events()


@router.get("/ui/events/jobs")
async def job_list_events(state: StateDep, user: UiCaller) -> Response:
    if user.is_admin:
        return _stream(_changes(state, lambda owner: True, with_id=True))
    return _stream(_changes(state, lambda owner: owner == user.id, with_id=True))


@router.get("/ui/events/queue")
async def queue_events(state: StateDep, user: UiCaller) -> Response:
    return _stream(_changes(state, lambda owner: True, with_id=False))
