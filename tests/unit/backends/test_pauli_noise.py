"""The Pauli twirl of a device's errors, and the method each circuit gets."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit_aer.noise import amplitude_damping_error, depolarizing_error

from qruntime.backends.pauli_noise import pauli_probabilities, pauli_twirl
from qruntime.errors import InputValueError
from qruntime.programs.method_choice import choose_simulation, is_clifford


def test_twirl_of_a_pauli_channel_is_the_channel_itself() -> None:
    twirled = pauli_twirl(depolarizing_error(0.03, 2))
    assert twirled is not None
    assert len(twirled.probabilities) == 16
    assert max(twirled.probabilities) == pytest.approx(1 - 0.03 * 15 / 16)
    assert sum(twirled.probabilities) == pytest.approx(1.0)


def test_twirl_of_amplitude_damping_keeps_its_known_pauli_weights() -> None:
    gamma = 0.2
    kraus = [
        np.array([[1, 0], [0, np.sqrt(1 - gamma)]]),
        np.array([[0, np.sqrt(gamma)], [0, 0]]),
    ]
    weights = pauli_probabilities(kraus)
    assert weights["X"] == pytest.approx(gamma / 4)
    assert weights["Y"] == pytest.approx(gamma / 4)
    assert weights["Z"] == pytest.approx((1 - np.sqrt(1 - gamma)) ** 2 / 4)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert pauli_twirl(amplitude_damping_error(gamma)) is not None


def test_clifford_rotations_count_as_clifford() -> None:
    circuit = QuantumCircuit(2)
    circuit.rz(-np.pi / 2, 0)
    circuit.rx(np.pi, 1)
    circuit.ecr(0, 1)
    assert is_clifford(circuit)
    circuit.rz(0.3, 0)
    assert not is_clifford(circuit)


def test_each_shape_gets_its_method() -> None:
    wide_x = QuantumCircuit(30)
    wide_x.x(range(30))
    wide_x.measure_all()
    assert choose_simulation(wide_x).method == "separable"
    chain = QuantumCircuit(30)
    chain.h(0)
    for qubit in range(29):
        chain.cx(qubit, qubit + 1)
    assert choose_simulation(chain).method == "stabilizer"
    chain.t(5)
    assert choose_simulation(chain).method == "matrix_product_state"
    small = QuantumCircuit(3)
    small.h(0)
    small.t(0)
    assert choose_simulation(small).method == "automatic"


def test_a_wide_entangling_non_clifford_circuit_is_refused_with_the_reason() -> None:
    circuit = QuantumCircuit(40)
    for _ in range(4):
        for qubit in range(40):
            circuit.rx(0.3, qubit)
        for qubit in range(20):
            circuit.cx(qubit, qubit + 20)
            circuit.cx(qubit + 20, (qubit + 1) % 20)
    with pytest.raises(InputValueError, match="entangles 40 qubits"):
        choose_simulation(circuit, shots=100)
