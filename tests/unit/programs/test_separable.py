"""Sampling circuits part by part: the groups, and bits distributed as a whole run's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit_aer import AerSimulator

from qruntime.backends import DeviceRunner, load_catalogue
from qruntime.programs.separable import independent_parts, pack_parts, restrict, sample_bits


def _distribution(bits: np.ndarray) -> dict[tuple[bool, ...], float]:
    counts = Counter(tuple(row) for row in bits.tolist())
    return {key: value / len(bits) for key, value in counts.items()}


def _tvd(p: dict[tuple[bool, ...], float], q: dict[tuple[bool, ...], float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def test_parts_are_joined_by_multi_qubit_gates_and_shared_clbits() -> None:
    circuit = QuantumCircuit(6, 3)
    circuit.cx(0, 1)
    circuit.h(2)
    circuit.barrier()
    circuit.measure(2, 0)
    circuit.measure(3, 0)  # the same clbit: the later write wins, so 2 and 3 run together
    circuit.delay(100, 4)  # only a delay: no part
    circuit.measure(5, 2)
    assert independent_parts(circuit) == [(0, 1), (2, 3), (5,)]


def test_classical_data_flow_keeps_the_circuit_whole() -> None:
    circuit = QuantumCircuit(2, 1)
    circuit.h(0)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.x(1)
    assert independent_parts(circuit) is None


def test_parts_pack_in_order_and_a_wide_part_stays_alone() -> None:
    parts = [(0,), (1, 2), (3,), (4, 5, 6, 7, 8), (9,), (10,)]
    assert pack_parts(parts, width=4) == [(0, 1, 2, 3), (4, 5, 6, 7, 8), (9, 10)]


def test_restrict_keeps_every_clbit_and_narrows_barriers() -> None:
    circuit = QuantumCircuit(
        QuantumRegister(3), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    )
    circuit.h(0)
    circuit.cx(1, 2)
    circuit.barrier()
    circuit.measure([0, 1, 2], [2, 0, 1])
    sub = restrict(circuit, [1, 2])
    assert sub.num_qubits == 3
    assert [r.name for r in sub.cregs] == ["a", "b"]
    assert [i.operation.name for i in sub.data] == ["cx", "barrier", "measure", "measure"]
    assert len(sub.data[1].qubits) == 2
    with pytest.raises(ValueError, match="cx crosses"):
        restrict(circuit, [0, 1])


def test_split_bits_are_distributed_as_the_whole_circuits_on_a_device() -> None:
    backend = DeviceRunner(load_catalogue().get("fake_5q"))
    theta = Parameter("theta")
    circuit = QuantumCircuit(5, 5)
    circuit.rx(theta, 0)
    circuit.cx(0, 1)  # an entangled pair...
    circuit.rx(theta / 2, 2)  # ...and three qubits on their own
    circuit.x(3)
    circuit.sx(4)
    # Clbits in another order than the qubits, so each part's bits must land in place.
    circuit.measure([0, 1, 2, 3, 4], [4, 2, 0, 3, 1])
    assert independent_parts(circuit) == [(0, 1), (2,), (3,), (4,)]
    rows = np.array([[0.7], [2.1]])
    shots = 20_000

    split = sample_bits(backend, circuit, rows, shots=shots, rng=np.random.default_rng(3))
    whole = backend.run(
        [circuit.assign_parameters(row) for row in rows], shots=shots, memory=True, seed_simulator=4
    ).result()

    assert split.shape == (2, shots, 5)
    for b in range(2):
        memory = whole.results[b].data.memory
        expected = np.array([[(int(h, 16) >> c) & 1 for c in range(5)] for h in memory], dtype=bool)
        assert _tvd(_distribution(split[b]), _distribution(expected)) < 0.04
    # The device's noise is there: qubit 3 (an X) sometimes reads 0, the pair sometimes disagrees.
    assert 0 < np.count_nonzero(~split[:, :, 3]) < 0.2 * 2 * shots
    assert np.count_nonzero(split[:, :, 4] != split[:, :, 2]) > 0


def test_a_part_without_parameters_is_dealt_across_parameter_sets() -> None:
    theta = Parameter("theta")
    circuit = QuantumCircuit(2, 2)
    circuit.rx(theta, 0)
    circuit.x(1)
    circuit.measure([0, 1], [0, 1])
    rows = np.array([[0.0], [np.pi], [0.0]])

    bits = sample_bits(AerSimulator(), circuit, rows, shots=7, rng=np.random.default_rng(0))

    assert bits.shape == (3, 7, 2)
    assert bits[:, :, 1].all()
    assert not bits[0, :, 0].any()
    assert bits[1, :, 0].all()
    assert not bits[2, :, 0].any()


def test_seeded_sampling_repeats_and_parts_draw_independent_noise() -> None:
    circuit = QuantumCircuit(8, 8)
    circuit.h(range(8))
    circuit.measure(range(8), range(8))
    rows = np.zeros((1, 0))

    first = sample_bits(AerSimulator(), circuit, rows, shots=4000, rng=np.random.default_rng(5))
    again = sample_bits(AerSimulator(), circuit, rows, shots=4000, rng=np.random.default_rng(5))

    np.testing.assert_array_equal(first, again)
    # Qubits 0 and 4 run in different parts: a shared seed would make them agree always.
    agreement = np.mean(first[0, :, 0] == first[0, :, 4])
    assert 0.45 < agreement < 0.55


def test_no_parameter_sets_or_no_clbits_give_empty_bits() -> None:
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    assert sample_bits(AerSimulator(), circuit, np.zeros((0, 0)), shots=5).shape == (0, 5, 2)
    bare = QuantumCircuit(2)
    bare.h(0)
    assert sample_bits(AerSimulator(), bare, np.zeros((2, 0)), shots=5).shape == (2, 5, 0)
