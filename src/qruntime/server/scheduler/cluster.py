"""The job runtime of one server among several on one PostgreSQL.

Every server accepts jobs and serves reads, long polls and streams; exactly one, the
leader, runs the scheduler and the executor, as a lone server does: the executor starts
when a server takes the lead and stops when it loses it, so a standby keeps no workers
(and, on Ray, no host actors); recovered jobs wait for it to start. The leader holds
the leader's advisory lock (`LeaderLock`); the others wait on that lock and take over
when the leader's connection goes: the new leader bumps the epoch, recovers as after a
restart (jobs that ran under the old leader are queued again, or fail with the reason
``server restarted`` if they had published interim results), reads the queue and the
sessions, and dispatches. Every claim and every batch of the leader's writes checks
the epoch, so a deposed leader can neither start a job nor record anything.

Servers hear of one another through notices (`NoticeListener`): the leader of jobs
queued, sessions changed and kills asked for elsewhere; every server of the state
changes and interim results of jobs someone waits on here, which it reads from the
store and publishes to its own hub. A server ignores its own notices: what it did
itself it has told its hub already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.schemas.jobs import JobState
from qruntime.server.executor.base import Executor, JobSpec, WorkerEvent
from qruntime.server.scheduler.notices import LeaderLock, Notice, NoticeListener, parse_notice
from qruntime.server.scheduler.policy import QueuedJob, Scheduler
from qruntime.server.scheduler.ready import ReadySpecs
from qruntime.server.scheduler.recorder import Recorder
from qruntime.server.scheduler.runtime import JobRuntime, _queued
from qruntime.server.store import cluster as cluster_store
from qruntime.server.store import jobs as job_store
from qruntime.server.store import sessions as session_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import Job, RuntimeSession

__all__ = ["ClusterRuntime"]

T = TypeVar("T")
logger = logging.getLogger("qruntime.cluster")

_FINAL = {state.value for state in JobState if state.is_final}
#: The claim epoch while this server does not lead: no epoch is ever -1, so every claim
#: and every fenced write fails (None would mean "not fenced", as for a lone server).
_NOT_LEADING = -1
#: How many ended jobs a server remembers, for a waiter that subscribes late.
_ENDED_KEPT = 4096


class ClusterRuntime(JobRuntime):
    """A `JobRuntime` that leads only while it holds the leader's lock."""

    # A claim can fail for want of the lead: no job starts before the store says it may.
    _start_before_claim = False

    def __init__(
        self,
        *,
        db: Database,
        catalogue: Catalogue,
        executor: Executor,
        server_id: str,
        fair_share_window: float = 3600.0,
        listen: str = "",
    ) -> None:
        super().__init__(
            db=db,
            catalogue=catalogue,
            executor=executor,
            fair_share_window=fair_share_window,
            server_id=server_id,
            listen=listen,
        )
        #: Whether this server leads now (runs the scheduler and the jobs).
        self.leading = False
        self._claim_epoch = _NOT_LEADING
        self.recorder = Recorder(db=db, hub=self.hub, fence=self._fence)
        self._window = fair_share_window
        self._inbox: list[Notice] = []
        self._reading = False
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._abandoned: set[str] = set()
        #: Stopping the executor after the lead was lost; a new start waits for it.
        self._executor_stopped: asyncio.Task[None] | None = None
        # The leader records its executor's nodes for the other servers' cluster view: one
        # write at a time, and another after it if they changed meanwhile.
        executor.on_nodes_changed = self._nodes_changed
        self._nodes_writing = False
        self._nodes_dirty = False
        # While a new leader reads the queue: the ids it enqueued, so that the notices of
        # jobs it read already (they arrive until its marker does) add nothing twice.
        self._seen: set[str] | None = None
        conninfo = cluster_store.conninfo(db.url)
        self._stop_channel = f"qruntime_stop_{server_id}"
        self._listener = NoticeListener(
            conninfo,
            stop_channel=self._stop_channel,
            on_notice=self._on_notice,
            on_connected=self._on_connected,
            heard=self._heard,
            application_name=cluster_store.listener_name(server_id, listen),
        )
        self._lock = LeaderLock(
            conninfo,
            stop_channel=self._stop_channel,
            server_id=server_id,
            on_elected=self._on_elected,
            on_lost=self._on_lost,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for notices, then stand for the lead; returns at once."""
        self._loop = asyncio.get_running_loop()
        self._listener.start(self._loop)  # the lock is sought once it listens

    def start_executor(self) -> None:
        """Start the executor if this server leads (and once a stop under way is over);
        a standby starts none."""
        if self.leading and self._executor_started is None:
            stopped = self._executor_stopped
            self._executor_started = asyncio.create_task(self._start_executor(stopped))

    async def _start_executor(self, stopped: asyncio.Task[None] | None) -> None:
        if stopped is not None:
            with contextlib.suppress(Exception):
                await stopped
        await self.executor.start()

    async def _stop_executor(self, started: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await started  # stopping it half-way through its start would leak processes
        await self.executor.stop()

    async def stop(self) -> None:
        """As `JobRuntime.stop`; the lock is let go only once the running jobs are queued
        again, so that the next leader finds them so."""
        if self._executor_stopped is not None:
            with contextlib.suppress(Exception):
                await self._executor_stopped
        await self._halt()
        self._stopping = True
        await asyncio.to_thread(self._stop_threads)
        self.recorder.close()

    def _stop_threads(self) -> None:
        self._lock.stop()
        self._listener.stop()
        try:
            with self.db.session() as db:
                db.connection().exec_driver_sql(f"NOTIFY {self._stop_channel}")
        except Exception:  # the database is gone: so are the threads' connections
            logger.warning("could not tell the notice threads to stop", exc_info=True)
        self._lock.join()
        self._listener.join()

    def _fence(self, db: Session) -> bool:
        return cluster_store.epoch_is_current(db, epoch=self._claim_epoch)

    def _on_connected(self, first: bool) -> None:
        if first:
            assert self._loop is not None
            self._lock.start(self._loop)
        elif self.leading and self._task is not None:  # notices may have been missed
            logger.warning("listening again after a lost connection: reading the queue")
            self._spawn(self._catch_up())

    def _on_elected(self, epoch: int) -> None:
        if self._stopping:
            return
        logger.warning("server %s leads now (epoch %d)", self.server_id, epoch)
        self._claim_epoch = epoch
        self.leading = True
        self.start_executor()  # before the dispatcher, which waits for it
        self._spawn(self._catch_up())

    async def _catch_up(self) -> None:
        """Read the queue and the sessions (recovering as after a restart on taking the
        lead), then send the marker that ends the dedupe window."""
        epoch = self._claim_epoch
        self._seen = set()
        if self._task is None:
            await self._lead()
        else:
            await self._reread()
        if self._claim_epoch != epoch and self._task is not None:  # lost the lead meanwhile
            self._task.cancel()
            self._task = None
            return
        await asyncio.to_thread(self._send, f"m {self.server_id} {epoch}")

    async def _reread(self) -> None:
        queued, sessions = await asyncio.to_thread(self._read_queue)
        for row in sessions:
            self._adopt_session(row)
        for job in queued:
            self._enqueue(job)

    def _read_queue(self) -> tuple[list[QueuedJob], list[RuntimeSession]]:
        with self.db.session() as db:
            queued = [_queued(row) for row in job_store.queued_jobs_all(db)]
            return queued, session_store.live_sessions(db)

    def _on_lost(self) -> None:
        """The lock's connection is gone while this server lived: stop leading.

        Its executor is stopped, which kills its running jobs and its sessions' workers;
        what they report is dropped (the new leader queues them again). It stands for the
        lead again.
        """
        if not self.leading or self._stopping:
            return
        logger.error(
            "server %s lost the lead (its connection to PostgreSQL broke): its running "
            "jobs are stopped; the next leader runs them again",
            self.server_id,
        )
        self.leading = False
        self._claim_epoch = _NOT_LEADING
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for job_id in [job_id for jobs in self._running.values() for job_id in jobs]:
            self._abandoned.add(job_id)
            self.recorder.forget(job_id)
        started, self._executor_started = self._executor_started, None
        if started is not None:
            self._executor_stopped = asyncio.get_running_loop().create_task(
                self._stop_executor(started)
            )
        self._running.clear()
        self._job_session.clear()
        self._session_nodes.clear()
        self.scheduler = Scheduler(usage_window=self._window)
        self._ready = ReadySpecs()
        self._seen = None

    def _nodes_changed(self) -> None:
        """(Loop.) A node joined, got ready or was lost: record the nodes, if leading."""
        if not self.leading:
            return
        self._nodes_dirty = True
        if not self._nodes_writing:
            self._nodes_writing = True
            self._spawn(self._record_nodes())

    async def _record_nodes(self) -> None:
        try:
            while self._nodes_dirty and self.leading:
                self._nodes_dirty = False
                # What a node is; its running jobs change too often to be written.
                nodes = [
                    {key: node[key] for key in ("node_id", "address", "ready", "resources")}
                    for node in self.executor.nodes()
                ]
                await asyncio.to_thread(self._write_nodes, self._claim_epoch, nodes)
        except Exception:  # the next change writes them again
            logger.warning("could not record the executor's nodes", exc_info=True)
        finally:
            self._nodes_writing = False

    def _write_nodes(self, epoch: int | None, nodes: list[dict[str, Any]]) -> None:
        with self.db.session() as db:
            cluster_store.record_nodes(db, epoch=epoch, nodes=nodes)

    # -- what routes call --------------------------------------------------------------------

    def queued_by(self, owner_id: str) -> int | None:
        # A standby's count would be a transaction of its own per submission, on the loop:
        # the submission's insert counts them instead, in the writer's transaction.
        return super().queued_by(owner_id) if self.leading else None

    def refresh_session(self, session_id: str) -> None:
        if self.leading:  # else the leader hears of it from the store's notice
            super().refresh_session(session_id)

    def cancel_running(self, job_id: str, *, timeout: float = 30.0) -> bool:
        if self.leading:
            return super().cancel_running(job_id, timeout=timeout)
        self._send(f"k {self.server_id} {job_id}")  # the leader kills it
        return False

    def after_recorded(self, write: Callable[[Session], T], *, timeout: float = 30.0) -> T:
        if self.leading:
            return super().after_recorded(write, timeout=timeout)
        with self.db.session() as db:
            return write(db)

    def _send(self, payload: str) -> None:
        with self.db.session() as db:
            cluster_store.send_notice(db, payload)

    # -- the queue -------------------------------------------------------------------------

    def _enqueue(self, job: QueuedJob, ready: JobSpec | None = None) -> None:
        if not self.leading:  # the leader hears of it from the store's notice
            self._track(job.job_id, job.owner_id)
            return
        if job.job_id in self.scheduler or any(job.job_id in r for r in self._running.values()):
            return
        if self._seen is not None:
            if job.job_id in self._seen:
                return
            self._seen.add(job.job_id)
        super()._enqueue(job, ready)

    def _refill_ready(self) -> None:
        """Read no specs ahead: here a job starts only once claimed, and the claim returns
        what the job needs (`job_store.claim_job`), so reading them ahead saves nothing but
        a read of the program by its key; and the read ahead (the oldest queued jobs, by
        status) was run for nearly every job another server queued, reading the index
        entries of every job queued since the last vacuum (~500 a job, measured)."""

    def _track(self, job_id: str, owner_id: str) -> None:
        if job_id not in self._ended:  # its end was heard before its submission returned
            self.hub.track(job_id, owner_id)

    def _on_event(self, event: WorkerEvent) -> None:
        if event.job_id in self._abandoned:
            if event.kind in ("result", "error"):
                self._abandoned.discard(event.job_id)
            return
        super()._on_event(event)

    # -- notices -----------------------------------------------------------------------------

    def _heard(self, payload: str) -> Notice | None:
        """The notice in ``payload`` if it may concern this server, else None (on the
        listener's thread: the loop is not woken for the others; each payload is parsed
        here, once). Its own notices it has acted on already, and only the leader acts on
        jobs queued, sessions changed and kills asked for. An interim result or a job's
        new state short of its end concerns only a server where someone listens to that
        job: whoever subscribes later reads the store after subscribing, and finds it
        there (a job's end always concerns it: `_ended` keeps it)."""
        kind, _, rest = payload.partition(" ")
        own = rest.startswith(self.server_id + " ")
        if (own and kind != "m") or (not self.leading and kind in ("q", "S", "k")):
            return None
        notice = parse_notice(payload)
        if notice is not None and (kind == "i" or (kind == "j" and notice.fields[1] not in _FINAL)):
            return notice if self.hub.listens(notice.key) else None  # thread-safe reads
        return notice

    def _on_notice(self, notice: Notice) -> None:
        self._inbox.append(notice)
        if not self._reading:
            self._reading = True
            self._spawn(self._read_inbox())

    async def _read_inbox(self) -> None:
        try:
            while self._inbox:
                batch, self._inbox = self._inbox, []
                try:
                    await self._handle(batch)
                except Exception:
                    logger.exception("could not handle %d notices", len(batch))
        finally:
            self._reading = False

    async def _handle(self, notices: list[Notice]) -> None:
        heard: list[Notice] = []
        for notice in notices:
            if notice.server == self.server_id:
                if notice.kind == "m" and notice.key == str(self._claim_epoch):
                    self._seen = None  # every notice sent before the queue was read is in
                continue
            if notice.kind == "q" and self.leading:
                seq, owner, session, backend = notice.fields
                self._enqueue(_queued_job(notice.key, seq, owner, session, backend))
            elif notice.kind == "j":
                self._job_changed(notice)
                final = notice.fields[1] in _FINAL
                if self.hub.listens(notice.key) or (final and self.hub.pending(notice.key)):
                    heard.append(notice)
            elif notice.kind == "i" and self.hub.listens(notice.key):
                heard.append(notice)
            elif notice.kind == "S" and self.leading:
                self._spawn(self._refresh_session(notice.key))
            elif notice.kind == "k" and self.leading:
                self._spawn(self.executor.cancel(notice.key))
        if not heard:
            return
        reasons: dict[str, str | None] = {}
        interims: dict[tuple[str, int], str] = {}
        if any(_needs_read(notice) for notice in heard):
            reasons, interims = await asyncio.to_thread(self._read_heard, heard)
        for notice in heard:
            self._publish_heard(notice, reasons, interims)

    def _job_changed(self, notice: Notice) -> None:
        old, new, seq, owner, session, backend = notice.fields
        if new not in _FINAL:
            return
        self._ended[notice.key] = None
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        if self.leading and old == JobState.QUEUED.value:  # cancelled elsewhere
            job = _queued_job(notice.key, seq, owner, session, backend)
            if self.scheduler.remove(job):
                self._ready.take(job.job_id)

    def _read_heard(
        self, heard: list[Notice]
    ) -> tuple[dict[str, str | None], dict[tuple[str, int], str]]:
        """The reasons of the ended jobs and the interim results that ``heard`` names."""
        finals = {n.key for n in heard if n.kind == "j" and _needs_read(n)}
        firsts: dict[str, int] = {}
        for notice in heard:
            if notice.kind == "i":
                seq = int(notice.fields[0])
                firsts[notice.key] = min(seq, firsts.get(notice.key, seq))
        reasons: dict[str, str | None] = {}
        interims: dict[tuple[str, int], str] = {}
        with self.db.session() as db:
            if finals:
                rows = db.execute(select(Job.id, Job.reason).where(Job.id.in_(finals)))
                reasons = {row[0]: row[1] for row in rows}
            for job_id, first in firsts.items():
                for seq, data in job_store.interim_results(db, job_id=job_id, after=first - 1):
                    interims[(job_id, seq)] = data
        return reasons, interims

    def _publish_heard(
        self,
        notice: Notice,
        reasons: dict[str, str | None],
        interims: dict[tuple[str, int], str],
    ) -> None:
        if notice.kind == "i":
            seq = int(notice.fields[0])
            data = interims.get((notice.key, seq))
            if data is not None:  # None: deleted meanwhile (a private job's result read)
                self.hub.publish(notice.key, {"type": "interim", "seq": seq, "data": data})
            return
        status = notice.fields[1]
        message: dict[str, Any] = {"type": "state", "status": status, "final": status in _FINAL}
        if message["final"]:
            message["reason"] = reasons.get(notice.key)
            if notice.result is not None:  # a long poll answers with it, as on the leader
                message["result"] = notice.result
        self.hub.publish(notice.key, message)


def _needs_read(notice: Notice) -> bool:
    """Whether publishing ``notice`` needs the store: an interim result's data, or the
    reason a job ended other than Completed (a completed job has none)."""
    if notice.kind == "i":
        return True
    status = notice.fields[1]
    return status in _FINAL and status != JobState.COMPLETED.value


def _queued_job(job_id: str, seq: str, owner: str, session: str, backend: str) -> QueuedJob:
    return QueuedJob(
        seq=int(seq),
        job_id=job_id,
        backend=sys.intern(backend),
        owner_id=sys.intern(owner),
        session_id=None if session == "-" else sys.intern(session),
    )
