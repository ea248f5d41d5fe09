"""Which queued jobs to start next: a pure function of the queue and the free lanes.

For now the policy is first come, first served per backend; sessions and fair
share come with the session scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["QueuedJob", "choose"]


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    seq: int
    backend: str
    owner_id: str


def choose(queued: Sequence[QueuedJob], free_lanes: Mapping[str, int]) -> list[QueuedJob]:
    """The jobs to start now, in the order to start them."""
    chosen: list[QueuedJob] = []
    left = dict(free_lanes)
    for job in sorted(queued, key=lambda j: j.seq):
        if left.get(job.backend, 0) > 0:
            chosen.append(job)
            left[job.backend] -= 1
    return chosen
