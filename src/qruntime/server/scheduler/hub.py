"""In-process publish/subscribe of job messages, for streams and waiters.

Runs on the event loop. Messages are dicts: ``{"type": "interim", "seq", "data"}``,
``{"type": "state", "status", "reason", "final"}``. The store is the truth; the
hub only wakes whoever is listening, so a subscriber that joins late reads the
store first and then the hub.

The hub also knows which jobs are pending (queued or running in this process) and
whose they are, until their final message: a waiter that subscribes to a job the
hub knows as pending can skip that first read of the store, as the end of the job
is bound to reach it.

Watchers (`watch`) hear of every job: each message as ``(job_id, owner_id, message)``,
and a ``Queued`` state message when a job is tracked. The dashboard's live lists use
them; the owner is known while the job is pending (None otherwise).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

__all__ = ["JobHub"]


class JobHub:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._pending: dict[str, str] = {}  # job id -> owner id
        self._watchers: set[asyncio.Queue[tuple[str, str | None, dict[str, Any]]]] = set()

    def track(self, job_id: str, owner_id: str) -> None:
        """``job_id`` (of ``owner_id``) is queued: pending until its final message."""
        self._pending[job_id] = owner_id
        if self._watchers:
            queued = {"type": "state", "status": "Queued", "final": False}
            for watcher in self._watchers:
                watcher.put_nowait((job_id, owner_id, queued))

    def listens(self, job_id: str) -> bool:
        """Whether anyone here would hear a message of ``job_id`` (worth reading it)."""
        return bool(self._watchers) or job_id in self._subscribers

    def pending(self, job_id: str) -> bool:
        """Whether ``job_id`` is tracked here as pending."""
        return job_id in self._pending

    def pending_for(self, job_id: str, owner_id: str) -> bool:
        """Whether ``job_id`` is ``owner_id``'s and has not ended (False when unknown)."""
        return self._pending.get(job_id) == owner_id

    def subscribe(self, job_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[job_id].add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(job_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[job_id]

    def watch(self) -> asyncio.Queue[tuple[str, str | None, dict[str, Any]]]:
        """A queue of every job's messages, as ``(job_id, owner_id, message)``."""
        queue: asyncio.Queue[tuple[str, str | None, dict[str, Any]]] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[tuple[str, str | None, dict[str, Any]]]) -> None:
        self._watchers.discard(queue)

    def publish(self, job_id: str, message: dict[str, Any]) -> None:
        if self._watchers:
            owner_id = self._pending.get(job_id)
            for watcher in self._watchers:
                watcher.put_nowait((job_id, owner_id, message))
        if message.get("final"):
            self._pending.pop(job_id, None)
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(message)
