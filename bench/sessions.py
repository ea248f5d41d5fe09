"""Issue "Sessions, Batch and the scheduler": iterative work in a session, and its caches."""

from __future__ import annotations

import statistics
import time

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import real_amplitudes
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from bench.harness import Row, median_ms, server


def ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def ansatz() -> QuantumCircuit:
    circuit = real_amplitudes(4, reps=2)
    circuit.measure_all()
    return circuit


def vqe_loop(iterations: int = 100) -> list[Row]:
    """A VQE-style loop: each iteration binds new parameters and samples the ansatz."""
    from qruntime import RuntimeService, Session

    circuit = ansatz()
    rng = np.random.default_rng(7)
    values = rng.uniform(0, np.pi, size=(iterations, circuit.num_parameters))

    simulator = AerSimulator()
    pm = generate_preset_pass_manager(optimization_level=1, backend=simulator)
    isa = pm.run(circuit)
    samples = []
    for row in values:
        start = time.perf_counter()
        simulator.run(isa.assign_parameters(row), shots=1024).result().get_counts()
        samples.append(time.perf_counter() - start)
    baseline = statistics.median(samples) * 1000

    with (
        server() as srv,
        RuntimeService(url=srv.url, token=srv.token) as service,
        Session(service=service, backend="aer_simulator") as session,
    ):
        samples = []
        for row in values:
            start = time.perf_counter()
            job = session.run(
                "circuit-runner",
                inputs={"circuits": circuit.assign_parameters(row), "shots": 1024},
            )
            job.result(timeout=60)
            samples.append(time.perf_counter() - start)
    figure = statistics.median(samples) * 1000
    return [
        Row(
            f"VQE loop in a session, per iteration ({iterations})",
            figure,
            baseline,
            "ms",
            "<= 2x in-process",
            figure <= 2 * baseline,
        )
    ]


def session_cache(repeat: int = 10) -> list[Row]:
    """Ten identical GHZ-5 jobs, optimization_level 3, on the 27-qubit device: caches on/off."""
    from qruntime import RuntimeService, Session

    circuit = ghz(5)
    inputs = {"circuits": circuit, "shots": 2000, "optimization_level": 3, "seed_transpiler": 5}

    def run(**env: str) -> float:
        with (
            server(**env) as srv,
            RuntimeService(url=srv.url, token=srv.token) as service,
            Session(service=service, backend="fake_27q") as session,
        ):
            session.run("circuit-runner", inputs=inputs).result(timeout=120)  # warm
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                session.run("circuit-runner", inputs=inputs).result(timeout=120)
                samples.append(time.perf_counter() - start)
        return median_ms(samples)

    cached = run()
    uncached = run(QRUNTIME_CACHES="0")
    return [
        Row(
            "GHZ-5 opt3 on fake_27q in a session (median)",
            cached,
            uncached,
            "ms",
            ">= 10x faster than caches off",
            uncached >= 10 * cached,
            "baseline: same server, caches off",
        )
    ]


def run() -> list[Row]:
    return [*vqe_loop(), *session_cache()]
