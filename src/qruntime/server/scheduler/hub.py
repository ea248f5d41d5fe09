"""In-process publish/subscribe of job messages, for streams and waiters.

Runs on the event loop. Messages are dicts: ``{"type": "interim", "seq", "data"}``,
``{"type": "state", "status", "reason", "final"}``. The store is the truth; the
hub only wakes whoever is listening, so a subscriber that joins late reads the
store first and then the hub.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

__all__ = ["JobHub"]


class JobHub:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

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

    def publish(self, job_id: str, message: dict[str, Any]) -> None:
        for queue in self._subscribers.get(job_id, ()):
            queue.put_nowait(message)
