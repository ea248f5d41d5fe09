"""Issue "Beyond one machine": the Ray executor against the local one, and where time goes.

A real Ray cluster (a head and one worker node) on 127.0.0.1, in a network namespace
with only loopback (`bench.ray_cluster`): this module runs itself there
(``python -m bench.ray_executor --inner``) and reads the rows back. Two servers run side
by side on the same machine: one with local workers, one with ``--executor ray``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.harness import Row, free_port, interleaved, median_ms, server, settle
from bench.primitives import VQE_PRECISION, bell, vqe_problem
from bench.ray_cluster import RayCluster, loopback_namespace_command, netns_problem

PUBLISHER = """
import time
def main(backend, user_messenger, **kwargs):
    for i in range(kwargs["n"]):
        user_messenger.publish({"i": i, "at": time.time()})
        time.sleep(0.02)
    return "done"
"""


def run() -> list[Row]:
    problem = netns_problem()
    if problem is not None:
        print(f"ray_executor: skipped ({problem})", file=sys.stderr)
        return []
    command = loopback_namespace_command([sys.executable, "-m", "bench.ray_executor", "--inner"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"the Ray benchmark failed:\n{done.stderr[-4000:]}")
    return [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]


class MessageProbe:
    """Ray's own cost of one job's two messages, with nothing of qruntime in between.

    A trivial actor on the node the Bell jobs run on, driven as `RayExecutor` drives its
    node hosts: a call nobody waits for goes there, an item comes back on a stream read
    by a thread. What it measures is the least any job on Ray pays on this machine.
    """

    def __init__(self, address: str, node_id: str) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        class Echo:
            def __init__(self) -> None:
                self.calls: list[float] = []
                self.outbox: list[float] = []
                self.wake = asyncio.Event()

            async def submit(self, sent: float) -> None:
                self.calls.append(time.time() - sent)
                self.outbox.append(time.time())
                self.wake.set()

            async def events(self) -> Any:
                while True:
                    await self.wake.wait()
                    self.wake.clear()
                    batch, self.outbox = self.outbox, []
                    if batch:
                        yield batch

            async def arrivals(self) -> list[float]:
                return self.calls

        if not ray.is_initialized():
            ray.init(address=address, namespace="bench", log_to_driver=False)
        self.ray = ray
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        self.actor = (
            ray.remote(Echo)
            .options(scheduling_strategy=strategy, num_cpus=0, max_concurrency=1000)
            .remote()
        )
        ray.get(self.actor.arrivals.remote())
        self.backs: list[float] = []
        self.heard = threading.Event()
        stream = self.actor.events.options(num_returns="streaming").remote()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for ref in stream:
            for sent in self.ray.get(ref):
                self.backs.append(time.time() - sent)
            self.heard.set()

    def once(self) -> None:
        self.heard.clear()
        self.actor.submit.remote(time.time())
        if not self.heard.wait(30):
            raise RuntimeError("the probe actor's stream went quiet")

    def medians_ms(self) -> tuple[float, float]:
        """The median call (there) and stream item (back), in milliseconds."""
        calls = self.ray.get(self.actor.arrivals.remote())
        return statistics.median(calls) * 1000, statistics.median(self.backs) * 1000


def bell_rows(local: Any, on_ray: Any, address: str) -> list[Row]:
    """A Bell circuit-runner job end to end on each, where a Ray job's time went, and
    what Ray's own two messages cost on this machine (the least a job can cost there)."""
    circuit = bell()
    phases: dict[str, list[float]] = {
        "submit": [],
        "dispatch": [],
        "actor_call": [],
        "run": [],
        "back": [],
        "result_write": [],
        "client_hears": [],
    }
    ray_jobs: list[Any] = []

    def job_on(service: Any) -> Any:
        started = time.perf_counter()
        job = service.run(
            "circuit-runner", inputs={"circuits": circuit, "shots": 100}, options=BACKEND
        )
        if service is on_ray:
            phases["submit"].append(time.perf_counter() - started)
        job.result(timeout=120)
        if service is on_ray:
            heard[job.job_id()] = time.time()
        return job

    heard: dict[str, float] = {}
    for service in (local, on_ray):  # warm both: pass managers, pooled workers
        for _ in range(3):
            job_on(service)

    def ray_step(_i: int) -> None:
        ray_jobs.append(job_on(on_ray))

    probe = MessageProbe(address, job_on(on_ray).metrics()["ray"]["node"])
    for _ in range(3):
        probe.once()
    loops = {"local": lambda _i: job_on(local), "ray": ray_step, "probe": lambda _i: probe.once()}
    # The cluster's nodes, both servers' workers and the probe's actor have just started.
    waited, busy = settle()
    samples = interleaved(loops, list(range(30)))
    figure, baseline = median_ms(samples["ray"]), median_ms(samples["local"])
    call_ms, back_ms = probe.medians_ms()
    floor = (baseline + call_ms + back_ms) / baseline
    ends: list[float] = []
    for job in ray_jobs:
        metrics = job.metrics()
        phases["dispatch"].append(metrics["ray"]["dispatch"])
        phases["actor_call"].append(metrics["ray"]["actor_call"])
        phases["run"].append(metrics["timing"]["run"])
        phases["back"].append(metrics["ray"]["back"])
        stamps = metrics["timestamps"]
        finished = _seconds(stamps["finished"])
        # The store stamps ``finished`` in the transaction that writes the result.
        phases["result_write"].append(finished - metrics["ray"]["received"])
        phases["client_hears"].append(heard[job.job_id()] - finished)
        ends.append(finished - _seconds(stamps["created"]))
    median = {name: statistics.median(values) * 1000 for name, values in phases.items()}
    where = ", ".join(f"{name} {ms:.2f} ms" for name, ms in median.items())
    return [
        Row(
            "Bell job end to end on Ray (median)",
            figure,
            baseline,
            "ms",
            "<= 1.5x local executor",
            figure <= 1.5 * baseline,
            f"baseline: the same job on the local executor, timed in turns with it once "
            f"the cores were quiet ({busy:.0%} busy, after {waited:.0f} s); on Ray: {where}; "
            "created to "
            f"finished in the store {statistics.median(ends) * 1000:.2f} ms "
            "(result_write: from the result's arrival to the store's stamp in its write; "
            "client_hears: from that stamp to the client holding the result); Ray's own "
            "messages, a trivial "
            f"actor on the same node in the same run: call {call_ms:.2f} ms, stream item "
            f"back {back_ms:.2f} ms, so no job on Ray can cost less than {floor:.2f}x "
            "local here",
        )
    ]


