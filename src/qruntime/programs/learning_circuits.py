"""The noise learner's circuits: one block of qubits at one depth, and what its counts say.

A block is qubits simulated together: one gate of a layer, an idle twirled qubit, or a
whole layer when the noise model is not local to gates. Its circuit at ``depth`` pairs
has a slot of single-qubit rotations (bound parameters) before, between and after
``2 depth`` repetitions of its gates: slot 0 prepares the measurement basis and applies
the first Pauli twirl; slot ``s`` undoes twirl ``s`` through the gates (a Clifford, so a
Pauli again) and applies the next; the last undoes the last twirl, turns the basis to Z
and flips the readout at random (readout twirling). Ideally the whole circuit returns
each qubit to its basis state, so every generator's expectation value decays from 1
only by noise. Each (basis, randomization) is one parameter set of the circuit.

The first and last slots are ``rz sx rz sx rz`` (any rotation: ``U3(theta, phi, lambda)``
is ``rz(lambda) sx rz(theta + pi) sx rz(phi + pi)`` up to a phase); the slots between are
Paulis, ``rz sx rz sx`` with angles 0 or pi. Pauli codes are ``x + 2 z``: I 0, X 1, Z 2, Y 3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Instruction, ParameterVector
from qiskit.quantum_info import Clifford, Pauli

__all__ = ["Block", "block_template", "generator_values", "parity_means", "slot_angles"]


@dataclass(frozen=True)
class Block:
    """Qubits simulated together, and the layer's gates among them (local positions)."""

    qubits: tuple[int, ...]
    gates: tuple[tuple[str, tuple[int, int]], ...]


def block_template(
    block: Block, depth: int, width: int, operations: Mapping[str, Instruction]
) -> tuple[QuantumCircuit, list[Any]]:
    """The block's circuit at ``depth`` pairs, with a slot of bound rotations around each layer.

    The first and last slots are any rotation (``rz sx rz sx rz``: preparation, basis
    change, readout flip); the ones between are Paulis (``rz sx rz sx``, angles 0 or pi).
    Parameters are in order of their slots, then qubits, then angles.
    """
    k = len(block.qubits)
    reps = 2 * depth
    count = 3 * k if reps == 0 else 6 * k + 2 * k * (reps - 1)
    parameters = list(ParameterVector(f"slot_{depth}", count))
    angles = iter(parameters)
    circuit = QuantumCircuit(width, k, name=f"learn_{'_'.join(map(str, block.qubits))}_{depth}")
    for slot in range(reps + 1):
        if slot:
            for name, (a, b) in block.gates:
                circuit.append(operations[name], [block.qubits[a], block.qubits[b]])
        full = slot in (0, reps)
        for qubit in block.qubits:
            circuit.rz(next(angles), qubit)
            circuit.sx(qubit)
            circuit.rz(next(angles), qubit)
            circuit.sx(qubit)
            if full:
                circuit.rz(next(angles), qubit)
    circuit.measure(list(block.qubits), range(k))
    return circuit, parameters


