"""The node host: one long-lived Ray actor per node that runs qruntime's own workers there.

The actor never runs a job itself, and never forks one: it hosts a `LocalExecutor`,
which launches qruntime's zygote as a fresh process (``exec``, a minimal environment,
no inherited descriptors) and drives it exactly as on one machine: sandboxed children
for uploaded programs, pooled workers for built-ins, a worker per dedicated session.
A child forked from a Ray worker process would still map the node's object store
(read-write, every job's objects), inherit its threads and its huge address space;
a freshly executed zygote has none of that.

`RayExecutor` (on the server) calls ``run`` as a Ray streaming generator, one per job:
the job's `WorkerEvent`s come back in order, the terminal one last.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
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

    async def start(self) -> dict[str, Any]:
        """Start the zygote and the pool; returns when jobs can run, with where this runs."""
        if not self.started:
            await self.executor.start()
            self.started = True
        return {"host": socket.gethostname(), "pid": os.getpid(), **self.executor.zygote_info}

    async def run(self, spec: JobSpec, submitted: float) -> AsyncIterator[WorkerEvent]:
        """Run one job here; yields its events, the terminal one last.

        ``submitted``: when the server handed it to Ray (epoch seconds), so that the
        terminal event's metrics tell how long the call took to arrive.
        """
        arrived = time.time()
        events: asyncio.Queue[WorkerEvent] = asyncio.Queue()
        self.executor.submit(spec, events.put_nowait)
        while True:
            event = await events.get()
            if event.kind in _TERMINAL:
                metrics = dict(event.metrics or {})
                metrics["ray"] = {"actor_call": max(0.0, arrived - submitted)}
                event = WorkerEvent(
                    event.job_id,
                    event.kind,
                    data=event.data,
                    reason=event.reason,
                    message=event.message,
                    metrics=metrics,
                )
                yield event
                return
            yield event

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
