"""Noise-model errors merged into one Kraus channel: the same channel, cheaper for Aer."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Kraus, Operator, SuperOp
from qiskit_aer import AerSimulator
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    amplitude_damping_error,
    depolarizing_error,
    thermal_relaxation_error,
)

from qruntime.backends import load_catalogue
from qruntime.backends.channels import _expand, error_kraus_operators, merge_into_kraus
from qruntime.backends.compact import compact_target
from qruntime.backends.simulator import DeviceBackend


def _device_noise(qubits: tuple[int, ...]) -> NoiseModel:
    entry = load_catalogue().get("fake_27q")
    device = DeviceBackend(compact_target(entry.target, qubits), name="fake_27q")
    return NoiseModel.from_backend(device)


def _errors(noise: NoiseModel) -> dict[tuple[str, tuple[int, ...]], QuantumError]:
    return {
        (name, qargs): error
        for name, by_qubits in noise._local_quantum_errors.items()
        for qargs, error in by_qubits.items()
    }


@pytest.mark.parametrize(
    ("qargs", "n"), [([0], 2), ([1], 2), ([1, 0], 2), ([2, 0], 3), ([0, 2, 1], 3)]
)
def test_expand_places_an_operator_on_its_qubits_in_qiskit_order(qargs: list[int], n: int) -> None:
    rng = np.random.default_rng(len(qargs) * 10 + n)
    size = 2 ** len(qargs)
    matrix = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    expected = Operator(np.eye(2**n)).compose(Operator(matrix), qargs=qargs).data
    assert np.allclose(_expand(matrix, qargs, n), expected)


def test_device_errors_become_the_same_channel_with_at_most_d_squared_operators() -> None:
    noise = _device_noise((12, 13, 14))
    errors = _errors(noise)
    assert ("cx", (0, 1)) in errors
    for key, error in errors.items():
        operators = error_kraus_operators(error)
        assert len(operators) <= 4**error.num_qubits, key
        assert SuperOp(Kraus(operators)) == SuperOp(error), key


def test_merge_replaces_non_unitary_errors_in_place_and_keeps_pauli_mixtures() -> None:
    noise = NoiseModel(basis_gates=["cx", "sx", "x", "rz"])
    pauli_only = depolarizing_error(0.02, 2)
    relaxing = depolarizing_error(0.01, 1).compose(thermal_relaxation_error(50e-6, 40e-6, 60e-9))
    noise.add_quantum_error(pauli_only, "cx", (0, 1))
    noise.add_quantum_error(relaxing, "sx", (0,))
    noise.add_quantum_error(amplitude_damping_error(0.05), "x", (1,))

    assert merge_into_kraus(noise) == 2

    errors = _errors(noise)
    assert errors[("cx", (0, 1))] is pauli_only  # Aer may still choose the stabilizer method
    merged = errors[("sx", (0,))]
    assert [[i.operation.name for i in c.data] for c in merged.circuits] == [["kraus"]]
    assert SuperOp(merged) == SuperOp(relaxing)
    assert SuperOp(errors[("x", (1,))]) == SuperOp(amplitude_damping_error(0.05))


def test_merged_model_gives_the_same_counts_for_the_same_seed() -> None:
    # Density-matrix simulation applies the channel whole, so a merged model that is the
    # same channel samples the very same outcomes.
    circuit = QuantumCircuit(3)
    circuit.sx(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.x(2)
    circuit.measure_all()
    original = _device_noise((12, 13, 14))
    merged = _device_noise((12, 13, 14))
    assert merge_into_kraus(merged) > 0

    def counts(noise: NoiseModel) -> dict[str, int]:
        simulator = AerSimulator(method="density_matrix", noise_model=noise)
        result = simulator.run(circuit, shots=3000, seed_simulator=17).result()
        return dict(result.get_counts())

    assert counts(merged) == counts(original)


def test_unknown_instructions_fall_back_to_qiskits_conversion() -> None:
    # A gate known only by its definition has no matrix here: Qiskit's slower general
    # path converts it.
    inner = QuantumCircuit(2)
    inner.h(0)
    inner.cx(0, 1)
    circuit = QuantumCircuit(2)
    circuit.append(inner.to_gate(label="entangle"), [0, 1])
    circuit.reset(0)
    odd = QuantumError([(circuit, 0.1), (QuantumCircuit(2), 0.9)])
    noise = NoiseModel()
    noise.add_quantum_error(odd, "cx", (0, 1))
    assert merge_into_kraus(noise) == 1
    assert SuperOp(_errors(noise)[("cx", (0, 1))]) == SuperOp(odd)


def test_a_model_of_another_shape_is_left_alone() -> None:
    noise = NoiseModel()
    noise._local_quantum_errors = None  # as if Aer had changed its private table
    assert merge_into_kraus(noise) == 0
