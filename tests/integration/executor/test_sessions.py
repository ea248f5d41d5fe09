"""Dedicated sessions: one long-lived worker per session, and the caches it keeps."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from qiskit import QuantumCircuit

from qruntime.encoding import dumps, loads
from qruntime.server.executor import LocalExecutor, WorkerEvent

Harness = Any  # the conftest's harness (test modules cannot import conftest)
PID = (
    "import os\n"
    "def main(backend, user_messenger, **kwargs):\n"
    "    return [os.getpid(), os.getuid()]\n"
)


def ghz(n: int = 5) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


def runner_inputs() -> str:
    # A circuit built anew each time: the cache must match by content, not by object.
    return dumps({"circuits": ghz(), "shots": 200, "optimization_level": 3, "seed_simulator": 5})


def result(events: list[WorkerEvent]) -> Any:
    assert events[-1].kind == "result", events[-1]
    return loads(events[-1].data or "")


def counter_pid(harness: Harness, session_id: str | None) -> list[Any]:
    """The identity of the worker that ran a counter job (see Harness.worker_alive)."""
    spec = harness.spec(builtin="qrtest_programs.counter", session_id=session_id)
    return list(result(harness.run(spec))["pid"])


def test_jobs_of_one_session_share_a_worker_that_no_other_job_uses(harness: Harness) -> None:
    first = counter_pid(harness, "session-a")
    events = harness.run(harness.spec(builtin="qrtest_programs.counter", session_id="session-a"))
    assert result(events)["pid"] == first
    assert events[-1].metrics is not None
    assert events[-1].metrics["worker"] == "session"
    assert counter_pid(harness, "session-b") != first
    assert counter_pid(harness, None) != first
    harness.call(harness.executor.end_session("session-a"))
    harness.call(harness.executor.end_session("session-b"))


def test_uploaded_session_jobs_share_one_sandboxed_worker(harness: Harness) -> None:
    first = result(harness.run(harness.spec(source=PID, session_id="session-up")))
    second = result(harness.run(harness.spec(source=PID, session_id="session-up")))
    assert second[0] == first[0]
    if os.geteuid() == 0:
        assert first[1] != 0  # it dropped to an unprivileged uid, and kept it
        assert second[1] == first[1]
    harness.call(harness.executor.end_session("session-up"))


def test_end_session_stops_the_worker(harness: Harness) -> None:
    pid = counter_pid(harness, "session-end")
    assert harness.worker_alive(pid)
    harness.call(harness.executor.end_session("session-end"))
    assert not harness.worker_alive(pid)
    assert counter_pid(harness, "session-end") != pid  # a later job gets a fresh worker
    harness.call(harness.executor.end_session("session-end"))


def test_a_killed_session_job_gets_a_fresh_worker_for_the_next_job(harness: Harness) -> None:
    before = counter_pid(harness, "session-kill")
    spec = harness.spec(
        builtin="qrtest_programs.sleeper", session_id="session-kill", max_execution_time=0.5
    )
    events = harness.run(spec)
    assert (events[-1].kind, events[-1].reason) == ("error", "ran_too_long")
    assert json.loads(events[1].data or "") == before  # it ran in the session's worker
    assert not harness.worker_alive(before)
    after = counter_pid(harness, "session-kill")
    assert after != before
    harness.call(harness.executor.end_session("session-kill"))


def test_a_session_job_cancelled_while_queued_never_runs(harness: Harness) -> None:
    sleeper = harness.spec(builtin="qrtest_programs.sleeper", session_id="session-q")
    running, _running_done = harness.submit(sleeper)
    queued, queued_done = harness.submit(
        harness.spec(builtin="qrtest_programs.counter", session_id="session-q", job_id="q-2")
    )
    assert harness.call(harness.executor.cancel("q-2"))
    harness.wait(queued_done)
    assert (queued[-1].kind, queued[-1].reason) == ("error", "cancelled")
    harness.call(harness.executor.end_session("session-q"))
    assert running[-1].kind == "error"
    assert running[-1].reason == "cancelled"


def test_second_identical_circuit_runner_job_in_a_session_hits_the_caches(
    harness: Harness,
) -> None:
    spec = {"builtin": "circuit_runner", "backend": "fake_27q", "session_id": "session-c"}
    first = harness.run(harness.spec(inputs=runner_inputs(), **spec))
    second = harness.run(harness.spec(inputs=runner_inputs(), **spec))
    assert sum(result(first)["results"][0]["data"]["counts"].values()) == 200
    assert (
        result(second)["results"][0]["data"]["counts"]
        == result(first)["results"][0]["data"]["counts"]
    )
    assert first[-1].metrics is not None
    assert second[-1].metrics is not None
    cold, warm = first[-1].metrics["cache"], second[-1].metrics["cache"]
    assert cold["transpile_misses"] >= 1
    assert cold["simulator_builds"] >= 1
    assert warm["transpile_hits"] >= 1
    assert warm["transpile_misses"] == 0
    assert warm["simulator_builds"] == 0
    assert warm["pass_manager_builds"] == 0
    harness.call(harness.executor.end_session("session-c"))


def test_pool_jobs_report_metrics_but_never_share_transpiled_circuits(harness: Harness) -> None:
    spec = {"builtin": "circuit_runner", "backend": "fake_5q"}
    for _ in range(3):
        events = harness.run(harness.spec(inputs=runner_inputs(), **spec))
        assert events[-1].metrics is not None
        assert events[-1].metrics["worker"] == "pool"
        assert events[-1].metrics["cache"]["transpile_hits"] == 0


def test_a_pooled_worker_keeps_its_caches_for_the_same_owner_only(harness: Harness) -> None:
    """A user's next job finds the circuits a pooled worker transpiled for their last one;
    another user's job between them makes the worker forget them (no cache hit, and no
    timing, tells one user what another ran)."""
    spec = {"builtin": "circuit_runner", "backend": "fake_5q"}

    def hits(owner: str) -> int:
        events = harness.run(harness.spec(inputs=runner_inputs(), owner_id=owner, **spec))
        assert events[-1].metrics is not None
        assert events[-1].metrics["worker"] == "pool"
        return int(events[-1].metrics["cache"]["transpile_hits"])

    assert hits("alice") == 0
    assert hits("alice") >= 1  # her circuit, transpiled for her last job
    assert hits("bob") == 0  # the same circuit: transpiled again, not hers
    assert hits("alice") == 0  # bob's job came between: the worker forgot


def test_uploaded_job_outside_a_session_reports_a_sandbox_worker(harness: Harness) -> None:
    events = harness.run(harness.spec(source=PID))
    assert events[-1].metrics is not None
    assert events[-1].metrics["worker"] == "sandbox"
    assert set(events[-1].metrics["cache"]) == {
        "transpile_hits",
        "transpile_misses",
        "simulator_builds",
        "pass_manager_builds",
        "preparation_hits",
        "preparation_misses",
    }


def test_with_caches_off_the_second_identical_job_misses_again(
    make_harness: Callable[..., Harness],
) -> None:
    cold = make_harness(lambda: LocalExecutor(pool_size=1, caches=False))
    spec = {"builtin": "circuit_runner", "backend": "fake_27q", "session_id": "session-off"}
    cold.run(cold.spec(inputs=runner_inputs(), **spec))
    second = cold.run(cold.spec(inputs=runner_inputs(), **spec))
    assert second[-1].metrics is not None
    counts = second[-1].metrics["cache"]
    assert counts["transpile_hits"] == 0
    assert counts["transpile_misses"] >= 1
    assert counts["simulator_builds"] >= 1
    assert counts["pass_manager_builds"] >= 1


def test_each_job_of_a_sandboxed_session_worker_gets_its_own_cpu_budget(harness: Harness) -> None:
    source = (
        "import resource\n"
        "def main(backend, user_messenger):\n"
        "    return resource.getrlimit(resource.RLIMIT_CPU)\n"
    )
    spec = {"source": source, "session_id": "session-cpu", "max_execution_time": 2}
    soft, hard = result(harness.run(harness.spec(**spec)))
    budget = 2 * (os.cpu_count() or 1) + 10
    assert budget <= soft <= budget + 5  # what it used so far, plus this job's budget
    assert hard > 24 * 3600  # the process's own limit is only a backstop
    harness.call(harness.executor.end_session("session-cpu"))


def test_another_executors_jobs_never_get_the_uid_of_a_live_session_worker(
    harness: Harness, make_harness: Callable[..., Harness]
) -> None:
    first = result(harness.run(harness.spec(source=PID, session_id="session-uid")))
    other = make_harness(lambda: LocalExecutor(pool_size=1))
    theirs = result(other.run(other.spec(source=PID)))
    if os.geteuid() == 0:
        assert theirs[1] != first[1]
    # Its job's end killed every process of its uid: not ours.
    again = result(harness.run(harness.spec(source=PID, session_id="session-uid")))
    assert again == first
    harness.call(harness.executor.end_session("session-uid"))