def slot_angles(
    block: Block,
    operations: Mapping[str, Instruction],
    twirls: np.ndarray[Any, Any],
    flips: np.ndarray[Any, Any],
    bases: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """The bound angles of every slot: rows (basis, randomization), columns the parameters.

    ``twirls`` is (bases, count, 2 depth, k) Pauli codes, ``flips`` (bases, count, k),
    ``bases`` (bases, k). Slot 0 prepares the basis and applies the first twirl; slot
    ``s`` undoes twirl ``s`` through the layer and applies twirl ``s + 1``; the last
    undoes the last twirl, turns the basis to Z and flips the readout.
    """
    num_bases, count, reps, k = twirls.shape
    rows = num_bases * count
    basis = np.broadcast_to(bases[:, None, :], (num_bases, count, k))
    table = _angle_table()
    if reps == 0:
        return np.asarray(table[_slot_index("flip", flips, basis, None)].reshape(rows, -1))
    first = table[_slot_index("prepare", twirls[:, :, 0, :], basis, None)]
    undone = _conjugate(block, operations, twirls)  # each twirl through the layer
    middle = undone[:, :, :-1, :] ^ twirls[:, :, 1:, :]  # Pauli codes between layers
    last = table[_slot_index("measure", flips, basis, undone[:, :, -1, :])]
    parts = [
        first.reshape(rows, -1),
        _PAULI_SLOT[middle].reshape(rows, -1),
        last.reshape(rows, -1),
    ]
    return np.concatenate(parts, axis=1)


# ``rz(a) sx rz(b) sx`` per Pauli code: I (pi, pi), X (0, 0), Z (0, pi), Y (pi, 0).
_PAULI_SLOT = np.array([[math.pi, math.pi], [0.0, 0.0], [0.0, math.pi], [math.pi, 0.0]])

# Any-rotation slot unitaries, indexed: 0-3 Paulis; then prepare (Pauli, basis); then
# measure (flip, basis, Pauli); then a readout flip alone (depth 0). Built once, as angles.
_PAULI_MATRICES = [
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),  # X (code 1)
    np.array([[1, 0], [0, -1]], dtype=complex),  # Z (code 2)
    np.array([[0, -1j], [1j, 0]], dtype=complex),  # Y (code 3)
]
_HADAMARD = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
_PREPARE = {  # basis code -> V with V|0> the +1 eigenstate
    1: _HADAMARD,
    2: np.eye(2, dtype=complex),
    3: np.array([[1, 0], [0, 1j]], dtype=complex) @ _HADAMARD,
}


def _slot_index(
    kind: str, first: np.ndarray[Any, Any], basis: np.ndarray[Any, Any], pauli: Any
) -> np.ndarray[Any, Any]:
    if kind == "prepare":  # 4 + 3 * pauli + (basis - 1)
        index = 4 + 3 * first + (basis - 1)
    elif kind == "measure":  # 16 + 12 * flip + 4 * (basis - 1) + pauli
        index = 16 + 12 * first + 4 * (basis - 1) + pauli
    else:  # a readout flip alone
        index = 40 + first
    return np.asarray(index, dtype=np.int64)


_ANGLES: np.ndarray[Any, Any] | None = None


def _angle_table() -> np.ndarray[Any, Any]:
    global _ANGLES
    if _ANGLES is None:
        unitaries = list(_PAULI_MATRICES)
        for pauli in range(4):
            for basis in (1, 2, 3):
                unitaries.append(_PAULI_MATRICES[pauli] @ _PREPARE[basis])
        for flip in (0, 1):
            for basis in (1, 2, 3):
                for pauli in range(4):
                    unitaries.append(
                        _PAULI_MATRICES[flip] @ _PREPARE[basis].conj().T @ _PAULI_MATRICES[pauli]
                    )
        unitaries += [_PAULI_MATRICES[0], _PAULI_MATRICES[1]]
        _ANGLES = np.array([_zsxx_angles(u) for u in unitaries])
    return _ANGLES


