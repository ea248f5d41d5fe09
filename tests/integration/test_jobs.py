"""Jobs end to end: real server, real worker processes, real Aer."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.providers import JobStatus

from qruntime import (
    BackendNotFoundError,
    InputValueError,
    PayloadTooLargeError,
    RunnerResult,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
    RuntimeJobTimeoutError,
    RuntimeProgramNotFound,
)
from qruntime.programs.hello_world import FINAL_MESSAGE

ECHO = """
import numpy as np

def main(backend, user_messenger, **kwargs):
    n = kwargs.get("n", 3)
    for i in range(n):
        user_messenger.publish({"i": i})
    print("printed line")
    return {"n": n, "array": np.arange(n), "z": 1 + 2j}
"""

SPEC = {
    "parameters": {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}, "delay": {"type": "number"}},
        "required": ["n"],
    },
    "backend_requirements": {"min_num_qubits": 2},
}


def upload(service, source: str, name: str = "echo", cost: int = 60, spec=None) -> str:
    return service.upload_program(
        data=source,
        metadata={
            "name": name,
            "description": "test program",
            "max_execution_time": cost,
            "spec": SPEC if spec is None else spec,
        },
    )


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def test_hello_world_streams_interim_results_then_the_final_result(server) -> None:
    service = server.service()
    received: list[object] = []
    done = threading.Event()

    def callback(job_id: str, message: object) -> None:
        received.append(message)
        if not isinstance(message, dict):
            done.set()

    job = service.run(
        program_id="hello-world",
        inputs={"iterations": 3},
        options={"backend": "aer_simulator"},
        callback=callback,
    )
    result = job.result(timeout=60)
    assert done.wait(30)
    assert job.status() is JobStatus.DONE
    assert [m["iteration"] for m in received[:-1]] == [0, 1, 2]
    assert received[-1] == result
    assert [m["iteration"] for m in job.interim_results()] == [0, 1, 2]


def test_result_returns_once_the_callback_has_seen_everything(server) -> None:
    service = server.service()
    for wait in ("result", "wait_for_final_state"):
        received: list[object] = []
        job = service.run(
            program_id="hello-world",
            inputs={"iterations": 3},
            options={"backend": "aer_simulator"},
            callback=lambda _job_id, message, seen=received: seen.append(message),
        )
        if wait == "result":
            job.result(timeout=60)
        else:
            job.wait_for_final_state(timeout=60)
        # No waiting here: the stream has delivered the interim results and the final one.
        assert [m["iteration"] for m in received[:-1]] == [0, 1, 2]
        assert received[-1] == job.result()


def test_uploaded_program_result_decodes_numpy_and_complex_and_logs(server) -> None:
    service = server.service()
    program_id = upload(service, ECHO)
    job = service.run(program_id, inputs={"n": 4}, options={"backend_name": "aer_simulator"})
    result = job.result(timeout=60)
    assert result["n"] == 4
    assert np.array_equal(result["array"], np.arange(4))
    assert result["z"] == 1 + 2j
    assert "printed line" in job.logs()
    metrics = job.metrics()
    assert metrics["timestamps"]["finished"] is not None
    assert metrics["usage"]["seconds"] >= 0


def test_circuit_runner_with_mitigation_returns_quasiprobabilities(server) -> None:
    service = server.service()
    job = service.run(
        "circuit-runner",
        inputs={"circuits": bell(), "shots": 2048, "measurement_error_mitigation": True},
        options={"backend": "fake_5q"},
        result_decoder=RunnerResult,
    )
    result = job.result(timeout=120)
    quasi = result.get_quasiprobabilities().binary_probabilities()
    assert abs(sum(quasi.values()) - 1) < 1e-6
    assert quasi.get("00", 0) + quasi.get("11", 0) > 0.97


def test_failed_program_raises_with_its_traceback(server) -> None:
    service = server.service()
    program_id = upload(
        service,
        "def main(backend, user_messenger, **kw):\n    raise ValueError('boom 42')\n",
        spec={},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    with pytest.raises(RuntimeJobFailureError, match="boom 42"):
        job.result(timeout=60)
    assert job.status() is JobStatus.ERROR
    assert "ValueError" in (job.error_message() or "")


def test_program_over_max_execution_time_raises_max_timeout(server) -> None:
    service = server.service()
    program_id = upload(
        service,
        "import time\ndef main(backend, user_messenger, **kw):\n    time.sleep(60)\n",
        cost=1,
        spec={},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    with pytest.raises(RuntimeJobMaxTimeoutError):
        job.result(timeout=60)
    assert job.status() is JobStatus.ERROR


def test_cancel_a_running_job_kills_it(server) -> None:
    service = server.service()
    program_id = upload(
        service,
        "import time\ndef main(backend, user_messenger, **kw):\n"
        "    user_messenger.publish('started')\n    time.sleep(60)\n",
        spec={},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    deadline = time.monotonic() + 30
    while not job.interim_results():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.cancel()
    assert job.status() is JobStatus.CANCELLED
    with pytest.raises(RuntimeInvalidStateError):
        job.result(timeout=30)
    with pytest.raises(RuntimeInvalidStateError):
        job.cancel()


def test_built_in_jobs_cancelled_as_they_start_end_consistently(server) -> None:
    """A built-in job starts straight from memory while the store learns it runs: a
    cancel in that moment must still end it Cancelled (killed), never half-way."""
    service = server.service()
    jobs = []
    for _ in range(20):
        job = service.run(
            "hello-world", inputs={"iterations": 2}, options={"backend": "aer_simulator"}
        )
        with contextlib.suppress(RuntimeInvalidStateError):  # it finished first
            job.cancel()
        jobs.append(job)
    for job in jobs:
        job.wait_for_final_state(timeout=60)
        status = job.status()
        assert status in (JobStatus.CANCELLED, JobStatus.DONE)
        if status is JobStatus.CANCELLED:
            with pytest.raises(RuntimeInvalidStateError):
                job.result(timeout=30)
        else:
            assert job.result(timeout=30) == FINAL_MESSAGE
    assert any(job.status() is JobStatus.CANCELLED for job in jobs)
    # no lane was left taken by a killed job
    after = [
        service.run("hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"})
        for _ in range(4)
    ]
    assert all(job.result(timeout=60) == FINAL_MESSAGE for job in after)


def test_wait_for_final_state_times_out(server) -> None:
    service = server.service()
    program_id = upload(
        service,
        "import time\ndef main(backend, user_messenger, **kw):\n    time.sleep(30)\n",
        spec={},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    with pytest.raises(RuntimeJobTimeoutError):
        job.wait_for_final_state(timeout=0.5)
    job.cancel()


def test_jobs_are_listed_filtered_and_deleted(server) -> None:
    service = server.service()
    jobs = [
        service.run(
            "hello-world",
            inputs={"iterations": 0},
            options={"backend": "aer_simulator", "job_tags": ["t1"] if i % 2 else []},
        )
        for i in range(4)
    ]
    for job in jobs:
        job.wait_for_final_state(timeout=60)
    listed = service.jobs(limit=50, pending=False, program_id="hello-world")
    assert [j.job_id() for j in listed] == [j.job_id() for j in reversed(jobs)]
    assert len(service.jobs(job_tags=["t1"])) == 2
    assert service.jobs(pending=True) == []
    assert len(service.jobs(limit=2)) == 2
    ascending = service.jobs(descending=False, limit=None)
    assert ascending[0].job_id() == jobs[0].job_id()

    again = service.job(jobs[0].job_id())
    assert again.inputs == {"iterations": 0}
    assert again.status() is JobStatus.DONE
    again.update_tags(["new"])
    assert service.job(jobs[0].job_id()).tags == ["new"]

    service.delete_job(jobs[0].job_id())
    with pytest.raises(RuntimeJobNotFound):
        service.job(jobs[0].job_id())


def test_another_users_job_does_not_exist_for_them(server) -> None:
    alice = server.service(server.add_user("alice"))
    bob = server.service(server.add_user("bob"))
    job = alice.run("hello-world", inputs={"iterations": 0}, options={"backend": "aer_simulator"})
    for action in (
        lambda: bob.job(job.job_id()),
        lambda: bob.delete_job(job.job_id()),
        lambda: bob._api.request("POST", f"/jobs/{job.job_id()}/cancel"),
        lambda: bob._api.request("GET", f"/jobs/{job.job_id()}/results"),
        lambda: bob._api.request("GET", f"/jobs/{job.job_id()}/logs"),
    ):
        with pytest.raises(RuntimeJobNotFound):
            action()
    assert bob.jobs() == []
    job.wait_for_final_state(timeout=60)


@pytest.mark.parametrize(
    ("program", "inputs", "backend", "error", "match"),
    [
        ("no-such-program", {}, "aer_simulator", RuntimeProgramNotFound, "no-such-program"),
        ("hello-world", {}, "no_such_backend", BackendNotFoundError, "no_such_backend"),
        ("hello-world", {"iterations": -1}, "aer_simulator", InputValueError, "iterations"),
        ("hello-world", {"iterations": "many"}, "aer_simulator", InputValueError, "iterations"),
    ],
)
def test_bad_submissions_get_clear_errors(server, program, inputs, backend, error, match) -> None:
    with pytest.raises(error, match=match):
        server.service().run(program, inputs=inputs, options={"backend": backend})


def test_backend_requirements_are_checked(server, make_server) -> None:
    service = server.service()
    program_id = upload(service, ECHO, spec={"backend_requirements": {"min_num_qubits": 10}})
    with pytest.raises(InputValueError, match="at least 10"):
        service.run(program_id, inputs={}, options={"backend": "fake_5q"})


def test_not_allow_listed_payload_is_refused(server) -> None:
    service = server.service()
    body = (
        '{"program_id": "hello-world", "backend": "aer_simulator", "params": '
        '{"iterations": {"__type__": "settings", "__module__": "os", '
        '"__class__": "system", "__value__": {}}}}'
    )
    with pytest.raises(InputValueError, match="os"):
        service._api.request(
            "POST", "/jobs", content=body, headers={"Content-Type": "application/json"}
        )


def test_inputs_over_the_limit_get_413(make_server) -> None:
    small = make_server(max_input_bytes=10_000)
    with pytest.raises(PayloadTooLargeError):
        small.service().run(
            "circuit-runner",
            inputs={"circuits": bell(), "padding": "x" * 20_000},
            options={"backend": "aer_simulator"},
        )


def test_a_body_over_the_http_limit_is_refused_and_the_client_goes_on(make_server) -> None:
    # Over the body limit (inputs limit + 1 MB) the server answers 413 without reading
    # the body; the client's connection must survive that, or be replaced.
    small = make_server(max_input_bytes=10_000)
    service = small.service()
    with pytest.raises(PayloadTooLargeError):
        service.run(
            "circuit-runner",
            inputs={"circuits": bell(), "padding": "x" * 3_000_000},
            options={"backend": "aer_simulator"},
        )
    job = service.run(
        "circuit-runner", inputs={"circuits": bell()}, options={"backend": "aer_simulator"}
    )
    assert job.result(timeout=60) is not None
