"""Jobs on a real Ray cluster through a real server: programs, sessions, sandbox, faults.

The tests share one cluster and one server (starting them takes most of a minute);
the node-crash test comes last, since it takes the worker node down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from tests.integration.ray.conftest import HEAD_RESOURCE, WORKER_RESOURCE, RayServer

from qruntime import (
    EstimatorV2,
    RunnerResult,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    SamplerV2,
    Session,
)

SLEEPER = """
import time
def main(backend, user_messenger, **kwargs):
    user_messenger.publish("started")
    time.sleep(kwargs.get("seconds", 60))
    return "woke up"
"""

COUNTER = """
def main(backend, user_messenger, **kwargs):
    for i in range(kwargs["n"]):
        user_messenger.publish({"i": i})
    print("counted", kwargs["n"])
    return kwargs["n"]
"""

# Looks for the Ray object store from inside the sandbox: its files, its socket, its
# mappings, a secret another driver put there, the network and the database.
PROBE = r"""
import os, socket
def attempt(fn):
    try:
        return ["ok", fn()]
    except Exception as exc:
        return ["refused", f"{type(exc).__name__}: {exc}"]

def connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        return "connected"
    finally:
        s.close()

def connect_tcp(port):
    return socket.create_connection(("127.0.0.1", port), timeout=2) and "connected"

def grep_shm(secret):
    found = []
    for name in os.listdir("/dev/shm"):
        if not os.path.isfile(os.path.join("/dev/shm", name)):
            continue  # the server's own installation, when it lies under /tmp
        with open(os.path.join("/dev/shm", name), "rb") as f:
            if secret.encode() in f.read():
                found.append(name)
    return found

def main(backend, user_messenger, **kwargs):
    maps = open("/proc/self/maps").read()
    return {
        "uid": os.getuid(),
        "shm": sorted(os.listdir("/dev/shm")),
        "shm_secret": attempt(lambda: grep_shm(kwargs["secret"])),
        "maps_plasma": [l for l in maps.splitlines() if "plasma" in l or "/dev/shm" in l],
        "ray_dir": attempt(lambda: os.listdir(kwargs["ray_dir"])),
        "store_socket": attempt(lambda: connect_unix(kwargs["store_socket"])),
        "gcs": attempt(lambda: connect_tcp(kwargs["gcs_port"])),
        "database": attempt(lambda: open(kwargs["database"], "rb").read(16).hex()),
    }
