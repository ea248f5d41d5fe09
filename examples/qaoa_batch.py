"""A QAOA-style sampler loop in a Batch: MaxCut on a small graph, on aer_simulator.

The loop submits one SamplerV2 job per point of a (gamma, beta) grid; in a batch they
run in parallel on the backend's lanes, ahead of jobs outside sessions. The best point
is then sampled once more and the best cut among its samples is reported. Run it against
a server::

    export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_...
    .venv/bin/python examples/qaoa_batch.py
"""

from itertools import product

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qruntime import Batch, RuntimeService, SamplerV2

EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
NODES = 4


def cut_value(bits: str) -> int:
    """Edges cut by a bit string (Qiskit order: the last character is node 0)."""
    side = bits[::-1]
    return sum(side[a] != side[b] for a, b in EDGES)


def qaoa_circuit() -> QuantumCircuit:
    """One QAOA layer for MaxCut on EDGES, with parameters gamma and beta."""
    gamma, beta = Parameter("gamma"), Parameter("beta")
    circuit = QuantumCircuit(NODES)
    circuit.h(range(NODES))
    for a, b in EDGES:
        circuit.rzz(2 * gamma, a, b)
    circuit.rx(2 * beta, range(NODES))
    circuit.measure_all()
    return circuit


def expected_cut(counts: dict[str, int]) -> float:
    shots = sum(counts.values())
    return sum(cut_value(bits) * n for bits, n in counts.items()) / shots


def main() -> None:
    service = RuntimeService()
    circuit = qaoa_circuit()
    grid = list(product(np.linspace(0.2, 1.4, 5), np.linspace(0.2, 1.4, 5)))

    with Batch(service=service, backend="aer_simulator") as batch:
        sampler = SamplerV2(mode=batch, options={"default_shots": 500})
        # The loop: submit every point first, then collect; the jobs run in parallel.
        jobs = [sampler.run([(circuit, [gamma, beta])]) for gamma, beta in grid]
        print(f"batch {batch.session_id}: {len(jobs)} sampler jobs submitted")
        scores = [expected_cut(job.result()[0].data.meas.get_counts()) for job in jobs]
        best_point = grid[int(np.argmax(scores))]
        print(
            f"best grid point: gamma={best_point[0]:.2f} beta={best_point[1]:.2f} "
            f"(expected cut {max(scores):.3f})"
        )
        final = sampler.run([(circuit, list(best_point))], shots=2000).result()

    counts = final[0].data.meas.get_counts()
    best_bits = max(counts, key=cut_value)
    optimum = max(cut_value(format(x, f"0{NODES}b")) for x in range(2**NODES))
    print(f"best sampled cut: {best_bits} cuts {cut_value(best_bits)} edges")
    print(f"maximum cut: {optimum} edges")
    service.close()


if __name__ == "__main__":
    main()