def vqe_row(on_ray: Any) -> Row:
    """100 EstimatorV2 iterations in a session on Ray against Aer's EstimatorV2 in-process."""
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from qruntime import EstimatorV2, Session

    isa, observable, values = vqe_problem()
    aer = AerEstimator(
        options={"default_precision": VQE_PRECISION, "run_options": {"seed_simulator": 3}}
    )

    def aer_step(row: np.ndarray[Any, Any]) -> None:
        aer.run([(isa, observable, row)]).result()

    with Session(service=on_ray, backend="aer_simulator") as session:
        estimator = EstimatorV2(
            mode=session, options={"resilience_level": 0, "default_precision": VQE_PRECISION}
        )

        def ray_step(row: np.ndarray[Any, Any]) -> None:
            estimator.run([(isa, observable, row)]).result()

        for row in values[:3]:
            aer_step(row)
            ray_step(row)
        samples = interleaved({"aer": aer_step, "ray": ray_step}, values)
    figure, baseline = sum(samples["ray"]) * 1000, sum(samples["aer"]) * 1000
    return Row(
        f"EstimatorV2 VQE loop in a session on Ray ({len(values)} it.)",
        figure,
        baseline,
        "ms",
        "<= 2.5x in-process Aer",
        figure <= 2.5 * baseline,
        "baseline: Aer EstimatorV2 in-process; on Ray the session's worker is pinned to "
        "one node; loops timed in alternating blocks of 10 iterations",
    )


def interim_row(on_ray: Any) -> Row:
    """How long an interim result takes from ``publish()`` on a node to a client's callback."""
    program_id = on_ray.upload_program(
        data=PUBLISHER,
        metadata={"name": "publisher", "description": "interim", "max_execution_time": 120},
    )
    delays: list[float] = []
    lock = threading.Lock()

    def heard(_job_id: str, message: Any) -> None:
        if isinstance(message, dict) and "at" in message:
            with lock:
                delays.append(time.time() - message["at"])

    for _ in range(3):
        job = on_ray.run(program_id, inputs={"n": 20}, options=BACKEND, callback=heard)
        job.result(timeout=120)
        time.sleep(0.2)  # the stream's last messages
    delays = delays[5:]  # the first ones reach a stream still being opened
    figure = statistics.median(delays) * 1000
    return Row(
        "Interim result, publish() to callback on Ray",
        figure,
        None,
        "ms",
        "< 50 ms (median)",
        figure < 50,
        f"{len(delays)} interim results over a WebSocket; 95th percentile "
        f"{np.percentile(delays, 95) * 1000:.1f} ms",
    )


BACKEND = {"backend": "aer_simulator"}


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def inner() -> list[Row]:
    from qruntime import RuntimeService

    cluster = RayCluster(port=free_port())
    try:
        cluster.start_head(num_cpus=2)
        cluster.add_worker(num_cpus=2)
        ray_env = {k: v for k, v in cluster.env.items() if k.startswith("RAY_")}
        os.environ.update(ray_env)  # this process joins too, for the message probe
        ray_env.update(QRUNTIME_EXECUTOR="ray", QRUNTIME_RAY_ADDRESS=cluster.address)
        with (
            server() as local_server,
            server(**ray_env) as ray_server,
            RuntimeService(url=local_server.url, token=local_server.token) as local,
            RuntimeService(url=ray_server.url, token=ray_server.token) as on_ray,
        ):
            return [
                *bell_rows(local, on_ray, cluster.address),
                vqe_row(on_ray),
                interim_row(on_ray),
            ]
    finally:
        import ray

        ray.shutdown()  # the message probe's connection, before its cluster goes
        cluster.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--inner"]:
        print(json.dumps([asdict(row) for row in inner()]))
    else:
        for row in run():
            print(row)
