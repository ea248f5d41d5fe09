"""Issue "Jobs end to end": the cost of a job through qruntime against the same work in-process."""

from __future__ import annotations

import statistics
import threading
import time

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from bench.harness import Row, interleaved, median_ms, server, timed

TIMESTAMPS = """
import time

def main(backend, user_messenger, **kwargs):
    for _ in range(kwargs.get("n", 50)):
        user_messenger.publish(time.time())
        time.sleep(0.002)
    return "ok"
"""

TRIVIAL = "def main(backend, user_messenger, **kwargs):\n    return 1\n"


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def run(repeat: int = 100, warmup: int = 10) -> list[Row]:
    from qruntime import RuntimeService

    rows: list[Row] = []
    circuit = bell()

    simulator = AerSimulator()
    pm = generate_preset_pass_manager(optimization_level=1, backend=simulator)

    def in_process(_: object = None) -> None:
        simulator.run(pm.run(circuit), shots=1024).result().get_counts()

    with server() as srv, RuntimeService(url=srv.url, token=srv.token) as service:

        def through_server(_: object = None) -> None:
            job = service.run(
                "circuit-runner",
                inputs={"circuits": circuit, "shots": 1024},
                options={"backend": "aer_simulator"},
            )
            job.result(timeout=60)

        # Steady state on both sides: the first calls warm caches (pass managers, workers).
        for _ in range(warmup):
            in_process()
            through_server()
        # Taking turns, so that both sides meet the same (noisy) machine.
        samples = interleaved({"in_process": in_process, "server": through_server}, range(repeat))
        figure, baseline = median_ms(samples["server"]), median_ms(samples["in_process"])
        rows.append(
            Row(
                "circuit-runner Bell job, end to end (median)",
                figure,
                baseline,
                "ms",
                "<= 5x in-process",
                figure <= 5 * baseline,
                "both sides timed in alternating blocks of 10 jobs",
            )
        )

        program_id = service.upload_program(
            data=TIMESTAMPS,
            metadata={"name": "timestamps", "description": "bench", "max_execution_time": 60},
        )
        delays: list[float] = []
        done = threading.Event()

        def callback(_job_id: str, message: object) -> None:
            if isinstance(message, float):
                delays.append(time.time() - message)
            else:
                done.set()

        job = service.run(
            program_id, inputs={"n": 100}, options={"backend": "aer_simulator"}, callback=callback
        )
        job.result(timeout=60)
        done.wait(30)
        latency = statistics.median(delays) * 1000 if delays else float("inf")
        rows.append(
            Row(
                "publish() to callback latency (median)",
                latency,
                None,
                "ms",
                "< 5 ms",
                latency < 5,
                f"{len(delays)} messages",
            )
        )

        trivial = service.upload_program(
            data=TRIVIAL,
            metadata={"name": "trivial", "description": "bench", "max_execution_time": 60},
        )

        def sandboxed() -> None:
            service.run(trivial, inputs={}, options={"backend": "aer_simulator"}).result(timeout=60)

        figure = median_ms(timed(sandboxed, repeat=repeat))
        rows.append(
            Row(
                "trivial uploaded program (sandboxed fork)",
                figure,
                None,
                "ms",
                "<= 30 ms",
                figure <= 30,
            )
        )
    return rows
