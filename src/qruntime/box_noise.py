"""Learned layer noise as the ``layer_noise_model`` of the client-side (executor) estimator.

qiskit-ibm-runtime's ``executor_estimator.EstimatorV2`` runs PEA and PEC with a
``resilience.layer_noise_model``: pairs of a boxed layer (from its
``find_unique_layers``) and a ``PauliLindbladMap`` on the box's qubits, in the box's
qubit order. IBM fills it from ``NoiseLearnerV3``; qruntime's ``noise-learner`` program
serves ``NoiseLearner`` (V2), whose result is one ``LayerError`` per layer of two-qubit
gates: the physical ``qubits`` of the layer, the layer as a circuit, and the generators
(qubit 0 rightmost in a label, as ``layer.qubits[0]``) and rates of its channel.
:func:`box_noise_model` matches each box to the layer error with the same two-qubit
gates and rewrites the generators onto the box's qubits.

Usage::

    estimator.options.resilience.pec_mitigation = True
    boxes = estimator.find_unique_layers(pubs)
    learned = NoiseLearner(backend).run([circuit]).result()
    estimator.options.resilience.layer_noise_model = box_noise_model(circuit, boxes, learned)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import CircuitInstruction
from qiskit.quantum_info import PauliLindbladMap

__all__ = ["box_noise_model"]


def box_noise_model(
    circuit: QuantumCircuit, boxes: Iterable[CircuitInstruction], layer_errors: Iterable[Any]
) -> list[tuple[CircuitInstruction, PauliLindbladMap]]:
    """A ``(box, PauliLindbladMap)`` for each box, from the matching learned layer error.

    ``circuit`` is the circuit the boxes were found in (it numbers their qubits);
    ``layer_errors`` are ``LayerError``s (qiskit-ibm-runtime's or qruntime's: anything
    with ``qubits``, ``circuit`` and ``error.generators``/``error.rates``). A layer error
    matches a box when both hold the same two-qubit gates on the same physical qubits.
    Generators acting on a qubit outside the box are left out (a box may hold fewer
    idle qubits than the learned layer). Raises ``LookupError`` naming a box's gates
    when no layer error matches it: learn the circuit the boxes came from.
    """
    learned = [(_gate_pairs(e.circuit, e.qubits), e) for e in layer_errors]
    model = []
    for box in boxes:
        qubits = [circuit.find_bit(q).index for q in box.qubits]
        pairs = _gate_pairs(box.operation.body, qubits)
        match = next((e for p, e in learned if p == pairs and e.error is not None), None)
        if match is None:
            gates = sorted(tuple(sorted(p)) for p in pairs)
            raise LookupError(f"no learned layer has the two-qubit gates on qubits {gates}")
        model.append((box, _map_on(qubits, match)))
    return model


def _gate_pairs(body: QuantumCircuit, qubits: Sequence[int]) -> frozenset[frozenset[int]]:
    """The physical qubit pairs of ``body``'s two-qubit gates (body qubit i is ``qubits[i]``)."""
    return frozenset(
        frozenset(int(qubits[body.find_bit(q).index]) for q in instruction.qubits)
        for instruction in body.data
        if len(instruction.qubits) == 2 and instruction.operation.name != "barrier"
    )


def _map_on(box_qubits: list[int], layer_error: Any) -> PauliLindbladMap:
    position = {qubit: i for i, qubit in enumerate(box_qubits)}
    layer_qubits = [int(q) for q in layer_error.qubits]
    terms = []
    for generator, rate in zip(layer_error.error.generators, layer_error.error.rates, strict=True):
        labels, indices = [], []
        for i, qubit in enumerate(layer_qubits):
            pauli = generator[i].to_label()
            if pauli == "I":
                continue
            if qubit not in position:
                break
            labels.append(pauli)
            indices.append(position[qubit])
        else:
            if labels:
                terms.append(("".join(labels), indices, float(rate)))
    return PauliLindbladMap.from_sparse_list(terms, num_qubits=len(box_qubits))
