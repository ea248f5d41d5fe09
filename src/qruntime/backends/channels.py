"""Noise-model errors merged into one Kraus channel each, for Aer to load cheaply.

``NoiseModel.from_backend`` builds a gate error as a depolarizing mixture composed
with thermal relaxation: a two-qubit gate error is 48 circuits of Pauli, Kraus and
reset instructions. Aer converts every one of them to a superoperator inside each
``run()``: on a 5-qubit model that cost 16 ms, against 1 ms of simulation. One Kraus
channel per error is the same channel and costs Aer almost nothing to load.

Qiskit's own conversion (``Kraus(error)``) goes through a ``SuperOp`` per
instruction and takes about 100 ms per two-qubit error; here the Kraus operators are
multiplied out with numpy and reduced to the fewest through the Choi matrix (about
1 ms), so building a compact simulator stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Instruction
    from qiskit_aer.noise import NoiseModel, QuantumError

__all__ = ["error_kraus_operators", "kraus_error", "merge_into_kraus"]

_Matrix = np.ndarray[Any, Any]  # complex

# Instructions that make an error more than a mixture of unitaries.
_NON_UNITARY = frozenset({"kraus", "reset", "superop"})
# Choi eigenvalues below this (relative to the largest) are rounding, not operators.
_RANK_TOLERANCE = 1e-12
_PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
_RESET = (
    np.array([[1, 0], [0, 0]], dtype=complex),
    np.array([[0, 1], [0, 0]], dtype=complex),
)


def merge_into_kraus(noise: NoiseModel) -> int:
    """Replace, in place, each gate error of ``noise`` that is not a mixture of unitaries.

    Each becomes one Kraus channel. Mixtures of unitaries (Pauli-only noise) are left
    alone, so Aer can still pick its stabilizer method for them. Returns how many
    errors were replaced.

    Reads Aer's private table of local errors: re-adding an error through the public
    ``add_quantum_error`` would compose it with the old one, not replace it. Should that
    table change shape, nothing is replaced (runs are only slower); a test catches that.
    """
    from qiskit_aer.noise import QuantumError

    table = getattr(noise, "_local_quantum_errors", None)
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        return 0
    merged: dict[int, QuantumError] = {}  # the same error object is often shared
    replaced = 0
    for by_qubits in table.values():
        for qubits, error in by_qubits.items():
            if not isinstance(error, QuantumError) or not _is_non_unitary(error):
                continue
            new = merged.get(id(error))
            if new is None:
                new = merged[id(error)] = _as_kraus_error(error)
            by_qubits[qubits] = new
            replaced += 1
    return replaced


def kraus_error(error: QuantumError) -> QuantumError:
    """``error`` as one Kraus channel, or ``error`` itself when it is a mixture of unitaries.

    What `merge_into_kraus` does to each error of a noise model, for one error.
    """
    return _as_kraus_error(error) if _is_non_unitary(error) else error


def error_kraus_operators(error: QuantumError) -> list[_Matrix]:
    """The fewest Kraus operators of ``error``'s channel (each ``2**n x 2**n``)."""
    n = error.num_qubits
    dim = 2**n
    weighted: list[_Matrix] = []
    memo: dict[Any, _Matrix] = {}
    for circuit, probability in zip(error.circuits, error.probabilities, strict=True):
        if probability <= 0:
            continue
        weighted.append(np.sqrt(probability) * _circuit_kraus(circuit, n, memo))
    stacked = np.concatenate(weighted).reshape(-1, dim * dim)
    # Choi matrix (up to a reshuffle) = sum of vec(K) vec(K)^dagger; its eigenvectors
    # scaled by sqrt(eigenvalue) are the canonical, fewest Kraus operators.
    choi = stacked.T @ stacked.conj()
    values, vectors = np.linalg.eigh(choi)
    keep = values > _RANK_TOLERANCE * max(float(values[-1]), 1.0)
    return [
        np.sqrt(value) * vectors[:, i].reshape(dim, dim)
        for i, value in enumerate(values)
        if keep[i]
    ]


def _as_kraus_error(error: QuantumError) -> QuantumError:
    from qiskit.quantum_info import Kraus
    from qiskit_aer.noise import QuantumError

    try:
        operators = error_kraus_operators(error)
    except _Unsupported:
        return QuantumError(Kraus(error))  # Qiskit's slower, general conversion
    return QuantumError(Kraus(operators))


def _is_non_unitary(error: QuantumError) -> bool:
    return any(
        inst.operation.name in _NON_UNITARY for circuit in error.circuits for inst in circuit.data
    )


class _Unsupported(Exception):
    """An instruction this module cannot turn into Kraus operators itself."""


def _circuit_kraus(circuit: QuantumCircuit, n: int, memo: dict[Any, _Matrix]) -> _Matrix:
    """Kraus operators of one error circuit on ``n`` qubits, as an array (m, d, d)."""
    dim = 2**n
    ops: _Matrix = np.eye(dim, dtype=complex)[None, :, :]
    for inst in circuit.data:
        operation = inst.operation
        qargs = [circuit.find_bit(q).index for q in inst.qubits]
        # The circuits of one error repeat a few instructions many times over.
        params = id(operation) if operation.name == "kraus" else repr(operation.params)
        key = (operation.name, params, tuple(qargs))
        local = memo.get(key)
        if local is None:
            expanded = [_expand(k, qargs, n) for k in _instruction_kraus(operation)]
            local = memo[key] = np.asarray(expanded)
        if len(local) == 1 and operation.name == "id":
            continue
        # Every new operator after every operator so far: (b, d, d) x (a, d, d) -> (b*a, d, d).
        ops = np.einsum("bij,ajk->baik", local, ops).reshape(-1, dim, dim)
    return ops


def _instruction_kraus(operation: Instruction) -> list[_Matrix]:
    name = operation.name
    if name == "kraus":
        return [np.asarray(k, dtype=complex) for k in operation.params]
    if name == "pauli":
        # Label characters run from the highest qubit down, as kron wants them.
        label = str(operation.params[0])
        if not set(label) <= _PAULI.keys():
            raise _Unsupported(f"pauli {label}")
        matrix: _Matrix = np.ones((1, 1), dtype=complex)
        for char in label:
            matrix = np.kron(matrix, _PAULI[char])
        return [matrix]
    if name == "reset":
        if operation.num_qubits != 1:
            raise _Unsupported(name)
        return list(_RESET)
    if name in ("id", "delay", "barrier"):
        return [np.eye(2**operation.num_qubits, dtype=complex)]
    if getattr(operation, "num_clbits", 0) or name in ("measure", "superop"):
        raise _Unsupported(name)
    try:
        return [np.asarray(operation.to_matrix(), dtype=complex)]
    except Exception as exc:  # a gate without a matrix
        raise _Unsupported(name) from exc


def _expand(matrix: _Matrix, qargs: list[int], n: int) -> _Matrix:
    """``matrix`` on qubits ``qargs`` of ``n`` (Qiskit's little-endian order) as a full matrix."""
    if qargs == list(range(n)):
        return matrix
    rest = [q for q in range(n) if q not in qargs]
    # kron(identity, matrix) acts with matrix on the low positions: position p holds
    # qubit order[p]. Reshaped, tensor axis a is position n-1-a; permute to qubits.
    full = np.kron(np.eye(2 ** len(rest), dtype=complex), matrix)
    order = qargs + rest
    axes = [n - 1 - order.index(n - 1 - a) for a in range(n)]
    tensor = full.reshape([2] * (2 * n)).transpose(axes + [n + a for a in axes])
    return tensor.reshape(2**n, 2**n)
