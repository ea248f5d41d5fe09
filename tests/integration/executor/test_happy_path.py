"""Jobs that behave: uploaded programs in the sandbox, built-ins in the pool."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qruntime.encoding import loads
from qruntime.server.executor import InlineExecutor

Harness = Any  # the conftest's harness (test modules cannot import conftest)
TRIVIAL = "def main(backend, user_messenger, **kwargs):\n    return kwargs.get('value', 'ok')\n"

BELL = """
import logging
from qiskit import QuantumCircuit, transpile

def main(backend, user_messenger, shots=100, iterations=3):
    for i in range(iterations):
        user_messenger.publish({"iteration": i})
    print("printed line")
    log = logging.getLogger("program")
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return backend.run(transpile(qc, backend), shots=shots).result().get_counts()
"""


def test_zygote_is_single_threaded_so_forks_are_safe(harness: Harness) -> None:
    assert harness.executor.zygote_info["threads"] == 1  # type: ignore[attr-defined]


def test_uploaded_program_transpiles_and_runs_on_aer_returning_counts(harness: Harness) -> None:
    events = harness.run(harness.spec(source=BELL, inputs=json.dumps({"shots": 200})))
    assert events[-1].kind == "result", events[-1]
    counts = loads(events[-1].data or "")
    assert set(counts) == {"00", "11"}
    assert sum(counts.values()) == 200


def test_interim_results_arrive_in_publish_order_before_result(harness: Harness) -> None:
    events = harness.run(harness.spec(source=BELL, inputs=json.dumps({"iterations": 5})))
    interim = [json.loads(e.data or "") for e in events if e.kind == "interim"]
    assert interim == [{"iteration": i} for i in range(5)]
    assert events[-1].kind == "result"


@pytest.mark.parametrize(
    ("level", "kept", "dropped"),
    [
        ("WARNING", ["printed line", "warning line"], ["info line", "debug line", "Pass:"]),
        ("INFO", ["printed line", "info line", "warning line"], ["debug line", "Pass:"]),
    ],
)
def test_logs_capture_print_and_logging_honouring_log_level(
    harness: Harness, level: str, kept: list[str], dropped: list[str]
) -> None:
    events = harness.run(harness.spec(source=BELL, log_level=level))
    log = "".join(e.data or "" for e in events if e.kind == "log")
    for text in kept:
        assert text + "\n" in log
    for text in dropped:
        assert text not in log


def test_final_publish_is_the_result_and_return_value_is_ignored(harness: Harness) -> None:
    source = (
        "def main(backend, user_messenger):\n"
        "    user_messenger.publish({'final': True}, final=True)\n"
        "    return 'ignored'\n"
    )
    events = harness.run(harness.spec(source=source))
    assert json.loads(events[-1].data or "") == {"final": True}


def test_builtin_runs_in_a_warm_pool_worker_that_keeps_module_state(harness: Harness) -> None:
    results = [
        loads(
            harness.run(harness.spec(builtin="qrtest_programs.counter", inputs='{"x": 1}'))[-1].data
            or ""
        )
        for _ in range(6)
    ]
    assert all(r["echo"] == {"x": 1} for r in results)
    # Two warm workers: each one's call count goes up by one per job it ran.
    by_pid: dict[tuple[object, ...], list[int]] = {}
    for r in results:
        by_pid.setdefault(tuple(r["pid"]), []).append(r["calls"])
    assert len(by_pid) <= 2
    for calls in by_pid.values():
        assert calls == list(range(calls[0], calls[0] + len(calls)))
    assert max(len(calls) for calls in by_pid.values()) >= 3


def test_hello_world_builtin_publishes_per_iteration(harness: Harness) -> None:
    events = harness.run(
        harness.spec(program_id="hello-world", builtin="hello_world", inputs='{"iterations": 2}')
    )
    interim = [json.loads(e.data or "") for e in events if e.kind == "interim"]
    assert [m["iteration"] for m in interim] == [0, 1]
    assert events[-1].kind == "result"


def test_concurrent_jobs_run_in_parallel(harness: Harness) -> None:
    source = "import time\ndef main(backend, user_messenger):\n    time.sleep(1.0)\n    return 1\n"
    started = time.monotonic()
    submitted = [harness.submit(harness.spec(source=source)) for _ in range(3)]
    for events, done in submitted:
        harness.wait(done)
        assert events[-1].kind == "result"
    assert time.monotonic() - started < 2.0


def test_sandboxed_job_gets_a_scrubbed_environment_and_a_private_directory(
    harness: Harness,
) -> None:
    source = (
        "import os, uuid\n"
        "def main(backend, user_messenger):\n"
        "    st = os.stat(os.getcwd())\n"
        "    marker = 'qruntime-marker-' + uuid.uuid4().hex\n"
        "    open(marker, 'w').write('x')\n"
        "    return {'env': dict(os.environ), 'cwd': os.getcwd(), 'uid': os.getuid(),\n"
        "            'owner': st.st_uid, 'mode': st.st_mode & 0o777, 'marker': marker}\n"
    )
    out = loads(harness.run(harness.spec(source=source))[-1].data or "")
    assert not any(k.startswith("QRUNTIME") for k in out["env"])
    assert out["env"]["HOME"] == out["cwd"] == out["env"]["TMPDIR"] == "/tmp"
    assert out["mode"] == 0o700
    # Its /tmp was its own: the host's never had the file.
    assert not os.path.exists(os.path.join("/tmp", out["marker"]))
    if os.geteuid() == 0:
        assert out["uid"] != 0
        assert out["owner"] == out["uid"]


def test_inline_executor_runs_uploads_and_builtins_in_one_worker(
    make_harness: Callable[..., Harness], programs_dir: Path
) -> None:
    inline = make_harness(lambda: InlineExecutor(env={"PYTHONPATH": str(programs_dir)}))
    upload = inline.run(inline.spec(source=TRIVIAL, inputs='{"value": 7}'))
    assert json.loads(upload[-1].data or "") == 7
    first = loads(inline.run(inline.spec(builtin="qrtest_programs.counter"))[-1].data or "")
    second = loads(inline.run(inline.spec(builtin="qrtest_programs.counter"))[-1].data or "")
    assert second["pid"] == first["pid"]
    assert second["calls"] == first["calls"] + 1


def test_workers_decode_with_the_servers_limits(make_harness: Callable[..., Harness]) -> None:
    from qiskit import QuantumCircuit

    from qruntime.encoding import dumps
    from qruntime.server.executor import LocalExecutor

    limits = {"max_decoded_bytes": 10_000_000, "max_circuit_qubits": 2}
    h = make_harness(lambda: LocalExecutor(pool_size=1, decode_limits=limits))
    circuit = QuantumCircuit(3)
    circuit.measure_all()
    spec = h.spec(
        program_id="circuit-runner",
        builtin="circuit_runner",
        inputs=dumps({"circuits": circuit, "shots": 10}),
    )
    events = h.run(spec)
    assert events[-1].kind == "error"
    assert "declares 3 qubits; this server accepts at most 2" in (events[-1].message or "")
