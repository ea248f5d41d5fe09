"""The node host: one long-lived Ray actor per node that runs qruntime's own workers there.

The actor never runs a job itself, and never forks one: it hosts a `LocalExecutor`,
which launches qruntime's zygote as a fresh process (``exec``, a minimal environment,
no inherited descriptors) and drives it exactly as on one machine: sandboxed children
for uploaded programs, pooled workers for built-ins, a worker per dedicated session.
A child forked from a Ray worker process would still map the node's object store
(read-write, every job's objects), inherit its threads and its huge address space;
a freshly executed zygote has none of that.

`RayExecutor` (on the server) reads one ``events`` stream per host for as long as the
host lives, and hands it jobs with ``submit`` calls whose replies it never waits for.
Every job's `WorkerEvent`s but ``running`` (the server reports that when it hands the
job over) travel on that stream in the order they happened, those ready together in
one item: a short job costs one call there and one stream item back, where a streaming
call per job cost a generator's setup on both sides and an item per event.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from qruntime.server.executor.base import JobSpec, WorkerEvent
from qruntime.server.executor.local import LocalExecutor

__all__ = ["NodeHost"]

_TERMINAL = ("result", "error")


class NodeHost:
    """What the Ray actor on one node does; `RayExecutor` makes it an actor with ``ray.remote``.

    ``options`` are `LocalExecutor`'s keyword arguments (plain data: the catalogue path,
    pool size, limits), the same on every node.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        options = dict(options)
        catalogue = options.pop("catalogue_path", None)
        self.executor = LocalExecutor(
            catalogue_path=Path(catalogue) if catalogue else None, **options
        )
        self.started = False
        self._outbox: list[WorkerEvent] = []
        self._wake = asyncio.Event()
        self._closed = False

    async def start(self) -> dict[str, Any]:
        """Start the zygote and the pool; returns when jobs can run, with where this runs."""
        if not self.started:
            await self.executor.start()
            self.started = True
        return {"host": socket.gethostname(), "pid": os.getpid(), **self.executor.zygote_info}

    async def events(self) -> AsyncIterator[list[WorkerEvent]]:
        """Every job's events, in order, as lists of those ready together; ends at ``stop``.

        Meant to be read by one caller, for as long as this host lives.
        """
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            if batch:
                yield batch

    async def submit(self, spec: JobSpec, submitted: float) -> None:
        """Start one job here; its events follow on ``events``, the terminal one last.

        ``submitted``: when the server handed it to Ray (epoch seconds), so that the
        terminal event's metrics tell how long the call took to arrive. Never raises:
        nobody waits for the reply, so a job that cannot start ends with an error event.
        """
        arrived = time.time()

        def emit(event: WorkerEvent) -> None:
            if event.kind == "running":  # the server said so when it sent the job
                return
            if event.kind in _TERMINAL:
                metrics = dict(event.metrics or {})
                # ``sent``: when it left here, for the server to time the way back.
                metrics["ray"] = {"actor_call": max(0.0, arrived - submitted), "sent": time.time()}
                event = replace(event, metrics=metrics)
            self._outbox.append(event)
            self._wake.set()

        try:
            self.executor.submit(spec, emit)
        except Exception as exc:  # e.g. the same job twice: say so on the stream
            message = f"the node host could not start the job: {type(exc).__name__}: {exc}"
            emit(WorkerEvent(spec.job_id, "error", reason="crashed", message=message))

    async def cancel(self, job_id: str) -> bool:
        """Kill a job running here; False if it does not run here."""
        return await self.executor.cancel(job_id)

    async def end_session(self, session_id: str) -> None:
        """Stop a dedicated session's worker here."""
        await self.executor.end_session(session_id)

    async def stop(self) -> None:
        """Stop every process this host started (the zygote kills its children first)."""
        await self.executor.stop()
        self.started = False
        self._closed = True  # the stream ends once it has sent what the stop emitted
        self._wake.set()
