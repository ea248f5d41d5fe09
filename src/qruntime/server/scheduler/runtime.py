"""The job runtime: dispatches queued jobs by the policy and keeps sessions' clocks.

It lives on the server's event loop. Routes (in worker threads) tell it about new jobs
(`notify`), changed sessions (`refresh_session`) and running jobs to kill
(`cancel_running`); it is woken by those events and by timers set for the moments a
session's interactive timeout or max_time runs out, never by polling. What workers
report goes through the `Recorder`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.errors import QRuntimeError
from qruntime.schemas.jobs import JobState, sources_of
from qruntime.server.executor.base import Executor, JobSpec, WorkerEvent
from qruntime.server.scheduler.hub import JobHub
from qruntime.server.scheduler.policy import QueuedJob, Scheduler, SessionInfo
from qruntime.server.scheduler.ready import ReadySpecs
from qruntime.server.scheduler.recorder import Recorder
from qruntime.server.services.programs import BuiltinHeads
from qruntime.server.store import jobs as job_store
from qruntime.server.store import sessions as session_store
from qruntime.server.store.database import AnyRow, Database
from qruntime.server.store.tables import Job, RuntimeSession, utcnow

__all__ = ["JobRuntime"]

T = TypeVar("T")
logger = logging.getLogger("qruntime.scheduler")

MAX_TIME_REASON = "the session's max_time expired"
#: Why a job that had published interim results fails when the server restarts or stops.
RESTARTED_REASON = "server restarted"
STOPPED_REASON = "server stopped while the job ran"


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


class JobRuntime:
    """Owns dispatching, session clocks and recording; one per server process."""

    #: Start a kept built-in job before the store marks it Running (the claim follows
    #: as the writer's next write). Off where a claim can fail for want of the lead.
    _start_before_claim = True
    #: The leader's epoch that each claim must find current (several servers), or None.
    _claim_epoch: int | None = None
    #: Whether this server runs the scheduler and the executor: a lone server always does.
    leading = True

    def __init__(
        self,
        *,
        db: Database,
        catalogue: Catalogue,
        executor: Executor,
        fair_share_window: float = 3600.0,
        server_id: str | None = None,
        listen: str = "",
    ) -> None:
        self.db = db
        self.catalogue = catalogue
        self.executor = executor
        #: This server's id (its notices and log lines name it), where it answers
        #: (``host:port``), and since when.
        self.server_id = server_id or secrets.token_hex(4)
        self.listen = listen
        self.started_at = datetime.now(UTC)
        self.hub = JobHub()
        self.recorder = Recorder(db=db, hub=self.hub)
        self.scheduler = Scheduler(usage_window=fair_share_window)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: defaultdict[str, set[str]] = defaultdict(set)
        self._job_session: dict[str, str] = {}
        #: Dedicated session id -> the executor's node it is pinned to (as recorded).
        self._session_nodes: dict[str, str] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executor_started: asyncio.Task[None] | None = None
        self._ready = ReadySpecs()
        self._refilling = False
        #: What a claim reads of a built-in program, kept: a job without a kept spec
        #: (queued by another server, or recovered) costs no read of the programs table.
        self._builtin_programs = BuiltinHeads(read=job_store.program_to_run)
        #: Set by `drain`: no job is started any more; routes refuse new ones.
        self.draining = False
        self._released = asyncio.Event()
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start_executor(self) -> None:
        """Start the workers warming up now; jobs are dispatched once they are ready."""
        if self._executor_started is None:
            self._executor_started = asyncio.create_task(self.executor.start())

    async def start(self) -> None:
        """Recover the queue and start dispatching; returns before the workers are warm."""
        self._loop = asyncio.get_running_loop()
        self.start_executor()
        await self._lead()

    async def _lead(self) -> None:
        """Recover the queue and the sessions from the store, and start dispatching."""
        queued, sessions = await asyncio.to_thread(self._recover)
        for row in sessions:
            self._adopt_session(row)
        for job in queued:
            self._enqueue(job)
        self._task = asyncio.create_task(self._dispatch_forever(), name="qrt-dispatcher")
        self._wakeup.set()
        self._refill_ready()

    async def drain(self, timeout: float) -> int:
        """Start no more jobs; wait up to ``timeout`` seconds for the running ones to end.

        New jobs are refused from now on (`draining`); the queued ones stay queued in the
        store, for the next start. The jobs still running after ``timeout`` are stopped
        and queued again (`stop` does the rest). Returns how many they were.
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        if self.running_count():
            logger.warning(
                "stopping: no new jobs; waiting up to %g s for %d running job(s)",
                timeout,
                self.running_count(),
            )
        while self.running_count() and (left := deadline - loop.time()) > 0:
            self._released.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), left)
        unfinished = self.running_count()
        if unfinished:
            logger.warning("stopping: %d job(s) still running are queued again", unfinished)
            await self._halt()
        return unfinished

    def running_count(self) -> int:
        """How many jobs this server runs now (or is starting)."""
        return sum(len(jobs) for jobs in self._running.values())

    async def stop(self) -> None:
        """Stop dispatching and the workers; jobs still running are queued again."""
        await self._halt()
        self.recorder.close()

    async def _halt(self) -> None:
        """Stop dispatching and the workers, and queue again the jobs still running.

        From here on only the results that workers report are recorded: a job that the
        stop cuts short did not fail, it runs again after the restart (or fails with
        `STOPPED_REASON` if it had published interim results, as after a crash).
        """
        if self._stopping:
            return
        self.draining = True
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor_started is not None:
            with contextlib.suppress(Exception):
                await self._executor_started
        unfinished = [job_id for jobs in self._running.values() for job_id in jobs]
        await self.executor.stop()
        if unfinished:
            # After every event recorded so far: a result that came in time stays.
            requeue = self.recorder.run(lambda db: _requeue(db, unfinished, STOPPED_REASON))
            with contextlib.suppress(Exception):
                await requeue

    def _recover(self) -> tuple[list[QueuedJob], list[RuntimeSession]]:
        """After a crash: re-queue jobs that were running, unless they already published.

        A job that published interim results was seen half-way by its user; running it
        again would repeat what they saw, so it fails with the reason "server restarted".
        """
        queued: list[QueuedJob] = []
        with self.db.session() as db:
            running = [job.id for job in job_store.running_jobs(db)]
            _requeue(db, running, RESTARTED_REASON)
            for job_id in running:
                logger.warning("recovered job %s after a restart", job_id)
            for row in job_store.queued_jobs_all(db):
                if row.backend not in self.catalogue:
                    _fail(
                        db, row.id, f"backend {row.backend} is no longer in the server's catalogue"
                    )
                    continue
                queued.append(_queued(row))
            sessions = session_store.live_sessions(db)
        return queued, sessions

    # -- thread-safe entry points for routes ---------------------------------------------

    def notify(self, job: Job, *, builtin: str | None = None) -> None:
        """A job was queued (and committed): index it and wake the dispatcher (any thread).

        ``builtin``: the job runs that built-in program, so what it needs to run is all
        in ``job``; it is kept, and the job's dispatch needs no read of the store.
        """
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue_stored, job, builtin)

    def _queue_stored(self, job: Job, builtin: str | None) -> None:
        ready = None if builtin is None else _spec(job, builtin=builtin, session_id=job.session_id)
        self._enqueue(_queued(job), ready)

    def store_job(
        self,
        write: Callable[[Session], Job | QRuntimeError],
        *,
        builtin: str | None = None,
        opens_session: bool = False,
    ) -> asyncio.Future[Job | QRuntimeError]:
        """Store a checked job as the store writer's next write, then queue it. On the loop.

        The insert is committed with whatever else the writer writes at that moment
        (other submissions, jobs' starts and ends): one commit for all of them, where a
        submission on a route's thread was a transaction and a commit of its own. Any
        server may store a job (the write is not fenced). ``write`` returns the stored
        job, or the refusal to answer with; the job is queued here once committed,
        whether or not anyone still awaits the future (shield it). ``opens_session``: the
        write also stored the job's own session (``start_session``), which the scheduler
        reads then.
        """
        stored = self.recorder.run(write, fenced=False)
        stored.add_done_callback(lambda future: self._stored(future, builtin, opens_session))
        return stored

    def _stored(
        self,
        future: asyncio.Future[Job | QRuntimeError],
        builtin: str | None,
        opens_session: bool,
    ) -> None:
        if future.cancelled() or future.exception() is not None or self._loop is None:
            return
        job = future.result()
        if isinstance(job, QRuntimeError):
            return
        self._queue_stored(job, builtin)
        if opens_session and job.session_id is not None:
            self.refresh_session(job.session_id)

    def unqueue(self, job: Job, *, reason: str) -> None:
        """A queued job was cancelled in the store (any thread): forget it, tell waiters."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._unqueue, _queued(job), reason)

    def _unqueue(self, job: QueuedJob, reason: str) -> None:
        if self.scheduler.remove(job):
            self._ready.take(job.job_id)
        self._announce_cancelled([job.job_id], reason)

    def announce_cancelled(self, job_ids: list[str], *, reason: str) -> None:
        """Queued jobs were cancelled in the store (any thread): wake whoever waits on them.

        The queue itself learns of them from the session they belonged to.
        """
        if self._loop is not None and job_ids:
            self._loop.call_soon_threadsafe(self._announce_cancelled, job_ids, reason)

    def _announce_cancelled(self, job_ids: list[str], reason: str | None) -> None:
        for job_id in job_ids:
            message = {
                "type": "state",
                "status": JobState.CANCELLED.value,
                "reason": reason,
                "final": True,
            }
            self.hub.publish(job_id, message)

    def queued_by(self, owner_id: str) -> int | None:
        """How many jobs a user has queued now (any thread); None where this server knows
        no queue (`ClusterRuntime` while it does not lead): the store counts them then."""
        return self.scheduler.queued_by(owner_id)

    def refresh_session(self, session_id: str) -> None:
        """A session was created, closed or cancelled in the store: catch up (any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._refresh_session(session_id))

    def after_recorded(self, write: Callable[[Session], T], *, timeout: float = 30.0) -> T:
        """Run ``write(db)`` after every job event recorded so far (from a route's thread).

        A killed job's last events are still on their way to the store: a write that must
        come after them (deleting the job) goes through the same ordered writer.
        """
        if self._loop is None:
            raise QRuntimeError("the job runtime is not running")

        async def run() -> T:
            return await self.recorder.run(write)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def cancel_running(self, job_id: str, *, timeout: float = 30.0) -> bool:
        """Kill a running job (from a route's thread); True if it was running here."""
        if self._loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self.executor.cancel(job_id), self._loop)
        return future.result(timeout)

    # -- sessions -------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _adopt_session(self, row: RuntimeSession) -> SessionInfo:
        info = self.scheduler.sessions.get(row.id)
        if info is None:
            info = SessionInfo(
                session_id=row.id,
                owner_id=row.owner_id,
                backend=row.backend,
                mode=row.mode,
                state=row.state,
                interactive_ttl=float(row.interactive_ttl),
                last_job_ended_at=_epoch(row.last_job_ended_at),
            )
            self.scheduler.sessions[row.id] = info
        info.accepting_jobs = row.accepting_jobs
        if row.node is not None:  # what this server placed since is newer than the row
            self._session_nodes.setdefault(row.id, row.node)
        if row.activated_at is not None:
            self._arm(row.id, "expire", row.activated_at.timestamp() + row.max_ttl)
        if info.state == "active" and info.last_job_ended_at is not None:
            self._arm(row.id, "idle", info.last_job_ended_at + info.interactive_ttl)
        return info

    async def _refresh_session(self, session_id: str) -> None:
        row, queued = await asyncio.to_thread(self._read_session, session_id)
        if row is None:
            return
        info = self._adopt_session(row)
        if not row.accepting_jobs and queued == 0:
            # Cancelled: its queued jobs are gone from the store (no new ones can come).
            self._ready.forget(j.job_id for j in self.scheduler.drop_session_jobs(session_id))
        await self._settle_session(info)
        self._wakeup.set()

    def _read_session(self, session_id: str) -> tuple[RuntimeSession | None, int]:
        with self.db.session() as db:
            row = session_store.get_session(db, session_id=session_id)
            if row is None:
                return None, 0
            return row, session_store.count_queued(db, session_id=session_id)

    async def _settle_session(self, info: SessionInfo) -> None:
        """Close a session that accepts no jobs once it has none left; free its worker."""
        if info.accepting_jobs or info.running or self.scheduler.queued_in_session(info.session_id):
            return
        self.scheduler.sessions.pop(info.session_id, None)
        self._session_nodes.pop(info.session_id, None)
        for kind in ("idle", "expire"):
            timer = self._timers.pop((info.session_id, kind), None)
            if timer is not None:
                timer.cancel()
        await self.recorder.run(lambda db: self._write_closed(db, info.session_id))
        end_session = getattr(self.executor, "end_session", None)
        if end_session is not None:
            await end_session(info.session_id)

    @staticmethod
    def _write_closed(db: Session, session_id: str) -> None:
        row = session_store.get_session(db, session_id=session_id)
        if row is not None and row.state != "closed":
            session_store.update_session(
                db, session_id=session_id, state="closed", closed_at=utcnow()
            )

    def _arm(self, session_id: str, kind: str, at: float) -> None:
        """Wake up at epoch time ``at`` for a session's ``idle`` or ``expire`` moment."""
        assert self._loop is not None
        old = self._timers.pop((session_id, kind), None)
        if old is not None:
            old.cancel()
        delay = max(at - time.time(), 0.0)
        callback = self._on_idle if kind == "idle" else self._on_expire
        self._timers[(session_id, kind)] = self._loop.call_later(delay, callback, session_id)

    def _on_idle(self, session_id: str) -> None:
        self._timers.pop((session_id, "idle"), None)
        info = self.scheduler.sessions.get(session_id)
        if info is None or info.state != "active":
            return
        lapses = self.scheduler.hold_expires_at(info)
        if lapses is None:
            return  # busy again: the end of its next job sets a new timer
        if lapses > time.time():  # the loop's clock fired a little early
            self._arm(session_id, "idle", lapses)
            return
        info.state = "inactive"
        self.recorder.run(lambda db: self._write_state(db, session_id, "inactive"))
        self._wakeup.set()

    @staticmethod
    def _write_state(db: Session, session_id: str, state: str) -> None:
        session_store.update_session(db, session_id=session_id, state=state)

    def _on_expire(self, session_id: str) -> None:
        self._timers.pop((session_id, "expire"), None)
        info = self.scheduler.sessions.get(session_id)
        if info is None:
            return
        info.accepting_jobs = False
        self._ready.forget(j.job_id for j in self.scheduler.drop_session_jobs(session_id))
        self._spawn(self._expire(info))

    async def _expire(self, info: SessionInfo) -> None:
        def write(db: Session) -> list[str]:
            now = utcnow()
            cancelled = session_store.cancel_queued_jobs(
                db, session_id=info.session_id, reason=MAX_TIME_REASON, now=now
            )
            session_store.update_session(
                db,
                session_id=info.session_id,
                accepting_jobs=False,
                state="closed",
                reason=MAX_TIME_REASON,
                closed_at=now,
            )
            return cancelled

        self._announce_cancelled(await self.recorder.run(write), MAX_TIME_REASON)
        await self._settle_session(info)
        self._wakeup.set()

    # -- dispatching ----------------------------------------------------------------------

    def _enqueue(self, job: QueuedJob, ready: JobSpec | None = None) -> None:
        self.scheduler.push(job)
        self.hub.track(job.job_id, job.owner_id)
        if ready is not None:
            self._ready.keep(ready)
        self._wakeup.set()

    def _refill_ready(self) -> None:
        """Queued built-in jobs the runtime holds no spec for (recovered after a restart,
        or queued while the kept specs were at their bound): read the oldest ones' specs
        ahead of their dispatch, once the kept ones run low.
        """
        if (
            self._refilling
            or not self._ready.running_low
            or len(self.scheduler) <= len(self._ready)
        ):
            return
        self._refilling = True
        self._spawn(self._refill())

    async def _refill(self) -> None:
        try:
            specs = await asyncio.to_thread(self._read_ready, self._ready.max_jobs)
            for spec in specs:
                if spec.job_id in self.scheduler:  # not dispatched or cancelled meanwhile
                    self._ready.keep(spec)
        except Exception:
            logger.exception("could not read queued jobs ahead of their dispatch")
        finally:
            self._refilling = False

    def _read_ready(self, limit: int) -> list[JobSpec]:
        with self.db.session() as db:
            rows = job_store.queued_builtin_jobs(db, limit=limit)
        return [_spec(row, builtin=row.builtin, session_id=row.session_id) for row in rows]

    async def _dispatch_forever(self) -> None:
        started = self._executor_started
        if started is None:  # the lead was lost before the dispatcher ran (several servers)
            return
        try:
            # Shielded: stopping the dispatcher must not cancel the workers' start half-way.
            await asyncio.shield(started)
        except Exception:
            logger.exception("the workers failed to start: no job can run")
            raise
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._dispatch_once()
            except Exception:  # keep dispatching: one bad job must not stop the server
                logger.exception("dispatch failed")

    async def _dispatch_once(self) -> None:
        while not self.draining:
            now = time.time()
            chosen: list[QueuedJob] = []
            for backend in self.scheduler.backends():
                free = self.catalogue.get(backend).spec.lanes - len(self._running[backend])
                if free > 0:
                    chosen.extend(self.scheduler.pick(backend, free, now=now))
            if not chosen:
                return
            # Reserve the lanes now: the claim runs in a thread while events may arrive.
            for job in chosen:
                self._running[job.backend].add(job.job_id)
                self.scheduler.usage.started(
                    job.job_id, backend=job.backend, owner_id=job.owner_id, at=now
                )
                if job.session_id is not None:
                    self._job_session[job.job_id] = job.session_id
            ready = []
            if self._start_before_claim:
                ready = [spec for job in chosen if (spec := self._ready.take(job.job_id))]
            if ready:
                self._start_ready(ready, now)
            self._refill_ready()
            if len(ready) == len(chosen):
                continue
            taken = {spec.job_id for spec in ready}
            rest = [job for job in chosen if job.job_id not in taken]
            kept = {job.job_id: spec for job in rest if (spec := self._ready.take(job.job_id))}
            specs, activated, failed = await asyncio.to_thread(self._claim, rest, kept)
            claimed = {spec.job_id for spec in specs}
            for job in rest:
                if job.job_id not in claimed:  # cancelled or failed while it waited
                    self._release(job.job_id, ended=False)
            for job_id, reason in failed.items():
                message = {"type": "state", "status": JobState.FAILED.value, "final": True}
                self.hub.publish(job_id, {**message, "reason": reason})
            self._arm_expiry(activated)
            for spec in specs:
                self.recorder.started(spec.job_id)
                self.executor.submit(self._pinned(spec), self._on_event)

    def _pinned(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the node its dedicated session is pinned to, if one is recorded."""
        node = self._session_nodes.get(spec.session_id) if spec.session_id else None
        return spec if node is None else dataclasses.replace(spec, node=node)

    def _start_ready(self, specs: list[JobSpec], now: float) -> None:
        """Start kept built-in jobs at once; the store learns they run alongside.

        The claim is the writer thread's next write, so it lands before anything the
        jobs report. A job the claim finds no longer Queued (cancelled in the meantime)
        is killed, and its end is recorded as what the store says.
        """
        at = utcnow()
        started = []
        for spec in specs:
            if spec.session_id is not None:
                info = self.scheduler.sessions.get(spec.session_id)
                if info is None or not info.dedicated:  # a batch's jobs run side by side
                    spec = dataclasses.replace(spec, session_id=None)
            started.append(self._pinned(spec))
        ids = [spec.job_id for spec in started]
        epoch = self._claim_epoch
        claim = self.recorder.run(lambda db: self._claim_started(db, ids, at, epoch))
        claim.add_done_callback(self._claimed)
        for spec in started:
            self.recorder.started(spec.job_id)
            self.executor.submit(spec, self._on_event)

    @staticmethod
    def _claim_started(
        db: Session, job_ids: list[str], at: datetime, epoch: int | None = None
    ) -> tuple[list[str], dict[str, float | None]]:
        """Mark jobs that already started Running; returns those that were not Queued any
        more, and the max_time deadline of each session that ran one.
        """
        lost: list[str] = []
        activated: dict[str, float | None] = {}
        for job_id in job_ids:
            row = job_store.claim_job(
                db,
                job_id=job_id,
                sources=[JobState.QUEUED.value],
                status=JobState.RUNNING.value,
                running_at=at,
                epoch=epoch,
            )
            if row is None:
                lost.append(job_id)
            elif row.session_id is not None:
                session = session_store.mark_job_started(db, session_id=row.session_id, at=at)
                if session is not None:
                    activated[row.session_id] = session.activated_at.timestamp() + float(
                        session.max_ttl
                    )
        return lost, activated

    def _claimed(self, future: asyncio.Future[tuple[list[str], dict[str, float | None]]]) -> None:
        if future.cancelled() or future.exception() is not None:
            logger.error("could not mark started jobs Running", exc_info=future.exception())
            return
        lost, activated = future.result()
        for job_id in lost:
            logger.info("job %s was cancelled as it started: killing it", job_id)
            self._spawn(self.executor.cancel(job_id))
        self._arm_expiry(activated)

    def _arm_expiry(self, activated: dict[str, float | None]) -> None:
        for session_id, at in activated.items():
            if at is not None and session_id in self.scheduler.sessions:
                self._arm(session_id, "expire", at)

    def _claim(
        self, chosen: list[QueuedJob], kept: dict[str, JobSpec] | None = None
    ) -> tuple[list[JobSpec], dict[str, float | None], dict[str, str]]:
        """Mark the chosen jobs Running in the store (each only if still Queued).

        Returns their specs (those of ``kept`` as they are, the others read from the
        store); for each session that ran a job, when its max_time clock started (it
        starts with the session's first running job); and the jobs that failed
        instead, with the reason.
        """
        kept = kept or {}
        epoch = self._claim_epoch
        specs: list[JobSpec] = []
        activated: dict[str, float | None] = {}
        failed: dict[str, str] = {}
        now = utcnow()
        with self.db.session() as db:
            for choice in chosen:
                job = job_store.claim_job(
                    db,
                    job_id=choice.job_id,
                    sources=sources_of(JobState.RUNNING),
                    status=JobState.RUNNING.value,
                    running_at=now,
                    epoch=epoch,
                )
                if job is None:
                    continue
                spec = kept.get(job.id)
                program = None if spec else self._builtin_programs.head(db, job.program_id)
                if spec is None and program is None:
                    failed[job.id] = f"program {job.program_id} was deleted before the job ran"
                    _fail(db, job.id, failed[job.id])
                    continue
                dedicated = False
                if job.session_id is not None:
                    session = session_store.mark_job_started(db, session_id=job.session_id, at=now)
                    if session is not None:
                        dedicated = session.mode == "dedicated"
                        activated[job.session_id] = session.activated_at.timestamp() + float(
                            session.max_ttl
                        )
                # Only a dedicated session's jobs share a worker; a batch's run apart.
                session_id = job.session_id if dedicated else None
                if spec is not None:
                    specs.append(dataclasses.replace(spec, session_id=session_id))
                    continue
                assert program is not None
                specs.append(
                    _spec(
                        job,
                        builtin=program.builtin,
                        session_id=session_id,
                        source=program.source,
                        archive=program.archive,
                        entry_point=program.entry_point,
                    )
                )
        return specs, activated, failed

    # -- what workers report --------------------------------------------------------------

    def _on_event(self, event: WorkerEvent) -> None:
        """Executor callback, on the loop."""
        if self._stopping:
            # A result that comes in time is kept; the rest is the stop's own doing, and
            # `stop` queues the job again.
            if event.kind == "result":
                self.recorder.record(event, session_id=self._job_session.get(event.job_id))
            return
        session_id = self._job_session.get(event.job_id)
        self.recorder.record(event, session_id=session_id)
        if event.kind in ("result", "error"):
            self._release(event.job_id, ended=True)
        elif event.node is not None and session_id is not None:
            self._pin_session(session_id, event.node)

    def _pin_session(self, session_id: str, node: str) -> None:
        """A job of the session runs on ``node``: if the session is dedicated and that is
        new (its first job, or its node was lost), record it, in order with the job's
        events, so that whichever server leads next places the session there too."""
        info = self.scheduler.sessions.get(session_id)
        if info is None or not info.dedicated or self._session_nodes.get(session_id) == node:
            return
        self._session_nodes[session_id] = node
        write = self.recorder.run(
            lambda db: session_store.update_session(db, session_id=session_id, node=node)
        )
        write.add_done_callback(_pin_recorded)

    def _release(self, job_id: str, *, ended: bool) -> None:
        """A job no longer holds its lane: it ended, or its claim failed."""
        now = time.time()
        for running in self._running.values():
            running.discard(job_id)
        if ended:
            self.scheduler.usage.ended(job_id, at=now)
        else:
            self.scheduler.usage.forget(job_id)
        session_id = self._job_session.pop(job_id, None)
        info = self.scheduler.sessions.get(session_id) if session_id else None
        if info is not None:
            info.running = max(info.running - 1, 0)
            if ended:
                info.last_job_ended_at = now
                self._arm(info.session_id, "idle", now + info.interactive_ttl)
            self._spawn(self._settle_session(info))
        self._wakeup.set()
        self._released.set()


def _pin_recorded(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        # This server still places the session there; only a later leader may not.
        logger.warning("could not record a session's node", exc_info=future.exception())


def _fail(db: Session, job_id: str, reason: str) -> None:
    job_store.update_job(
        db, job_id=job_id, status=JobState.FAILED.value, reason=reason, finished_at=utcnow()
    )


def _requeue(db: Session, job_ids: list[str], reason: str) -> None:
    """Queue again the jobs of ``job_ids`` that are still Running, for the next start.

    One that published interim results fails with ``reason`` instead: its user saw it
    half-way, and a second run would repeat what they saw.
    """
    running = [JobState.RUNNING.value]
    for job_id in job_ids:
        if job_store.count_interim_results(db, job_id=job_id):
            job_store.update_job(
                db,
                job_id=job_id,
                where_status=running,
                status=JobState.FAILED.value,
                reason=reason,
                finished_at=utcnow(),
            )
        else:
            job_store.update_job(
                db,
                job_id=job_id,
                where_status=running,
                status=JobState.QUEUED.value,
                running_at=None,
            )


def _spec(
    job: Any,
    *,
    builtin: str | None,
    session_id: str | None,
    source: str | None = None,
    archive: bytes | None = None,
    entry_point: str | None = None,
) -> JobSpec:
    """The spec of ``job``: a `Job`, or a row with the same fields."""
    return JobSpec(
        job_id=job.id,
        program_id=job.program_id,
        backend=job.backend,
        inputs=job.params,
        source=source,
        archive=archive,
        entry_point=entry_point,
        builtin=builtin,
        max_execution_time=float(job.max_execution_time),
        log_level=job.log_level or "WARNING",
        session_id=session_id,
        owner_id=getattr(job, "owner_id", None),
    )


def _queued(job: Job | AnyRow) -> QueuedJob:
    # Interned: a deep queue holds few distinct backends, owners and sessions, and each
    # row read from the store would otherwise bring its own copy of each string.
    return QueuedJob(
        seq=job.seq,
        job_id=job.id,
        backend=sys.intern(job.backend),
        owner_id=sys.intern(job.owner_id),
        session_id=None if job.session_id is None else sys.intern(job.session_id),
    )
