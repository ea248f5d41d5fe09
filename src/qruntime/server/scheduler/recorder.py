"""Writes what workers report to the store, in order, then tells whoever listens.

One writer thread does every write (`StoreWriter`), so a job's interim results, logs
and final state reach the store in the order the worker sent them; each message is
published to the hub only after it is committed, so a listener that then reads the
store sees it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from qruntime.schemas.jobs import RAN_TOO_LONG, JobState, sources_of
from qruntime.server.executor.base import WorkerEvent
from qruntime.server.scheduler.hub import JobHub
from qruntime.server.scheduler.writer import StoreWriter
from qruntime.server.store import jobs as job_store
from qruntime.server.store import sessions as session_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import utcnow

__all__ = ["Recorder", "final_state"]

logger = logging.getLogger("qruntime.scheduler")

T = TypeVar("T")


def final_state(event: WorkerEvent) -> tuple[JobState, str | None]:
    """The job state and reason for a terminal worker event."""
    if event.kind == "result":
        return JobState.COMPLETED, None
    if event.reason == "ran_too_long":
        return JobState.CANCELLED, RAN_TOO_LONG
    if event.reason == "cancelled":
        return JobState.CANCELLED, event.message or "cancelled by the user"
    return JobState.FAILED, event.message


class Recorder:
    def __init__(
        self, *, db: Database, hub: JobHub, fence: Callable[[Session], bool] | None = None
    ) -> None:
        self.hub = hub
        self._writer = StoreWriter(db, fence=fence)
        self._interim_seq: dict[str, int] = {}
        self._started_at: dict[str, datetime] = {}

    def started(self, job_id: str) -> None:
        self._interim_seq[job_id] = 0
        self._started_at[job_id] = utcnow()  # for the usage, without reading the job back

    def record(self, event: WorkerEvent, *, session_id: str | None = None) -> None:
        """Store ``event`` (on the writer thread), then publish it. Call on the loop."""
        message: dict[str, Any]
        write: Callable[[Session], Any] | None = None
        job_id = event.job_id
        if event.kind == "running":
            message = {"type": "state", "status": JobState.RUNNING.value, "final": False}
        elif event.kind == "interim":
            seq = self._interim_seq.get(job_id, 0)
            self._interim_seq[job_id] = seq + 1
            data = event.data or "null"
            message = {"type": "interim", "seq": seq, "data": data}
            write = lambda db: job_store.add_interim_result(db, job_id=job_id, seq=seq, data=data)  # noqa: E731
        elif event.kind == "log":
            message = {"type": "log", "data": event.data or ""}
            write = lambda db: job_store.append_log(db, job_id=job_id, text=event.data or "")  # noqa: E731
        else:
            state, reason = final_state(event)
            message = {"type": "state", "status": state.value, "reason": reason, "final": True}
            if state is JobState.COMPLETED:
                message["result"] = event.data or "null"
            started = self._started_at.pop(job_id, None)
            write = lambda db: self._write_final(db, event, state, reason, session_id, started)  # noqa: E731
            self._interim_seq.pop(job_id, None)
        if write is None:
            self.hub.publish(job_id, message)
            return
        future = self._writer.submit(write)
        future.add_done_callback(lambda f: self._published(f, job_id, message))

    def run(self, write: Callable[[Session], T], *, fenced: bool = True) -> asyncio.Future[T]:
        """Run another store write, ``write(db)``, in order with the events. On the loop.

        ``fenced=False``: a write any server may make, not only the leader (`StoreWriter`).
        """
        return self._writer.submit(write, fenced=fenced)

    def close(self) -> None:
        self._writer.close()

    def forget(self, job_id: str) -> None:
        """Drop what is kept of a job whose events will not be recorded (abandoned)."""
        self._interim_seq.pop(job_id, None)
        self._started_at.pop(job_id, None)

    def _published(self, future: asyncio.Future[Any], job_id: str, message: dict[str, Any]) -> None:
        if future.exception() is not None:
            logger.error(
                "could not record %s of job %s",
                message["type"],
                job_id,
                exc_info=future.exception(),
            )
        elif isinstance(future.result(), dict):  # the store knew better: say what it says
            message = future.result()
        self.hub.publish(job_id, message)

    def _write_final(
        self,
        db: Session,
        event: WorkerEvent,
        state: JobState,
        reason: str | None,
        session_id: str | None,
        started: datetime | None,
    ) -> dict[str, Any] | None:
        """Write a job's end; if the job had already ended otherwise (cancelled while it
        started), return the message that says so instead of this event's (and for a
        private job, the message without its result).
        """
        now = utcnow()
        usage = (now - started).total_seconds() if started is not None else None
        written = job_store.finish_job(
            db,
            job_id=event.job_id,
            sources=sources_of(state),
            status=state.value,
            reason=reason,
            result=event.data if state is JobState.COMPLETED else None,
            finished_at=now,
            usage_seconds=usage,
            metrics=getattr(event, "metrics", None),
        )
        if session_id is not None:
            session_store.job_ended(db, session_id=session_id, at=now)
        if written is not None:
            if written and state is JobState.COMPLETED:
                # A private job's result is read once, from the store: not handed to
                # every waiter.
                return {"type": "state", "status": state.value, "reason": reason, "final": True}
            return None
        row = job_store.job_outcome(db, job_id=event.job_id)
        if row is None or not JobState(row.status).is_final:
            return None
        return {"type": "state", "status": row.status, "reason": row.reason, "final": True}
