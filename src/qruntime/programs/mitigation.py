"""Readout-error mitigation from a tensored, per-qubit calibration.

Each physical qubit gets a 2x2 assignment matrix ``A[measured, prepared]``,
estimated from two circuits: every calibrated qubit prepared in ``|0>``, then
every one in ``|1>``. Two circuits cover any number of qubits, so calibration
scales; the cost is that correlated readout errors are not modelled.

Calibrations are cached per (backend name, physical qubit) in the process, so
a warm worker calibrates each qubit of a backend once: a later request for a
different set of qubits only runs the calibration for the qubits not seen yet.

Usage::

    calibration = cached_readout_calibration(backend, [0, 1], seed_simulator=7)
    mapping = final_measurement_mapping(transpiled_circuit)  # physical -> clbit
    quasi = calibration.mitigate(counts, mapping)              # int outcome -> quasi-probability
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager

from qruntime.backends.compact import run_circuits
from qruntime.errors import InputValueError

__all__ = [
    "DEFAULT_CALIBRATION_SHOTS",
    "ReadoutCalibration",
    "cached_readout_calibration",
    "calibrate_readout",
    "clear_calibration_cache",
    "final_measurement_mapping",
    "outcome_to_int",
    "quasiprobabilities_to_hex",
]

DEFAULT_CALIBRATION_SHOTS = 8192

# Above this many mitigated bits the dense 2**k tensor gets large; beyond it the
# inverse is solved only on the outcomes actually observed (as M3 does).
_DENSE_LIMIT = 12
# The observed-subspace solve builds an n x n matrix: refuse what would not fit.
_SUBSPACE_LIMIT = 8192

_NDArray = np.ndarray[Any, np.dtype[np.float64]]

_cache_lock = threading.Lock()
_matrix_cache: dict[tuple[str, int], _NDArray] = {}


class ReadoutCalibration:
    """Per-qubit assignment matrices for some physical qubits of one backend."""

    def __init__(
        self, backend_name: str, matrices: Mapping[int, _NDArray], *, shots: int = 0
    ) -> None:
        for qubit, matrix in matrices.items():
            if matrix.shape != (2, 2):
                raise ValueError(f"assignment matrix of qubit {qubit} is not 2x2")
        self.backend_name = backend_name
        self.shots = shots
        self._matrices = {int(q): np.asarray(m, dtype=float) for q, m in matrices.items()}

    def __repr__(self) -> str:
        return f"ReadoutCalibration({self.backend_name!r}, qubits={list(self.qubits)})"

    @property
    def qubits(self) -> tuple[int, ...]:
        return tuple(sorted(self._matrices))

    def assignment_matrix(self, qubit: int) -> _NDArray:
        """``A[measured, prepared]`` for one physical qubit (columns sum to 1)."""
        return self._matrices[qubit].copy()

    def readout_error(self, qubit: int) -> float:
        """Mean probability of reading the wrong bit on ``qubit``."""
        matrix = self._matrices[qubit]
        return float((matrix[1, 0] + matrix[0, 1]) / 2)

    def mitigate(self, counts: Mapping[Any, float], mapping: Mapping[int, int]) -> dict[int, float]:
        """Quasi-probabilities of each outcome with readout error undone.

        ``counts`` keys may be ints, hex (``"0x3"``) or bit strings; ``mapping`` is
        physical qubit -> classical bit for the final measurements. Bits not in
        ``mapping`` pass through unchanged. The values sum to 1 and may be negative.
        """
        missing = sorted(set(mapping) - set(self._matrices))
        if missing:
            raise InputValueError(f"qubits {missing} of {self.backend_name} are not calibrated")
        total = float(sum(counts.values()))
        if total <= 0:
            return {}
        qubits = sorted(mapping)
        clbits = [mapping[q] for q in qubits]
        inverses = [_safe_inverse(self._matrices[q]) for q in qubits]
        mask = 0
        for clbit in clbits:
            mask |= 1 << clbit

        # Mitigated bits are independent of the rest, so group by the other bits.
        groups: dict[int, dict[int, float]] = {}
        for key, value in counts.items():
            outcome = outcome_to_int(key)
            local = 0
            for j, clbit in enumerate(clbits):
                local |= ((outcome >> clbit) & 1) << j
            group = groups.setdefault(outcome & ~mask, {})
            group[local] = group.get(local, 0.0) + float(value) / total

        quasi: dict[int, float] = {}
        for rest, probabilities in groups.items():
            if len(clbits) <= _DENSE_LIMIT:
                local_quasi = _apply_dense(probabilities, inverses)
            else:
                local_quasi = _solve_subspace(probabilities, [self._matrices[q] for q in qubits])
            for local, value in local_quasi.items():
                outcome = rest
                for j, clbit in enumerate(clbits):
                    outcome |= ((local >> j) & 1) << clbit
                quasi[outcome] = quasi.get(outcome, 0.0) + value
        return quasi


#: Qubits calibrated together: few enough that Aer simulates each circuit on its own
#: qubits only (readout errors are per qubit, so the grouping changes nothing).
CALIBRATION_GROUP = 8


def calibrate_readout(
    backend: Any,
    qubits: Iterable[int],
    *,
    shots: int = DEFAULT_CALIBRATION_SHOTS,
    seed_simulator: int | None = None,
) -> ReadoutCalibration:
    """Measure the assignment matrices of ``qubits`` on ``backend`` (two circuits per
    group of at most `CALIBRATION_GROUP` qubits, run together).

    Only the calibrated qubits are measured, a group at a time: measuring every device
    qubit at once would make Aer simulate all of them. Each qubit's matrix comes from
    its own bit's counts, so groups give the same matrices as one wide circuit.
    """
    physical = sorted(set(int(q) for q in qubits))
    width = backend.num_qubits
    bad = [q for q in physical if not 0 <= q < width]
    if bad:
        raise InputValueError(f"qubits {bad} are not on backend {backend.name} ({width} qubits)")
    if not physical:
        return ReadoutCalibration(backend.name, {}, shots=shots)
    groups = [
        physical[start : start + CALIBRATION_GROUP]
        for start in range(0, len(physical), CALIBRATION_GROUP)
    ]
    circuits = []
    for group in groups:
        prepared_zero = QuantumCircuit(width, len(group), name="readout_cal_0")
        prepared_zero.measure(group, range(len(group)))
        prepared_one = QuantumCircuit(width, len(group), name="readout_cal_1")
        prepared_one.x(group)
        prepared_one.measure(group, range(len(group)))
        circuits += [_to_backend(c, backend) for c in (prepared_zero, prepared_one)]

    options: dict[str, Any] = {"shots": shots}
    if seed_simulator is not None and _has_option(backend, "seed_simulator"):
        options["seed_simulator"] = seed_simulator
    result = run_circuits(backend, circuits, **options)
    matrices: dict[int, _NDArray] = {}
    for index, group in enumerate(groups):
        ones_given_zero = _ones_per_bit(result.data(2 * index)["counts"], len(group))
        ones_given_one = _ones_per_bit(result.data(2 * index + 1)["counts"], len(group))
        for j, qubit in enumerate(group):
            p10 = ones_given_zero[j]  # read 1 having prepared 0
            p01 = 1.0 - ones_given_one[j]  # read 0 having prepared 1
            matrices[qubit] = np.array([[1.0 - p10, p01], [p10, 1.0 - p01]])
    return ReadoutCalibration(backend.name, matrices, shots=shots)


def cached_readout_calibration(
    backend: Any,
    qubits: Iterable[int],
    *,
    shots: int = DEFAULT_CALIBRATION_SHOTS,
    seed_simulator: int | None = None,
) -> ReadoutCalibration:
    """Like :func:`calibrate_readout`, but calibrates only qubits not cached yet.

    The cache key is the backend's name, so names must identify a backend (the
    server's catalogue guarantees that); see :func:`clear_calibration_cache`.
    """
    physical = sorted(set(int(q) for q in qubits))
    with _cache_lock:
        missing = [q for q in physical if (backend.name, q) not in _matrix_cache]
        if missing:
            fresh = calibrate_readout(backend, missing, shots=shots, seed_simulator=seed_simulator)
            for qubit in missing:
                _matrix_cache[(backend.name, qubit)] = fresh.assignment_matrix(qubit)
        matrices = {q: _matrix_cache[(backend.name, q)] for q in physical}
    return ReadoutCalibration(backend.name, matrices, shots=shots)


def clear_calibration_cache(backend_name: str | None = None) -> None:
    """Forget cached calibrations: all of them, or those of one backend."""
    with _cache_lock:
        if backend_name is None:
            _matrix_cache.clear()
        else:
            for key in [k for k in _matrix_cache if k[0] == backend_name]:
                del _matrix_cache[key]


def final_measurement_mapping(circuit: QuantumCircuit) -> dict[int, int]:
    """Qubit index -> classical bit index of the measurements nothing follows.

    For a circuit transpiled onto a device the qubit index is the physical
    qubit. A measurement followed by another operation on its qubit or its bit
    is mid-circuit and left out (its bit is then not mitigated).
    """
    mapping: dict[int, int] = {}
    touched_qubits: set[int] = set()
    touched_clbits: set[int] = set()
    for instruction in reversed(circuit.data):
        name = instruction.operation.name
        if name == "barrier":
            continue
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        clbits = [circuit.find_bit(c).index for c in instruction.clbits]
        if name == "measure":
            qubit, clbit = qubits[0], clbits[0]
            if qubit not in touched_qubits and clbit not in touched_clbits:
                mapping[qubit] = clbit
        touched_qubits.update(qubits)
        touched_clbits.update(clbits)
    return dict(sorted(mapping.items()))


def outcome_to_int(key: Any) -> int:
    """An outcome as an int, from an int, a hex string or a bit string (spaces allowed)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str):
        text = key.replace(" ", "")
        try:
            if text.startswith("0x"):
                return int(text, 16)
            return int(text.removeprefix("0b"), 2)
        except ValueError:
            pass
    raise InputValueError(f"{key!r} is not an outcome: use an int, hex '0x..' or bits '0101'")