"""


def _installed_under_tmp() -> set[str]:
    """The names in /tmp under which this checkout or its virtual environment lie."""
    names = set()
    for path in (Path(__file__).resolve().parents[3], Path(sys.prefix).resolve()):
        if path.is_relative_to("/tmp"):
            names.add(path.relative_to("/tmp").parts[0])
    return names


# A driver that puts a secret in the object store and keeps it there until stdin closes.
HOLDER = """
import json, os, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
ref = ray.put(sys.argv[2].encode() * 1000)
print(json.dumps({"store": ray._private.worker.global_worker.node.plasma_store_socket_name}))
sys.stdout.flush()
sys.stdin.read()
"""


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def upload(service: Any, source: str, name: str, max_execution_time: int = 120) -> str:
    metadata = {"name": name, "description": name, "max_execution_time": max_execution_time}
    program_id: str = service.upload_program(data=source, metadata=metadata)
    return program_id


def wait_running(job: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while job.status().name != "RUNNING":
        assert time.monotonic() < deadline, f"job stayed {job.status()}"
        time.sleep(0.1)


def test_every_builtin_program_runs_on_ray(service: Any) -> None:
    job = service.run("hello-world", inputs={"iterations": 2}, options={"backend": "aer_simulator"})
    assert job.result(timeout=180) == "All done!"
    assert "ray" in job.metrics()

    runner = service.run(
        "circuit-runner",
        inputs={"circuits": bell(), "shots": 200, "seed_simulator": 7},
        options={"backend": "worker_sim"},
        result_decoder=RunnerResult,
    )
    counts = runner.result(timeout=180).get_counts()
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == 200

    sampler = SamplerV2(mode="aer_simulator", service=service)
    sampled = sampler.run([bell()], shots=300).result()[0].data.meas.get_counts()
    assert sum(sampled.values()) == 300

    ghz = QuantumCircuit(2)
    ghz.h(0)
    ghz.cx(0, 1)
    estimator = EstimatorV2(mode="aer_simulator", service=service)
    value = estimator.run([(ghz, SparsePauliOp("ZZ"))]).result()[0].data.evs
    assert float(value) == pytest.approx(1.0, abs=0.1)


def test_an_uploaded_programs_interim_results_and_logs_arrive_in_order(service: Any) -> None:
    program_id = upload(service, COUNTER, "counter")
    heard: list[Any] = []
    job = service.run(
        program_id,
        inputs={"n": 50},
        options={"backend": "worker_sim"},
        callback=lambda _job_id, message: heard.append(message),
    )
    assert job.result(timeout=180) == 50
    assert job.interim_results() == [{"i": i} for i in range(50)]
    assert heard[:50] == [{"i": i} for i in range(50)]
    assert "counted 50" in job.logs()
    metrics = job.metrics()
    assert metrics["worker"] == "sandbox"
    assert set(metrics["ray"]) >= {"dispatch", "actor_call", "total", "node"}


def test_a_sessions_second_identical_job_hits_its_cache_on_ray(service: Any) -> None:
    inputs = {"circuits": bell(), "shots": 200, "seed_simulator": 11}
    with Session(service=service, backend="fake_27q") as session:
        first = session.run("circuit-runner", inputs=inputs, result_decoder=RunnerResult)
        cold = first.result(timeout=180)
        second = session.run("circuit-runner", inputs=inputs, result_decoder=RunnerResult)
        warm = second.result(timeout=180)
    assert warm.get_counts() == cold.get_counts()
    metrics = [first.metrics(), second.metrics()]
    assert [m["worker"] for m in metrics] == ["session", "session"]
    assert metrics[0]["ray"]["node"] == metrics[1]["ray"]["node"]  # pinned to one node
    assert metrics[0]["cache"]["transpile_misses"] >= 1
    assert metrics[1]["cache"]["transpile_hits"] >= 1
    assert metrics[1]["cache"]["transpile_misses"] == 0


def test_the_sandbox_holds_inside_ray(ray_server: RayServer, service: Any) -> None:
    secret = "qrt_object_" + "7f3a" * 8
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ray_server.cluster.address, secret],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=ray_server.cluster.env,
    )
    try:
        assert holder.stdout is not None
        store = json.loads(holder.stdout.readline())["store"]
        program_id = upload(service, PROBE, "probe")
        inputs = {
            "secret": secret,
            "ray_dir": str(ray_server.cluster.root),
            "store_socket": store,
            "gcs_port": ray_server.cluster.port,
            "database": str(ray_server.db),
        }
        outs = [
            service.run(program_id, inputs=inputs, options={"backend": b}).result(timeout=180)
            for b in ("aer_simulator", "worker_sim")
        ]
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=60)
        holder.stdout.close()  # type: ignore[union-attr]
    for out in outs:
        assert out["uid"] != 0
        # /dev/shm is the job's own /tmp: empty, but for the server's installation shown
        # read-only there when it lies under /tmp (a checkout in /tmp, as CI's may be).
        assert set(out["shm"]) <= _installed_under_tmp()
        assert out["shm_secret"] == ["ok", []]
        assert out["maps_plasma"] == []
        assert out["ray_dir"][0] == "refused"
        assert out["store_socket"][0] == "refused"
        assert out["gcs"][0] == "refused"  # no network at all, not even loopback
        assert out["database"][0] == "refused"
    # The zygotes on the nodes were started afresh: none maps the object store either.
    zygotes = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "qruntime.worker.zygote" in " ".join(p.info["cmdline"] or [])
    ]
    assert len(zygotes) >= 2  # one per node
    for zygote in zygotes:
        with open(f"/proc/{zygote.pid}/maps") as maps:
            assert "plasma" not in maps.read()


def test_cancel_and_max_execution_time_kill_jobs_on_ray(service: Any) -> None:
    sleeper = upload(service, SLEEPER, "sleeper")
    job = service.run(sleeper, inputs={"seconds": 120}, options={"backend": "worker_sim"})
    wait_running(job)
    job.cancel()
    deadline = time.monotonic() + 60
    while job.status().name != "CANCELLED":
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.1)

    short = upload(service, SLEEPER, "short", max_execution_time=2)
    job = service.run(short, inputs={"seconds": 120}, options={"backend": "worker_sim"})
    with pytest.raises(RuntimeJobMaxTimeoutError):
        job.result(timeout=120)


def test_a_job_no_node_can_run_is_refused_with_a_reason(service: Any) -> None:
    job = service.run("hello-world", inputs={}, options={"backend": "two_gpus"})
    with pytest.raises(RuntimeJobFailureError, match=r"GPU=2"):
        job.result(timeout=60)


def session_node(service: Any, session_id: str) -> Any:
    """The node the store records for a session (``GET /sessions/{id}``)."""
    return service._api.get_json(f"/sessions/{session_id}")["node"]


def test_a_sessions_node_is_recorded_and_kept_by_a_restarted_server(
    ray_server: RayServer,
) -> None:
    sleeper_inputs = {"seconds": 120}
    with ray_server.service() as service:
        sleeper = upload(service, SLEEPER, "placeholder")
        # The head is busy: the session goes to the worker node (once its host is ready).
        warm = service.run("hello-world", inputs={}, options={"backend": "worker_sim"})
        assert warm.result(timeout=180) == "All done!"
        held = service.run(sleeper, inputs=sleeper_inputs, options={"backend": "head_sim"})
        wait_running(held)
        session = Session(service=service, backend="aer_simulator")
        first = session.run("hello-world", inputs={})
        assert first.result(timeout=180) == "All done!"
        held.cancel()
        node = first.metrics()["ray"]["node"]
        assert node == warm.metrics()["ray"]["node"]
        session_id = session.session_id
        assert session_id is not None
        assert session_node(service, session_id) == node
    ray_server.restart()  # as a new leader would, it reads the pin from the store
    with ray_server.service() as service:
        # Now the worker node is the busy one: a session placed afresh would go to the head.
        busy = service.run(sleeper, inputs=sleeper_inputs, options={"backend": "worker_sim"})
        wait_running(busy)
        session = Session.from_id(session_id, service=service)
        again = session.run("hello-world", inputs={})
        assert again.result(timeout=180) == "All done!"
        busy.cancel()
        assert again.metrics()["ray"]["node"] == node
        assert session_node(service, session_id) == node
        session.close()


def test_the_cluster_view_lists_the_ray_nodes_and_their_jobs(service: Any) -> None:
    sleeper = upload(service, SLEEPER, "watched")
    job = service.run(sleeper, inputs={"seconds": 120}, options={"backend": "worker_sim"})
    wait_running(job)
    try:
        view = service._api.get_json("/cluster")
    finally:
        job.cancel()
    assert view["executor"] == "ray"
    assert view["ray_address"]
    assert view["running_jobs"] >= 1
    nodes = view["nodes"]
    assert len(nodes) == 2
    assert all(node["ready"] for node in nodes)
    (worker,) = [node for node in nodes if WORKER_RESOURCE in node["resources"]]
    (head,) = [node for node in nodes if HEAD_RESOURCE in node["resources"]]
    assert worker["jobs"] == 1
    assert head["jobs"] == 0
    assert head["resources"]["CPU"] == 2
    assert not [name for node in nodes for name in node["resources"] if name.startswith("node:")]


def test_a_crashed_node_fails_its_job_and_the_next_runs(
    ray_server: RayServer, service: Any
) -> None:
    sleeper = upload(service, SLEEPER, "doomed")
    job = service.run(sleeper, inputs={"seconds": 300}, options={"backend": "worker_sim"})
    wait_running(job)
    ray_server.cluster.kill_node(ray_server.worker)
    with pytest.raises(RuntimeJobFailureError, match=r"Ray node .* was lost"):
        job.result(timeout=120)
    after = service.run("hello-world", inputs={}, options={"backend": "aer_simulator"})
    assert after.result(timeout=120) == "All done!"
    # A node that joins later is picked up: the worker-only backend runs again. (Once
    # Ray lists the dead one no more: add_worker waits for one node more than it lists.)
    deadline = time.monotonic() + 60
    while len(ray_server.cluster.alive_nodes()) != 1:  # [] if Ray did not answer
        assert time.monotonic() < deadline, "Ray still lists the killed node"
        time.sleep(0.5)
    ray_server.cluster.add_worker(num_cpus=2, resources={WORKER_RESOURCE: 2})
    deadline = time.monotonic() + 120
    while True:
        again = service.run("hello-world", inputs={}, options={"backend": "worker_sim"})
        try:
            assert again.result(timeout=180) == "All done!"
            break
        except RuntimeJobFailureError:  # refused until the new node is listed
            assert time.monotonic() < deadline
            time.sleep(1)
