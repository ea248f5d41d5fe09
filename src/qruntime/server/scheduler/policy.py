"""Which queued jobs to start next.

`QueueIndex` keeps the queued jobs of each backend in memory, ordered, so that
picking the next job costs O(log n) in the number of queued jobs; the store stays
the truth (the index is rebuilt from it at start). For now the order is first come,
first served per backend; sessions and fair share come with the session scheduler.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["QueueIndex", "QueuedJob"]


@dataclass(frozen=True, order=True)
class QueuedJob:
    seq: int
    job_id: str = field(compare=False)
    backend: str = field(compare=False)
    owner_id: str = field(compare=False)


class QueueIndex:
    """The queued jobs per backend, in submission order."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[QueuedJob]] = {}

    def push(self, job: QueuedJob) -> None:
        heapq.heappush(self._heaps.setdefault(job.backend, []), job)

    def __len__(self) -> int:
        return sum(len(heap) for heap in self._heaps.values())

    def backends(self) -> list[str]:
        """The backends that have queued jobs."""
        return [name for name, heap in self._heaps.items() if heap]

    def pop_next(self, free_lanes: Mapping[str, int]) -> list[QueuedJob]:
        """Take the jobs to start now: the oldest of each backend, up to its free lanes.

        A job taken here may since have been cancelled; the caller's claim in the store
        (only if still Queued) drops it.
        """
        chosen: list[QueuedJob] = []
        for backend, lanes in free_lanes.items():
            heap = self._heaps.get(backend)
            while heap and lanes > 0:
                chosen.append(heapq.heappop(heap))
                lanes -= 1
        return chosen
