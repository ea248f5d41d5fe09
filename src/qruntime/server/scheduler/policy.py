"""Which queued jobs start next: the scheduling policy, pure and in memory.

The store is the truth; this index mirrors the queued jobs and the sessions so that a
decision costs O(log n) in the number of queued jobs (heaps), plus a pass over the
users and sessions that have jobs waiting. No I/O here: the runtime feeds it events
and applies its decisions.

The rules (DESIGN.md, "Sessions and scheduling"):

1. A **dedicated** session that is active *holds* its backend while it has a job queued
   or running, or until ``interactive_ttl`` has passed since its last job ended. Its jobs
   go before every other job there, one at a time, and one lane stays reserved for it.
   While one session holds a backend, no other dedicated session can start there.
2. Jobs of an active **batch** session go before jobs from outside any session, and may
   use every free lane.
3. Everything else waits in the normal queue, where a session that is not active yet (or
   is inactive) competes with its next job: **fair share** first (the user with the least
   recent use of the backend goes first), then first come, first served.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["QueuedJob", "Scheduler", "SessionInfo", "UsageWindow"]


@dataclass(frozen=True, order=True, slots=True)
class QueuedJob:
    seq: int
    job_id: str = field(compare=False)
    backend: str = field(compare=False)
    owner_id: str = field(compare=False)
    session_id: str | None = field(default=None, compare=False)


@dataclass
class SessionInfo:
    """What the policy needs to know of a session (times are epoch seconds)."""

    session_id: str
    owner_id: str
    backend: str
    mode: str  # "dedicated" | "batch"
    state: str  # "open" | "active" | "inactive" | "closed"
    interactive_ttl: float
    last_job_ended_at: float | None = None
    running: int = 0
    accepting_jobs: bool = True

    @property
    def dedicated(self) -> bool:
        return self.mode == "dedicated"


class UsageWindow:
    """How many seconds each user used each backend over a sliding window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._done: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._running: dict[str, tuple[str, str, float]] = {}

    def started(self, job_id: str, *, backend: str, owner_id: str, at: float) -> None:
        self._running[job_id] = (backend, owner_id, at)

    def ended(self, job_id: str, *, at: float) -> None:
        found = self._running.pop(job_id, None)
        if found is not None:
            backend, owner, start = found
            self.add(backend=backend, owner_id=owner, seconds=max(at - start, 0.0), at=at)

    def forget(self, job_id: str) -> None:
        """A job that was about to start did not (it was cancelled meanwhile)."""
        self._running.pop(job_id, None)

    def add(self, *, backend: str, owner_id: str, seconds: float, at: float) -> None:
        key = (backend, owner_id)
        self._done.setdefault(key, deque()).append((at, seconds))
        self._sums[key] = self._sums.get(key, 0.0) + seconds

    def used(self, *, backend: str, owner_id: str, now: float) -> float:
        key = (backend, owner_id)
        entries = self._done.get(key)
        if entries:
            while entries and entries[0][0] < now - self.window:
                self._sums[key] -= entries.popleft()[1]
        total = self._sums.get(key, 0.0)
        for run_backend, run_owner, start in self._running.values():
            if run_backend == backend and run_owner == owner_id:
                total += max(now - start, 0.0)
        return total

    def running_count(self, *, backend: str, owner_id: str) -> int:
        return sum(1 for b, o, _ in self._running.values() if b == backend and o == owner_id)


