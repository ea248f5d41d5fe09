"""The kept specs of queued built-in jobs: bounded by count and by size."""

from __future__ import annotations

from qruntime.server.executor.base import JobSpec
from qruntime.server.scheduler.ready import ReadySpecs


def spec(job_id: str, inputs: str = "{}") -> JobSpec:
    return JobSpec(job_id=job_id, program_id="hello-world", backend="b", inputs=inputs)


def test_specs_are_kept_up_to_the_count_and_taken_once() -> None:
    ready = ReadySpecs(max_jobs=4)
    assert all(ready.keep(spec(f"j{i}")) for i in range(4))
    assert not ready.keep(spec("j4"))  # full
    assert not ready.running_low
    taken = ready.take("j0")
    assert taken is not None
    assert taken.job_id == "j0"
    assert ready.take("j0") is None
    ready.forget(["j1", "j2", "unknown"])
    assert len(ready) == 1
    assert ready.running_low
    assert ready.keep(spec("j4"))


def test_specs_are_kept_up_to_the_size_of_their_inputs() -> None:
    ready = ReadySpecs(max_jobs=100, max_bytes=10)
    assert ready.keep(spec("a", "x" * 6))
    assert not ready.keep(spec("b", "x" * 6))  # 12 bytes in all: over
    assert ready.keep(spec("c", "x" * 4))
    ready.take("a")
    assert ready.keep(spec("b", "x" * 6))
    assert not ready.keep(spec("c", "{}"))  # already kept