def _zsxx_angles(unitary: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    """``(lambda, theta + pi, phi + pi)``: the ``rz sx rz sx rz`` of ``U3(theta, phi, lambda)``."""
    a, b, c, d = unitary[0, 0], unitary[0, 1], unitary[1, 0], unitary[1, 1]
    theta = 2 * math.atan2(abs(c), abs(a))
    if abs(a) > 1e-9 and abs(c) > 1e-9:
        phi, lam = float(np.angle(c) - np.angle(a)), float(np.angle(-b) - np.angle(a))
    elif abs(a) > 1e-9:  # diagonal
        phi, lam = float(np.angle(d) - np.angle(a)), 0.0
    else:  # anti-diagonal
        phi, lam = float(np.angle(c) - np.angle(-b)), 0.0
    return float(lam), float(theta + math.pi), float(phi + math.pi)


def _conjugate(
    block: Block, operations: Mapping[str, Instruction], paulis: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Pauli codes (..., k) conjugated by the block's gates (signs dropped)."""
    out = paulis.copy()
    for name, (a, b) in block.gates:
        table = _conjugation_table(name, operations[name])
        index = paulis[..., a] + 4 * paulis[..., b]
        mapped = table[index]
        out[..., a] = mapped % 4
        out[..., b] = mapped // 4
    return out


_CONJUGATIONS: dict[str, np.ndarray[Any, Any]] = {}


def _conjugation_table(name: str, operation: Instruction) -> np.ndarray[Any, Any]:
    """For ``pa + 4 pb`` (codes on the gate's first and second qubit): the conjugated pair."""
    table = _CONJUGATIONS.get(name)
    if table is None:
        clifford = Clifford(operation)
        table = np.zeros(16, dtype=np.int64)
        for index in range(16):
            codes = (index % 4, index // 4)
            z = np.array([c >> 1 for c in codes], dtype=bool)
            x = np.array([c & 1 for c in codes], dtype=bool)
            image = Pauli((z, x)).evolve(clifford, frame="s")
            table[index] = (
                int(image.x[0]) + 2 * int(image.z[0]) + 4 * (int(image.x[1]) + 2 * int(image.z[1]))
            )
        _CONJUGATIONS[name] = table
    return table


def parity_means(counts: Mapping[str, int], k: int) -> np.ndarray[Any, Any]:
    """``M[i, j]`` = mean of ``(-1)^(bit_i + bit_j)``, ``M[i, i]`` = mean of ``(-1)^bit_i``."""
    outcomes = np.array([int(key, 16) for key in counts], dtype=np.int64)
    weights = np.array(list(counts.values()), dtype=float)
    signs = 1 - 2 * ((outcomes[:, None] >> np.arange(k)) & 1)  # (outcomes, k)
    total = weights.sum()
    pairs = (signs * weights[:, None]).T @ signs / total
    singles = weights @ signs / total
    pairs[np.arange(k), np.arange(k)] = singles
    return np.asarray(pairs, dtype=float)


def generator_values(
    generators: Any,
    bases: np.ndarray[Any, Any],
    blocks: list[Block],
    rows: list[np.ndarray[Any, Any]],
    local: Mapping[int, int],
    parities: Mapping[tuple[int, int], np.ndarray[Any, Any]],
    num_depths: int,
    count: int,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each generator's mean value and its variance, per depth, over the compatible bases.

    A generator on two blocks is the product of its parts: blocks are independent.
    ``rows[block][basis]`` is the block's own basis row for a global basis.
    """
    where: dict[int, tuple[int, int]] = {}  # local qubit -> (block, position in block)
    for b_index, block in enumerate(blocks):
        for j, q in enumerate(block.qubits):
            where[local[q]] = (b_index, j)
    codes = generators.x.astype(np.int64) + 2 * generators.z.astype(np.int64)  # (G, n)
    values = np.zeros((len(codes), num_depths))
    variances = np.zeros_like(values)
    randomization = np.arange(count)
    for g, row in enumerate(codes):
        support = np.flatnonzero(row)
        compatible = np.flatnonzero(np.all(bases[:, support] == row[support], axis=1))
        by_block: dict[int, list[int]] = {}
        for qubit in support:
            part, position = where[int(qubit)]
            by_block.setdefault(part, []).append(position)
        for d in range(num_depths):
            estimate = np.ones((len(compatible), count))
            for part, positions in by_block.items():
                own = rows[part][compatible][:, None] * count + randomization[None, :]
                estimate *= parities[(part, d)][own, positions[0], positions[-1]]
            samples = estimate.reshape(-1)
            values[g, d] = samples.mean()
            variances[g, d] = samples.var(ddof=1) / len(samples) if len(samples) > 1 else 1.0
    return values, variances
