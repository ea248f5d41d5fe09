"""Issue "Sessions, Batch and the scheduler": iterative work in a session, and its caches."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import real_amplitudes
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from bench.harness import Row, interleaved, median_ms, server


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
    """A VQE-style loop: each iteration binds new parameters and samples the ansatz.

    Through the server each iteration is a ``circuit-runner`` job, which transpiles the
    bound circuit (``optimization_level`` 1, its default) and runs it; the baseline does
    the same in-process: the same pass manager on the bound circuit, then Aer. Binding
    into a circuit transpiled once is faster still; the note gives that figure too, but
    ``circuit-runner`` cannot do it (each bound circuit is new content to transpile).
    """
    from qruntime import RuntimeService, Session

    circuit = ansatz()
    rng = np.random.default_rng(7)
    values = rng.uniform(0, np.pi, size=(iterations, circuit.num_parameters))

    simulator = AerSimulator()
    pm = generate_preset_pass_manager(optimization_level=1, backend=simulator)
    isa = pm.run(circuit)

    def in_process(row: np.ndarray[Any, Any]) -> None:
        simulator.run(pm.run(circuit.assign_parameters(row)), shots=1024).result().get_counts()

    def transpiled_once(row: np.ndarray[Any, Any]) -> None:
        simulator.run(isa.assign_parameters(row), shots=1024).result().get_counts()

    with (
        server() as srv,
        RuntimeService(url=srv.url, token=srv.token) as service,
        Session(service=service, backend="aer_simulator") as session,
    ):

        def through_server(row: np.ndarray[Any, Any]) -> None:
            inputs = {"circuits": circuit.assign_parameters(row), "shots": 1024}
            session.run("circuit-runner", inputs=inputs).result(timeout=60)

        for row in values[:3]:  # warm: pass managers, the session's worker
            in_process(row)
            transpiled_once(row)
            through_server(row)
        samples = interleaved(
            {"in_process": in_process, "once": transpiled_once, "server": through_server},
            values,
        )
    figure, baseline = median_ms(samples["server"]), median_ms(samples["in_process"])
    return [
        Row(
            f"VQE loop in a session, circuit-runner, per iteration ({iterations})",
            figure,
            baseline,
            "ms",
            "<= 2x in-process",
            figure <= 2 * baseline,
            "baseline: the same transpile and run in-process; loops timed in alternating "
            f"blocks of 10; binding into a circuit transpiled once: "
            f"{median_ms(samples['once']):.2f} ms",
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
