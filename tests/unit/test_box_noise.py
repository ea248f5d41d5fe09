"""Learned layer errors rewritten onto the qubits of the executor estimator's boxes."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import BoxOp
from qiskit.quantum_info import PauliList

from qruntime.box_noise import box_noise_model
from qruntime.layer_noise import LayerError, PauliLindbladError


def _boxed_cx() -> QuantumCircuit:
    """A box on physical qubits (2, 0, 1) whose body's cx acts on physical qubits 1 and 2."""
    body = QuantumCircuit(3)
    body.cx(2, 0)
    circuit = QuantumCircuit(4)
    circuit.append(BoxOp(body), [2, 0, 1])
    return circuit


def _layer(qubits: list[int], labels: list[str], rates: list[float]) -> LayerError:
    layer = QuantumCircuit(len(qubits))
    layer.cx(0, 1)
    return LayerError(layer, qubits, PauliLindbladError(PauliList(labels), rates))


def test_generators_move_to_the_box_qubits_of_the_same_physical_qubits() -> None:
    circuit = _boxed_cx()
    box = circuit.data[0]
    # Layer qubit 0 is physical 1 (box position 2), layer qubit 1 is physical 2 (position 0).
    learned = [
        _layer([0, 3], ["XX"], [0.5]),  # other gates: not this box's
        _layer([1, 2], ["XZ", "IY", "ZI"], [0.1, 0.2, 0.3]),
    ]

    ((matched, noise),) = box_noise_model(circuit, [box], learned)

    assert matched is box
    assert noise.num_qubits == 3
    terms = {(label, tuple(qubits), rate) for label, qubits, rate in noise.to_sparse_list()}
    # Qubit 0 (physical 2) takes the X, qubit 2 (physical 1) the Z.
    assert terms == {("XZ", (0, 2), 0.1), ("Y", (2,), 0.2), ("Z", (0,), 0.3)}


def test_generators_on_qubits_outside_the_box_are_left_out() -> None:
    circuit = _boxed_cx()
    layer = QuantumCircuit(3)
    layer.cx(0, 1)
    error = PauliLindbladError(PauliList(["XIZ", "IXI"]), [0.4, 0.6])

    ((_, noise),) = box_noise_model(
        circuit, [circuit.data[0]], [LayerError(layer, [1, 2, 3], error)]
    )

    assert [(label, list(q)) for label, q, _ in noise.to_sparse_list()] == [("X", [0])]


def test_a_box_without_a_learned_layer_is_named() -> None:
    circuit = _boxed_cx()
    with pytest.raises(LookupError, match=r"\(1, 2\)"):
        box_noise_model(circuit, [circuit.data[0]], [_layer([0, 1], ["XX"], [0.1])])
