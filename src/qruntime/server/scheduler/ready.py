"""The specs of queued built-in jobs, kept so that dispatching them reads nothing.

A built-in job's spec is complete at submission (its inputs were checked then, and a
built-in program cannot change or go away), so the runtime keeps it and starts the job
the moment a lane is free. Memory is bounded by a count and by the inputs' size; jobs
beyond the bound are read from the store ahead of their turn (`JobRuntime`).
"""

from __future__ import annotations

from collections.abc import Iterable

from qruntime.server.executor.base import JobSpec

__all__ = ["ReadySpecs"]


class ReadySpecs:
    """Job id -> spec, at most ``max_jobs`` of them and ``max_bytes`` of inputs."""

    def __init__(self, *, max_jobs: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._specs: dict[str, JobSpec] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def running_low(self) -> bool:
        """Fewer than half the bound: time to read more ahead."""
        return len(self._specs) < self.max_jobs // 2

    def keep(self, spec: JobSpec) -> bool:
        """Keep ``spec`` if there is room; True if kept."""
        if (
            spec.job_id in self._specs
            or len(self._specs) >= self.max_jobs
            or self._bytes + len(spec.inputs) > self.max_bytes
        ):
            return False
        self._specs[spec.job_id] = spec
        self._bytes += len(spec.inputs)
        return True

    def take(self, job_id: str) -> JobSpec | None:
        """The kept spec of ``job_id``, forgotten here; None if none was kept."""
        spec = self._specs.pop(job_id, None)
        if spec is not None:
            self._bytes -= len(spec.inputs)
        return spec

    def forget(self, job_ids: Iterable[str]) -> None:
        """Those jobs left the queue without running (cancelled)."""
        for job_id in job_ids:
            self.take(job_id)