def quasiprobabilities_to_hex(quasi: Mapping[int, float]) -> dict[str, float]:
    """Outcomes as hex keys (like Aer's counts), sorted by outcome."""
    return {hex(outcome): float(value) for outcome, value in sorted(quasi.items())}


def _safe_inverse(matrix: _NDArray) -> _NDArray:
    try:
        inverse = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        # Readout no better than a coin toss cannot be undone: use the pseudo-inverse.
        inverse = np.linalg.pinv(matrix)
    return np.asarray(inverse, dtype=np.float64)


def _apply_dense(probabilities: Mapping[int, float], inverses: list[_NDArray]) -> dict[int, float]:
    k = len(inverses)
    vector = np.zeros(2**k)
    for local, value in probabilities.items():
        vector[local] = value
    # In C order the first axis is the most significant bit: bit j is axis k-1-j.
    tensor = vector.reshape((2,) * k) if k else vector
    for j, inverse in enumerate(inverses):
        axis = k - 1 - j
        tensor = np.moveaxis(np.tensordot(inverse, tensor, axes=([1], [axis])), 0, axis)
    flat = tensor.reshape(-1)
    return {i: float(v) for i, v in enumerate(flat) if abs(v) > 1e-12}


def _solve_subspace(
    probabilities: Mapping[int, float], matrices: list[_NDArray]
) -> dict[int, float]:
    outcomes = np.array(sorted(probabilities), dtype=np.int64)
    if len(outcomes) > _SUBSPACE_LIMIT:
        raise InputValueError(
            f"{len(outcomes)} distinct outcomes on {len(matrices)} mitigated bits: "
            f"too many to mitigate (at most {_SUBSPACE_LIMIT})"
        )
    observed = np.array([probabilities[int(o)] for o in outcomes])
    # A[i, j] = P(read outcome i | prepared outcome j), restricted to what was seen.
    reduced = np.ones((len(outcomes), len(outcomes)))
    for j, matrix in enumerate(matrices):
        bits = (outcomes >> j) & 1
        reduced *= matrix[bits[:, None], bits[None, :]]
    reduced /= reduced.sum(axis=0, keepdims=True)
    solution = np.linalg.solve(reduced, observed)
    return {int(o): float(v) for o, v in zip(outcomes, solution, strict=True)}


def _ones_per_bit(counts: Mapping[str, int], num_bits: int) -> list[float]:
    total = sum(counts.values())
    ones = [0] * num_bits
    for key, count in counts.items():
        outcome = outcome_to_int(key)
        for j in range(num_bits):
            if (outcome >> j) & 1:
                ones[j] += count
    return [n / total for n in ones]


def _has_option(backend: Any, name: str) -> bool:
    return hasattr(backend, "options") and hasattr(backend.options, name)


def _to_backend(circuit: QuantumCircuit, backend: Any) -> QuantumCircuit:
    """The calibration circuit as the backend accepts it, on the same physical qubits."""
    target = getattr(backend, "target", None)
    if target is not None and all(
        target.instruction_supported(
            inst.operation.name, tuple(circuit.find_bit(q).index for q in inst.qubits)
        )
        for inst in circuit.data
    ):
        return circuit
    # Translate only: a trivial layout keeps each qubit where it was asked for.
    manager = generate_preset_pass_manager(
        optimization_level=0,
        backend=backend,
        initial_layout=list(range(circuit.num_qubits)),
        layout_method="trivial",
    )
    translated: QuantumCircuit = manager.run(circuit)
    return translated
