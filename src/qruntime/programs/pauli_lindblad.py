"""Sparse Pauli-Lindblad noise models: their generators, how they are fitted, how they are sampled.

The model of a layer on ``n`` qubits (van den Berg et al., Nature Physics 19, 1116
(2023)) has a generator for each one-qubit Pauli on each qubit and each two-qubit
Pauli on each coupled pair; the channel is ``exp(sum_k r_k (P_k rho P_k - rho))``.
A Pauli ``Q`` then keeps the fidelity ``f_Q = exp(-2 sum_k r_k [Q, P_k anticommute])``.

Learning measures, for each generator ``Q``, the decay of ``<Q>`` over repeated pairs of
the twirled layer: ``A * F_Q ** depth``, where ``A`` holds the state-preparation and
readout error and ``F_Q = f_Q f_Q'`` (``Q'`` is ``Q`` conjugated by the layer, which is
its own inverse). Pairs cannot tell ``f_Q`` from ``f_Q'``, so both get ``sqrt(F_Q)``
(the paper's symmetry assumption), and the rates solve the anticommutation system by
non-negative least squares.

Paulis are ``(z, x)`` bit pairs; a one-qubit Pauli's code is ``x + 2 z`` (I 0, X 1,
Z 2, Y 3), so codes multiply by XOR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.quantum_info import PauliList

from qruntime.errors import InputValueError

__all__ = [
    "fit_decays",
    "measurement_bases",
    "rates_from_fidelities",
    "sample_flips",
    "sparse_generators",
]

_BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
_IntArray = np.ndarray[Any, np.dtype[np.int64]]

# A strength-2 orthogonal array of 9 runs, 4 columns, 3 levels: any two columns show
# every pair of levels. Qubits coloured c read column c, so every coupled pair is
# measured in all 9 two-qubit bases.
_ORTHOGONAL_ARRAY = np.array(
    [[a, b, (a + b) % 3, (a + 2 * b) % 3] for a in range(3) for b in range(3)]
)
_BASIS_CODES = np.array([1, 3, 2])  # level -> Pauli code: X, Y, Z


def sparse_generators(num_qubits: int, edges: Sequence[tuple[int, int]]) -> PauliList:
    """The one-qubit Paulis of every qubit, then the two-qubit Paulis of every edge."""
    labels: list[str] = []

    def label(paulis: dict[int, str]) -> str:
        return "".join(paulis.get(q, "I") for q in reversed(range(num_qubits)))

    for q in range(num_qubits):
        labels.extend(label({q: p}) for p in "XYZ")
    for a, b in edges:
        labels.extend(label({a: pa, b: pb}) for pa in "XYZ" for pb in "XYZ")
    return (
        PauliList(labels)
        if labels
        else PauliList.from_symplectic(
            np.zeros((0, num_qubits), dtype=bool), np.zeros((0, num_qubits), dtype=bool)
        )
    )


def measurement_bases(num_qubits: int, edges: Sequence[tuple[int, int]]) -> _IntArray:
    """Bases (rows of Pauli codes, one per qubit) that measure every generator at least once.

    Qubits are coloured so that coupled ones differ; up to four colours fit the
    orthogonal array, which gives at most 9 bases.
    """
    neighbours: dict[int, set[int]] = {q: set() for q in range(num_qubits)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    colour: dict[int, int] = {}
    for q in sorted(neighbours, key=lambda q: -len(neighbours[q])):
        used = {colour[n] for n in neighbours[q] if n in colour}
        colour[q] = next(c for c in range(num_qubits + 1) if c not in used)
    if colour and max(colour.values()) >= _ORTHOGONAL_ARRAY.shape[1]:
        raise InputValueError(
            "the layer's coupled qubits need more than 4 colours: qruntime cannot pick "
            "9 measurement bases for it"
        )
    columns = [colour[q] for q in range(num_qubits)]
    levels = np.unique(_ORTHOGONAL_ARRAY[:, columns], axis=0)
    return np.asarray(_BASIS_CODES[levels], dtype=np.int64)


def fit_decays(
    depths: Sequence[int], values: _FloatArray, variances: _FloatArray
) -> tuple[_FloatArray, _FloatArray]:
    """Fit ``values[p, d] ~ A_p * F_p ** depths[d]``; returns ``(F, A)``, ``F`` in ``[0, 1]``.

    A weighted least-squares line through ``log values``; points lost in their noise
    (below three standard deviations) are left out. With fewer than two usable
    depths a Pauli is taken as noiseless when its value holds up, else as fully decayed.
    """
    x = np.asarray(depths, dtype=float)
    count = values.shape[0]
    fidelities = np.ones(count)
    amplitudes = np.ones(count)
    for p in range(count):
        y, var = values[p], np.maximum(variances[p], 1e-8)
        usable = y > 3 * np.sqrt(var)
        if np.count_nonzero(usable) < 2 or len(np.unique(x[usable])) < 2:
            fidelities[p] = 1.0 if usable.all() else 0.0
            continue
        weights = y[usable] ** 2 / var[usable]  # var(log y) ~ var(y) / y**2
        slope, intercept = np.polyfit(x[usable], np.log(y[usable]), 1, w=np.sqrt(weights))
        fidelities[p] = min(1.0, float(np.exp(slope)))
        amplitudes[p] = float(np.exp(intercept))
    return fidelities, amplitudes


def rates_from_fidelities(generators: PauliList, pair_fidelities: _FloatArray) -> _FloatArray:
    """Non-negative rates of ``generators`` from the pair fidelity of each of them.

    ``f_Q = sqrt(F_Q)`` and ``-log f_Q = 2 sum_k r_k [Q, P_k anticommute]``.
    """
    from scipy.optimize import nnls  # a qiskit dependency, preloaded by the workers

    if len(generators) == 0:
        return np.zeros(0)
    floor = np.exp(-50.0)  # a fully decayed Pauli: a large, finite rate
    targets = -0.25 * np.log(np.clip(pair_fidelities, floor, 1.0))
    z = generators.z.astype(np.int64)
    x = generators.x.astype(np.int64)
    anticommute = ((z @ x.T + x @ z.T) % 2).astype(float)
    rates, _ = nnls(anticommute, targets)
    return np.asarray(rates, dtype=float)


def sample_flips(
    amounts: _FloatArray, rng: np.random.Generator, count: int
) -> tuple[_BoolArray, float]:
    """Which generators act in each of ``count`` samples, and the weight of every sample.

    ``amounts[k]`` is how much of generator ``k``'s rate to add (> 0, amplification) or
    remove (< 0, cancellation). Either way generator ``k`` acts with probability
    ``(1 - exp(-2 |a_k|)) / 2``; removing is a quasi-probability, so a sample's sign is
    ``(-1) ** (removed generators acting)`` and its weight that sign times
    ``gamma = exp(2 sum |a_k| over removed k)`` (returned).
    """
    amounts = np.asarray(amounts, dtype=float)
    probability = (1 - np.exp(-2 * np.abs(amounts))) / 2
    flips = rng.random((count, len(amounts))) < probability
    gamma = float(np.exp(2 * np.sum(-amounts[amounts < 0])))
    return flips, gamma
