"""Layers of two-qubit gates in a circuit, as the noise learner and PEA / PEC see them.

Each two-qubit Clifford gate that is its own inverse (``cx``, ``cz``, ``ecr``...) goes
into the earliest layer after every layer its qubits were in: a layer holds gates on
disjoint qubits. Every other instruction stays between the layers, after the last
layer on its qubits and classical bits; a barrier (and any instruction on several
qubits that is not a layer gate) makes what follows it on its wires wait for
everything before it, so layers obey barriers. Replaying the instructions stage by
stage (:meth:`LayeredCircuit.items`) is the same circuit, each wire in its order, with
a marker after each layer where noise can be injected.

Which qubits a layer twirls follows IBM's ``twirling_strategy``: ``active`` the
layer's gate qubits, ``active-accum`` every qubit used up to and in the layer,
``active-circuit`` every qubit the circuit uses, ``all`` all of them (barriers and
delays do not make a qubit active).

Usage::

    layered = layered_circuit(isa_circuit, "active-accum")
    for layer in layered.layers: print(layer.gates, layer.qubits)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Gate, Instruction
from qiskit.quantum_info import Clifford

from qruntime.errors import InputValueError

__all__ = [
    "STRATEGIES",
    "Layer",
    "LayeredCircuit",
    "is_layer_gate",
    "layer_circuit",
    "layered_circuit",
]

STRATEGIES = ("active", "active-accum", "active-circuit", "all")
_PASSIVE = frozenset({"barrier", "delay"})


@dataclass(frozen=True)
class Layer:
    """One layer: its gates, sorted ``(name, (qubit, qubit))`` pairs, and its twirled qubits."""

    gates: tuple[tuple[str, tuple[int, int]], ...]
    qubits: tuple[int, ...]

    @property
    def gate_qubits(self) -> frozenset[int]:
        return frozenset(q for _, pair in self.gates for q in pair)


@dataclass(frozen=True)
class LayeredCircuit:
    """A circuit's instructions in stage order, with the layer each marker closes."""

    circuit: QuantumCircuit
    layers: tuple[Layer, ...]
    # Instruction indices of ``circuit``; ``-1 - k`` marks the end of layer ``k``.
    order: tuple[int, ...]
    # The operation of each layer gate, by name (for building learning circuits).
    operations: dict[str, Instruction]

    def items(self) -> Iterator[int]:
        """Instruction indices in stage order; ``-1 - k`` right after layer ``k``."""
        return iter(self.order)


@functools.lru_cache(maxsize=64)
def _self_inverse_clifford(name: str, matrix: bytes) -> bool:
    del name  # part of the key only
    unitary = np.frombuffer(matrix, dtype=complex).reshape(4, 4)
    square = unitary @ unitary
    if not np.allclose(square, square[0, 0] * np.eye(4), atol=1e-9):
        return False
    try:
        Clifford.from_matrix(unitary)
    except Exception:  # qiskit raises QiskitError for a non-Clifford
        return False
    return True


def is_layer_gate(operation: Instruction) -> bool:
    """Whether ``operation`` is a two-qubit gate a layer can hold (Clifford, its own inverse)."""
    if not isinstance(operation, Gate) or operation.num_qubits != 2 or operation.num_clbits:
        return False
    if operation.is_parameterized():
        return False
    try:
        matrix = np.asarray(operation.to_matrix(), dtype=complex)
    except Exception:  # a gate without a matrix definition
        return False
    return _self_inverse_clifford(operation.name, matrix.tobytes())


def layered_circuit(circuit: QuantumCircuit, strategy: str = "active-accum") -> LayeredCircuit:
    """Split ``circuit`` into stages and layers; see the module's docstring."""
    if strategy not in STRATEGIES:
        raise InputValueError(f"twirling strategy {strategy!r} is not one of {list(STRATEGIES)}")
    num_qubits = circuit.num_qubits
    level = [0] * (num_qubits + circuit.num_clbits)  # per wire: the last layer it waits for
    stages: dict[int, list[int]] = {}
    layer_gates: dict[int, list[int]] = {}
    operations: dict[str, Instruction] = {}
    for index, instruction in enumerate(circuit.data):
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        wires = qubits + [num_qubits + circuit.find_bit(c).index for c in instruction.clbits]
        operation = instruction.operation
        if len(qubits) == 2 and not instruction.clbits and is_layer_gate(operation):
            depth = max(level[q] for q in qubits) + 1
            layer_gates.setdefault(depth, []).append(index)
            for q in qubits:
                level[q] = depth
            operations.setdefault(operation.name, operation)
            continue
        stage = max((level[w] for w in wires), default=0)
        if len(wires) > 1:
            for w in wires:
                level[w] = stage
        stages.setdefault(stage, []).append(index)

    depth_count = max(layer_gates, default=0)
    active_in_circuit = _active(circuit, range(len(circuit.data)))
    seen: set[int] = set()
    order: list[int] = []
    layers: list[Layer] = []
    for depth in range(depth_count + 1):
        if depth > 0 and depth in layer_gates:
            indices = layer_gates[depth]
            order.extend(indices)
            gate_list = []
            for i in indices:
                instruction = circuit.data[i]
                a, b = (circuit.find_bit(q).index for q in instruction.qubits)
                gate_list.append((instruction.operation.name, (a, b)))
            seen.update(q for _, pair in gate_list for q in pair)
            if strategy == "active":
                twirled = {q for _, pair in gate_list for q in pair}
            elif strategy == "active-accum":
                twirled = set(seen)
            elif strategy == "active-circuit":
                twirled = set(active_in_circuit)
            else:
                twirled = set(range(num_qubits))
            order.append(-1 - len(layers))
            layers.append(Layer(tuple(sorted(gate_list)), tuple(sorted(twirled))))
        stage = stages.get(depth, [])
        order.extend(stage)
        seen.update(_active(circuit, stage))
    return LayeredCircuit(circuit, tuple(layers), tuple(order), operations)


def layer_circuit(layer: Layer, operations: dict[str, Instruction]) -> QuantumCircuit:
    """The layer's gates on its twirled qubits, renumbered ``0..k-1`` (a ``LayerError.circuit``)."""
    position = {q: i for i, q in enumerate(layer.qubits)}
    circuit = QuantumCircuit(len(layer.qubits))
    for name, (a, b) in layer.gates:
        circuit.append(operations[name], [position[a], position[b]])
    return circuit


def _active(circuit: QuantumCircuit, indices: range | list[int]) -> set[int]:
    active: set[int] = set()
    for i in indices:
        instruction = circuit.data[i]
        if instruction.operation.name not in _PASSIVE:
            active.update(circuit.find_bit(q).index for q in instruction.qubits)
    return active
