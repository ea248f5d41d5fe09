"""The executor interface: where jobs run. The scheduler decides what runs when.

An executor starts a job when the scheduler submits it and streams back
``WorkerEvent``s. Implementations: ``local`` (worker processes on this
machine), ``ray`` (the nodes of a Ray cluster) and ``inline`` (one unsandboxed worker
process, for tests).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ErrorReason", "EventKind", "Executor", "JobSpec", "WorkerEvent"]

EventKind = Literal["running", "interim", "log", "result", "error"]
ErrorReason = Literal["failed", "ran_too_long", "cancelled", "crashed", "limit_exceeded"]


@dataclass(frozen=True)
class JobSpec:
    """What to run. Exactly one of ``source`` (uploaded, sandboxed) or ``builtin`` is set.

    ``inputs`` is the runtime-encoded JSON text of ``main``'s keyword arguments;
    ``builtin`` is a module name in ``qruntime.programs`` (e.g. ``"hello_world"``);
    ``max_execution_time`` is in seconds of wall clock; ``log_level`` is a
    ``logging`` level name below which the program's records are dropped.
    ``session_id`` set: the job belongs to a dedicated session and runs in that
    session's own long-lived worker, which keeps its caches from job to job.
    ``node``: the node that session is pinned to, as the store recorded it (an earlier
    job's ``running`` event said so, perhaps to another server): an executor with
    several nodes runs the job there if that node is still alive, else anywhere; one
    node's executor ignores it.
    ``owner_id``: whose job it is. A pooled worker keeps what it cached (decoded and
    transpiled circuits, their preparations) for the next job only if that job is of
    the same owner (or the same session): it never lets one user's cache serve another.
    """

    job_id: str
    program_id: str
    backend: str
    inputs: str
    source: str | None = None
    #: A folder program (with ``source``, its entry module's): the zip archive of its
    #: files, and the entry module's path in it.
    archive: bytes | None = None
    entry_point: str | None = None
    builtin: str | None = None
    max_execution_time: float = 300.0
    log_level: str = "WARNING"
    session_id: str | None = None
    node: str | None = None
    owner_id: str | None = None


@dataclass(frozen=True)
class WorkerEvent:
    """One thing that happened to a job.

    ``data``: the encoded JSON text for ``interim`` and ``result``, a chunk of
    log text for ``log``. ``reason`` and ``message`` only for ``error``.
    ``metrics``: only on a terminal event, when the worker reported them:
    ``{"cache": {"transpile_hits", "transpile_misses", "simulator_builds",
    "pass_manager_builds", "preparation_hits", "preparation_misses"}, "worker": "session"
    | "pool" | "sandbox", "timing": {"started", "decode", "run", "encode"}}``, counted for
    this job alone (``timing``: when the worker began it, and the seconds it spent
    decoding the inputs, in ``main`` and encoding the result). None when the process died
    before it could report.
    ``node``: only on ``running``, from an executor with several nodes: the node the job
    runs on (the runtime records a dedicated session's, and passes it back in
    `JobSpec.node`).
    """

    job_id: str
    kind: EventKind
    data: str | None = None
    reason: ErrorReason | None = None
    message: str | None = None
    metrics: dict[str, Any] | None = None
    node: str | None = None


class Executor(ABC):
    """Runs submitted jobs and reports what happens to them.

    ``on_event`` is always called on the event loop's thread, in order:
    ``running`` once, then any ``interim`` and ``log`` events, then exactly one
    terminal event (``result`` or ``error``) for every submitted job, whatever
    happens to its process.

    Usage::

        executor = LocalExecutor()
        await executor.start()
        executor.submit(spec, on_event)
        ...
        await executor.stop()
    """

    @abstractmethod
    async def start(self) -> None:
        """Start the warm processes; returns when jobs can run."""

    @abstractmethod
    async def stop(self) -> None:
        """Kill everything; every unfinished job gets its terminal event first."""

    @abstractmethod
    def submit(self, spec: JobSpec, on_event: Callable[[WorkerEvent], None]) -> None:
        """Start ``spec`` (or queue it internally); never blocks. Call on the loop."""

    @abstractmethod
    async def cancel(self, job_id: str) -> bool:
        """Kill a job; it ends with error reason ``cancelled``. False if not running here."""

    #: Called (on the event loop) when a node joins, becomes ready or is lost: the leader
    #: of several servers records the nodes for the others to show. None: nobody asks.
    on_nodes_changed: Callable[[], None] | None = None

    def _nodes_changed(self) -> None:
        if self.on_nodes_changed is not None:
            try:
                self.on_nodes_changed()
            except Exception:  # a broken listener must not break the executor
                logging.getLogger(__name__).exception("on_nodes_changed raised")

    def nodes(self) -> list[dict[str, Any]]:
        """The machines jobs run on, as this executor sees them now: ``node_id``,
        ``address``, ``ready`` (it takes jobs), ``jobs`` (running there), ``sessions``
        (dedicated sessions with a worker there) and ``resources`` (what the node has, in
        Ray's names). Empty for an executor that does not say."""
        return []

    @abstractmethod
    async def end_session(self, session_id: str) -> None:
        """Stop the session's worker and free what it cached; returns when it is gone.

        Meant for a session with no running job; a job still queued or running in
        its worker ends with error reason ``cancelled``. A later job of the same
        session id starts a fresh worker.
        """
