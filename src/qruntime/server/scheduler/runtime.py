"""The job runtime: dispatches queued jobs to the executor and records what they report.

It lives on the server's event loop. Routes (in worker threads) tell it about new
jobs with `notify` and cancel running ones with `cancel_running`; it is woken by
those events, never by a timer. Every state change is written to the store by a
single writer thread (so interim results and the final result keep their order),
then published to the hub for streams and waiters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from qruntime.backends import Catalogue
from qruntime.schemas.jobs import RAN_TOO_LONG, JobState, sources_of
from qruntime.server.executor.base import Executor, JobSpec, WorkerEvent
from qruntime.server.scheduler import policy
from qruntime.server.scheduler.hub import JobHub
from qruntime.server.store import jobs as job_store
from qruntime.server.store import programs as program_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import Job, Program, utcnow

__all__ = ["JobRuntime"]

logger = logging.getLogger("qruntime.scheduler")

#: Reasons an executor gives for a job's end -> (state, reason shown to users).
_ERROR_STATES: dict[str, JobState] = {
    "cancelled": JobState.CANCELLED,
    "ran_too_long": JobState.CANCELLED,
}


class JobRuntime:
    """Owns dispatching and recording; one per server process."""

    def __init__(self, *, db: Database, catalogue: Catalogue, executor: Executor) -> None:
        self.db = db
        self.catalogue = catalogue
        self.executor = executor
        self.hub = JobHub()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="qrt-writer")
        self._running: defaultdict[str, set[str]] = defaultdict(set)
        self._queue = policy.QueueIndex()
        self._interim_seq: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._recover)
        await self.executor.start()
        self._task = asyncio.create_task(self._dispatch_forever(), name="qrt-dispatcher")
        self._wakeup.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.executor.stop()
        self._writer.shutdown(wait=True)

    def _recover(self) -> None:
        """After a crash: re-queue jobs that were running, unless they already published.

        A job that published interim results was seen half-way by its user; running it
        again would repeat what they saw, so it fails with the reason "server restarted".
        """
        with self.db.session() as db:
            for job in job_store.running_jobs(db):
                if job_store.count_interim_results(db, job_id=job.id):
                    job_store.update_job(
                        db,
                        job_id=job.id,
                        status=JobState.FAILED.value,
                        reason="server restarted",
                        finished_at=utcnow(),
                    )
                else:
                    job_store.update_job(
                        db, job_id=job.id, status=JobState.QUEUED.value, running_at=None
                    )
                logger.warning("recovered job %s after a restart", job.id)
            for job in job_store.queued_jobs_all(db):
                if job.backend not in self.catalogue:
                    job_store.update_job(
                        db,
                        job_id=job.id,
                        status=JobState.FAILED.value,
                        reason=f"backend {job.backend} is no longer in the server's catalogue",
                        finished_at=utcnow(),
                    )
                    continue
                self._queue.push(
                    policy.QueuedJob(
                        job_id=job.id, seq=job.seq, backend=job.backend, owner_id=job.owner_id
                    )
                )

    # -- thread-safe entry points for routes ---------------------------------------------

    def notify(self, job: Job) -> None:
        """A job was queued (and committed): index it and wake the dispatcher (any thread)."""
        queued = policy.QueuedJob(
            job_id=job.id, seq=job.seq, backend=job.backend, owner_id=job.owner_id
        )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, queued)

    def _enqueue(self, job: policy.QueuedJob) -> None:
        self._queue.push(job)
        self._wakeup.set()

    def cancel_running(self, job_id: str, *, timeout: float = 30.0) -> bool:
        """Kill a running job (from a route's thread); True if it was running here."""
        if self._loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self.executor.cancel(job_id), self._loop)
        return future.result(timeout)

    # -- dispatching ----------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._dispatch_once()
            except Exception:  # keep dispatching: one bad job must not stop the server
                logger.exception("dispatch failed")

    async def _dispatch_once(self) -> None:
        while True:
            free = {}
            for name in self._queue.backends():
                lanes = self.catalogue.get(name).spec.lanes - len(self._running[name])
                if lanes > 0:
                    free[name] = lanes
            chosen = self._queue.pop_next(free)
            if not chosen:
                return
            # Reserve the lanes now: the claim runs in a thread while events may arrive.
            for job in chosen:
                self._running[job.backend].add(job.job_id)
            specs = await asyncio.to_thread(self._claim, chosen)
            claimed = {spec.job_id for spec in specs}
            for job in chosen:
                if job.job_id not in claimed:  # cancelled or failed while it waited
                    self._running[job.backend].discard(job.job_id)
            for spec in specs:
                self._interim_seq[spec.job_id] = 0
                self.executor.submit(spec, self._on_event)

    def _claim(self, chosen: list[policy.QueuedJob]) -> list[JobSpec]:
        """Mark the chosen jobs Running in the store (each only if still Queued)."""
        specs = []
        with self.db.session() as db:
            for choice in chosen:
                claimed = job_store.update_job(
                    db,
                    job_id=choice.job_id,
                    where_status=sources_of(JobState.RUNNING),
                    status=JobState.RUNNING.value,
                    running_at=utcnow(),
                )
                if not claimed:
                    continue
                job = job_store.get_job(db, job_id=choice.job_id)
                assert job is not None
                found = program_store.get_program(db, program_id=job.program_id)
                if found is None:
                    job_store.update_job(
                        db,
                        job_id=job.id,
                        status=JobState.FAILED.value,
                        reason=f"program {job.program_id} was deleted before the job ran",
                        finished_at=utcnow(),
                    )
                    continue
                specs.append(self._spec_for(job, found[0]))
        return specs

    @staticmethod
    def _spec_for(job: Job, program: Program) -> JobSpec:
        return JobSpec(
            job_id=job.id,
            program_id=job.program_id,
            backend=job.backend,
            inputs=job.params,
            source=None if program.builtin else program.source,
            builtin=program.builtin,
            max_execution_time=float(job.max_execution_time),
            log_level=job.log_level or "WARNING",
            session_id=job.session_id,
        )

    # -- recording ------------------------------------------------------------------------

    def _on_event(self, event: WorkerEvent) -> None:
        """Executor callback, on the loop: store the event in order, then publish it."""
        message: dict[str, Any]
        write: Callable[[], None] | None = None
        if event.kind == "running":
            message = {"type": "state", "status": JobState.RUNNING.value, "final": False}
        elif event.kind == "interim":
            seq = self._interim_seq.get(event.job_id, 0)
            self._interim_seq[event.job_id] = seq + 1
            data = event.data or "null"
            message = {"type": "interim", "seq": seq, "data": data}
            write = lambda: self._write_interim(event.job_id, seq, data)  # noqa: E731
        elif event.kind == "log":
            message = {"type": "log", "data": event.data or ""}
            write = lambda: self._write_log(event.job_id, event.data or "")  # noqa: E731
        else:
            state, reason = self._final_state(event)
            message = {"type": "state", "status": state.value, "reason": reason, "final": True}
            if state is JobState.COMPLETED:
                message["result"] = event.data or "null"
            write = lambda: self._write_final(event, state, reason)  # noqa: E731
            self._finish(event.job_id)
        if write is None:
            self.hub.publish(event.job_id, message)
            return
        assert self._loop is not None
        future = self._loop.run_in_executor(self._writer, write)
        future.add_done_callback(lambda f: self._published(f, event.job_id, message))

    def _published(
        self, future: asyncio.Future[None], job_id: str, message: dict[str, Any]
    ) -> None:
        if future.exception() is not None:
            logger.error(
                "could not record %s of job %s",
                message["type"],
                job_id,
                exc_info=future.exception(),
            )
        self.hub.publish(job_id, message)

    def _finish(self, job_id: str) -> None:
        for running in self._running.values():
            running.discard(job_id)
        self._interim_seq.pop(job_id, None)
        self._wakeup.set()

    @staticmethod
    def _final_state(event: WorkerEvent) -> tuple[JobState, str | None]:
        if event.kind == "result":
            return JobState.COMPLETED, None
        if event.reason == "ran_too_long":
            return JobState.CANCELLED, RAN_TOO_LONG
        if event.reason == "cancelled":
            return JobState.CANCELLED, event.message or "cancelled by the user"
        return _ERROR_STATES.get(event.reason or "", JobState.FAILED), event.message

    def _write_interim(self, job_id: str, seq: int, data: str) -> None:
        with self.db.session() as db:
            job_store.add_interim_result(db, job_id=job_id, seq=seq, data=data)

    def _write_log(self, job_id: str, text: str) -> None:
        with self.db.session() as db:
            job_store.append_log(db, job_id=job_id, text=text)

    def _write_final(self, event: WorkerEvent, state: JobState, reason: str | None) -> None:
        now = utcnow()
        with self.db.session() as db:
            job = job_store.get_job(db, job_id=event.job_id)
            usage = (now - job.running_at).total_seconds() if job and job.running_at else None
            job_store.update_job(
                db,
                job_id=event.job_id,
                where_status=sources_of(state),
                status=state.value,
                reason=reason,
                result=event.data if state is JobState.COMPLETED else None,
                finished_at=now,
                usage_seconds=usage,
            )