class Scheduler:
    """The queued jobs of every backend, and the rules to pick the next ones."""

    def __init__(self, *, usage_window: float = 3600.0) -> None:
        # Outside sessions: backend -> owner -> heap of jobs.
        self._normal: dict[str, dict[str, list[QueuedJob]]] = {}
        # In sessions: session -> heap of jobs.
        self._sessions: dict[str, list[QueuedJob]] = {}
        self.sessions: dict[str, SessionInfo] = {}
        self.usage = UsageWindow(usage_window)
        self._per_owner: dict[str, int] = {}
        self._ids: set[str] = set()

    # -- the index ------------------------------------------------------------------------

    def push(self, job: QueuedJob) -> None:
        if job.session_id is not None:
            heapq.heappush(self._sessions.setdefault(job.session_id, []), job)
        else:
            owners = self._normal.setdefault(job.backend, {})
            heapq.heappush(owners.setdefault(job.owner_id, []), job)
        self._per_owner[job.owner_id] = self._per_owner.get(job.owner_id, 0) + 1
        self._ids.add(job.job_id)

    def queued_by(self, owner_id: str) -> int:
        """How many jobs ``owner_id`` has queued (read from any thread)."""
        return self._per_owner.get(owner_id, 0)

    def _taken(self, job: QueuedJob) -> QueuedJob:
        self._ids.discard(job.job_id)
        left = self._per_owner.get(job.owner_id, 0) - 1
        if left > 0:
            self._per_owner[job.owner_id] = left
        else:
            self._per_owner.pop(job.owner_id, None)
        return job

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: object) -> bool:
        """Whether the job with this id is queued here."""
        return job_id in self._ids

    def queued_in_session(self, session_id: str) -> int:
        return len(self._sessions.get(session_id, ()))

    def remove(self, job: QueuedJob) -> bool:
        """Take ``job`` out of the queue (it was cancelled); False if it is not queued.

        Linear in the jobs of its stream (its user's on its backend, or its session's):
        cancelling is rare next to queueing and picking.
        """
        if job.session_id is not None:
            heap = self._sessions.get(job.session_id)
        else:
            heap = self._normal.get(job.backend, {}).get(job.owner_id)
        if not heap:
            return False
        index = next((i for i, queued in enumerate(heap) if queued.job_id == job.job_id), None)
        if index is None:
            return False
        last = heap.pop()
        if index < len(heap):
            heap[index] = last
            heapq.heapify(heap)
        if not heap:
            if job.session_id is not None:
                del self._sessions[job.session_id]
            else:
                del self._normal[job.backend][job.owner_id]
        self._taken(job)
        return True

    def drop_session_jobs(self, session_id: str) -> list[QueuedJob]:
        """Forget a session's queued jobs (they were cancelled); returns them."""
        jobs = self._sessions.pop(session_id, [])
        for job in jobs:
            self._taken(job)
        return jobs

    def backends(self) -> set[str]:
        """Backends that may have something to start."""
        found = {name for name, owners in self._normal.items() if any(owners.values())}
        found.update(
            self.sessions[s].backend
            for s, heap in self._sessions.items()
            if heap and s in self.sessions
        )
        return found

    # -- the rules -----------------------------------------------------------------------

    def holder(self, backend: str, *, now: float) -> SessionInfo | None:
        """The dedicated session that holds ``backend`` now, if any."""
        for info in self.sessions.values():
            if info.backend != backend or not info.dedicated or info.state != "active":
                continue
            if info.running or self._sessions.get(info.session_id):
                return info
            ended = info.last_job_ended_at
            if ended is not None and now < ended + info.interactive_ttl:
                return info
        return None

    def hold_expires_at(self, info: SessionInfo) -> float | None:
        """When an idle dedicated session's hold lapses (None if it is busy or not holding)."""
        if info.running or self._sessions.get(info.session_id) or info.last_job_ended_at is None:
            return None
        return info.last_job_ended_at + info.interactive_ttl

    def pick(self, backend: str, free_lanes: int, *, now: float) -> list[QueuedJob]:
        """Take the jobs to start on ``backend`` now, at most ``free_lanes`` of them."""
        chosen: list[QueuedJob] = []
        holder = self.holder(backend, now=now)
        if holder is not None:
            if holder.running == 0 and free_lanes > 0 and self._sessions.get(holder.session_id):
                chosen.append(self._pop_session(holder.session_id))
                holder.running += 1
                free_lanes -= 1
            elif holder.running == 0:
                free_lanes -= 1  # keep its lane for the interactive timeout
        if free_lanes <= 0:
            return chosen
        # Active batch sessions, oldest job first, on every free lane.
        batch = [
            s
            for s, heap in self._sessions.items()
            if heap
            and (info := self.sessions.get(s)) is not None
            and info.backend == backend
            and info.mode == "batch"
            and info.state == "active"
        ]
        while free_lanes > 0 and batch:
            first = min(batch, key=lambda s: self._sessions[s][0].seq)
            job = self._pop_session(first)
            self.sessions[first].running += 1
            chosen.append(job)
            free_lanes -= 1
            if not self._sessions.get(first):
                batch.remove(first)
        # The normal queue: fair share between users, then first come, first served.
        while free_lanes > 0:
            next_job = self._pop_normal(backend, now=now, blocked=holder is not None)
            if next_job is None:
                break
            chosen.append(next_job)
            free_lanes -= 1
            if next_job.session_id is not None and self.sessions[next_job.session_id].dedicated:
                # It holds the backend now: no other dedicated session starts beside it.
                holder = self.sessions[next_job.session_id]
        return chosen

    def _candidates(
        self, backend: str, *, blocked: bool
    ) -> Iterable[tuple[str, QueuedJob, str | None]]:
        """(owner, head job, session or None) for each stream of the normal queue."""
        for owner, heap in self._normal.get(backend, {}).items():
            if heap:
                yield owner, heap[0], None
        for session_id, heap in self._sessions.items():
            info = self.sessions.get(session_id)
            if not heap or info is None or info.backend != backend:
                continue
            if info.state == "active" and info.dedicated:
                continue  # an active dedicated session is served as the holder, or waits
            if info.state == "active" and info.mode == "batch":
                continue
            if info.dedicated and blocked:
                continue  # another session holds the backend
            if info.dedicated and info.running:
                continue
            yield info.owner_id, heap[0], session_id

    def _pop_normal(self, backend: str, *, now: float, blocked: bool) -> QueuedJob | None:
        best: tuple[float, int, int] | None = None
        best_stream: tuple[str, str | None] | None = None
        for owner, head, session_id in self._candidates(backend, blocked=blocked):
            key = (
                self.usage.used(backend=backend, owner_id=owner, now=now),
                self.usage.running_count(backend=backend, owner_id=owner),
                head.seq,
            )
            if best is None or key < best:
                best, best_stream = key, (owner, session_id)
        if best_stream is None:
            return None
        owner, session_id = best_stream
        if session_id is not None:
            info = self.sessions[session_id]
            info.running += 1
            info.state = "active"  # a dedicated session holds the backend from now on
            return self._pop_session(session_id)
        heap = self._normal[backend][owner]
        job = heapq.heappop(heap)
        if not heap:
            del self._normal[backend][owner]
        return self._taken(job)

    def _pop_session(self, session_id: str) -> QueuedJob:
        heap = self._sessions[session_id]
        job = heapq.heappop(heap)
        if not heap:
            del self._sessions[session_id]
        return self._taken(job)

    def session_infos(self) -> Mapping[str, SessionInfo]:
        return self.sessions
