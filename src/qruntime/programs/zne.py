"""Zero-noise extrapolation: amplify noise by unitary folding, then extrapolate to zero.

Folding must happen on the circuit as it will run, after transpilation: folds
made before it are cancelled by the optimiser (``G G^dag`` is an identity), and
the extrapolation then does nothing. Inverses the backend lacks (``sxdg``...)
are translated into its basis without any optimisation pass.

Amplifiers (IBM's names, plus one):

- ``gate_folding``: each 2-qubit gate ``G`` becomes ``G (G^dag G)^k``; when the
  factor needs a fraction of the gates folded once more, they are picked at
  random (seeded). ``gate_folding_front`` / ``_back`` pick the first / last ones.
  A circuit without 2-qubit gates has its 1-qubit gates folded instead.
- ``global_folding``: the whole circuit ``U`` becomes ``U (U^dag U)^k``, plus a
  partial fold of its last gates for fractional factors.

Extrapolators fit the expectation values at the noise factors and evaluate the
fit at 0: ``linear`` and ``polynomial_degree_d`` (least squares, ``quadratic``
= degree 2), ``exponential`` (``a e^{-bx}``, a linear fit of ``log |y|``),
``double_exponential`` (a non-linear fit, 4 or more factors). A list of them is
tried in order, per value, and the first that succeeds is used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Gate
from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
from qiskit.transpiler import PassManager, Target
from qiskit.transpiler.passes import BasisTranslator

from qruntime.errors import InputValueError

__all__ = ["ExtrapolationResult", "extrapolate", "fold_circuit", "translate_to_target"]

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
_NON_UNITARY = frozenset({"measure", "reset", "barrier", "delay"})


def fold_circuit(
    circuit: QuantumCircuit,
    factor: float,
    *,
    amplifier: str = "gate_folding",
    target: Target | None = None,
    seed: int | None = None,
) -> tuple[QuantumCircuit, float]:
    """``circuit`` with its noise amplified about ``factor`` times, and the factor reached.

    ``circuit`` is the transpiled circuit without final measurements; the result
    keeps to ``target``'s basis when it is given.
    """
    if factor < 1:
        raise InputValueError(f"a noise factor must be >= 1, not {factor}")
    if amplifier == "global_folding" and any(
        inst.operation.name in ("measure", "reset") for inst in circuit.data
    ):
        raise InputValueError("global folding needs a circuit without measurements or resets")
    if math.isclose(factor, 1.0):
        return circuit, 1.0
    if amplifier == "global_folding":
        folded, reached = _fold_globally(circuit, factor)
    elif amplifier in ("gate_folding", "gate_folding_front", "gate_folding_back"):
        folded, reached = _fold_gates(circuit, factor, amplifier, seed)
    else:
        raise InputValueError(f"unknown noise amplifier {amplifier!r}")
    return translate_to_target(folded, target), reached


@dataclass(frozen=True)
class ExtrapolationResult:
    """Zero-noise values with their standard deviations, and each extrapolator's curve.

    ``evs`` and ``stds`` have the values' leading shape; ``evs_extrapolated`` and
    ``stds_extrapolated`` add (extrapolator, evaluation point) axes, NaN where
    that extrapolator failed; ``chosen`` names the extrapolator used per value.
    """

    evs: _FloatArray
    stds: _FloatArray
    evs_extrapolated: _FloatArray
    stds_extrapolated: _FloatArray
    chosen: np.ndarray[Any, np.dtype[np.object_]]


def extrapolate(
    factors: Sequence[float],
    values: _FloatArray,
    stds: _FloatArray,
    extrapolators: Sequence[str],
    *,
    evaluate_at: Sequence[float] | None = None,
    bound: _FloatArray | float = np.inf,
) -> ExtrapolationResult:
    """Extrapolate ``values`` (shape ``(..., len(factors))``) to zero noise.

    An extrapolator fails for a value when it cannot fit (too few factors, mixed
    signs for ``exponential``) or lands beyond ``bound`` (the observable's norm):
    the next one in ``extrapolators`` is then tried; when none succeeds, linear
    is used regardless.
    """
    x = np.asarray(factors, dtype=float)
    values = np.asarray(values, dtype=float)
    stds = np.asarray(stds, dtype=float)
    points = np.asarray([0.0, *x] if evaluate_at is None else evaluate_at, dtype=float)
    names = _expand(extrapolators)
    shape = values.shape[:-1]
    bounds = np.broadcast_to(np.asarray(bound, dtype=float), shape)
    evs = np.zeros(shape)
    out_stds = np.zeros(shape)
    curves = np.full((*shape, len(extrapolators), len(points)), np.nan)
    curve_stds = np.full_like(curves, np.nan)
    chosen = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        y, s = values[index], stds[index]
        for k, name in enumerate(extrapolators):
            fit = _fit(name, x, y, s, points)
            if fit is not None:
                curves[(*index, k)], curve_stds[(*index, k)] = fit
        picked = None
        for name in names:
            fit = _fit(name, x, y, s, np.array([0.0]))
            if fit is not None and abs(fit[0][0]) <= bounds[index] * (1 + 1e-9):
                picked = (name, fit)
                break
        if picked is None:
            fallback = _fit("linear", x, y, s, np.array([0.0]))
            assert fallback is not None  # two or more distinct factors always fit a line
            picked = ("linear", fallback)
        chosen[index] = picked[0]
        evs[index] = picked[1][0][0]
        out_stds[index] = picked[1][1][0]
    return ExtrapolationResult(evs, out_stds, curves, curve_stds, chosen)


# --- folding ------------------------------------------------------------------------------


def _foldable(circuit: QuantumCircuit) -> list[int]:
    gates = [
        i
        for i, inst in enumerate(circuit.data)
        if isinstance(inst.operation, Gate) and inst.operation.name not in _NON_UNITARY
    ]
    two_qubit = [i for i in gates if len(circuit.data[i].qubits) >= 2]
    return two_qubit or gates


def _fold_counts(count: int, factor: float) -> tuple[int, int]:
    """Folds for every gate, and how many gates get one more, to reach ``factor``."""
    extra = (factor - 1) / 2 * count
    base = int(extra // count) if count else 0
    return base, round(extra - base * count)


def _fold_gates(
    circuit: QuantumCircuit, factor: float, amplifier: str, seed: int | None
) -> tuple[QuantumCircuit, float]:
    foldable = _foldable(circuit)
    if not foldable:
        return circuit, 1.0
    base, remainder = _fold_counts(len(foldable), factor)
    if amplifier == "gate_folding_front":
        once_more = set(foldable[:remainder])
    elif amplifier == "gate_folding_back":
        once_more = set(foldable[len(foldable) - remainder :])
    else:
        rng = np.random.default_rng(seed)
        once_more = {int(i) for i in rng.choice(foldable, size=remainder, replace=False)}
    folds = dict.fromkeys(foldable, base)
    for i in once_more:
        folds[i] += 1
    folded = circuit.copy_empty_like()
    for i, instruction in enumerate(circuit.data):
        folded.append(instruction)
        repeats = folds.get(i, 0)
        if repeats:
            inverse = instruction.replace(operation=instruction.operation.inverse())
            for _ in range(repeats):
                folded.append(inverse)
                folded.append(instruction)
    reached = 1 + 2 * sum(folds.values()) / len(foldable)
    return folded, reached


def _fold_globally(circuit: QuantumCircuit, factor: float) -> tuple[QuantumCircuit, float]:
    gates = [inst for inst in circuit.data if inst.operation.name not in ("barrier", "delay")]
    if not gates:
        return circuit, 1.0
    base, remainder = _fold_counts(len(gates), factor)
    unitary = circuit.copy_empty_like()
    for instruction in gates:
        unitary.append(instruction)
    inverse = unitary.inverse()
    folded = circuit.copy()
    for _ in range(base):
        folded.compose(inverse, inplace=True)
        folded.compose(unitary, inplace=True)
    if remainder:
        tail = circuit.copy_empty_like()
        for instruction in gates[len(gates) - remainder :]:
            tail.append(instruction)
        folded.compose(tail.inverse(), inplace=True)
        folded.compose(tail, inplace=True)
    return folded, 1 + 2 * (base * len(gates) + remainder) / len(gates)


def translate_to_target(circuit: QuantumCircuit, target: Target | None) -> QuantumCircuit:
    """``circuit`` with unsupported gates translated into ``target``'s basis, nothing else.

    No layout, routing or optimisation: the qubits stay where they are and
    folded pairs survive.
    """
    if target is None or all(
        inst.operation.name == "barrier"
        or target.instruction_supported(
            inst.operation.name, tuple(circuit.find_bit(q).index for q in inst.qubits)
        )
        for inst in circuit.data
    ):
        return circuit
    translated: QuantumCircuit = _translator(target).run(circuit)
    return translated


@functools.lru_cache(maxsize=16)
def _translator(target: Target) -> PassManager:
    # Translation only: no optimisation pass may see G G^dag and cancel it.
    return PassManager(
        [BasisTranslator(SessionEquivalenceLibrary, list(target.operation_names), target=target)]
    )


# --- extrapolation ------------------------------------------------------------------------


def _expand(extrapolators: Sequence[str]) -> list[str]:
    names: list[str] = []
    for name in extrapolators:
        names.extend(["exponential", "linear"] if name == "fallback" else [name])
    return names


def _degree(name: str) -> int | None:
    if name == "linear":
        return 1
    if name == "quadratic":
        return 2
    if name.startswith("polynomial_degree_"):
        return int(name.removeprefix("polynomial_degree_"))
    return None


def _fit(
    name: str, x: _FloatArray, y: _FloatArray, s: _FloatArray, points: _FloatArray
) -> tuple[_FloatArray, _FloatArray] | None:
    """The fit of ``name`` evaluated at ``points`` (values, stds), or None if it fails."""
    if name == "fallback":
        return _fit("exponential", x, y, s, points) or _fit("linear", x, y, s, points)
    degree = _degree(name)
    if degree is not None:
        return _polynomial(x, y, s, points, degree)
    if name == "exponential":
        return _exponential(x, y, s, points)
    if name == "double_exponential":
        return _double_exponential(x, y, s, points)
    raise InputValueError(f"unknown extrapolator {name!r}")


def _linear_weights(x: _FloatArray, points: _FloatArray, degree: int) -> _FloatArray:
    """Rows ``w`` with ``w @ y`` = the least-squares polynomial at each point."""
    design = np.vander(x, degree + 1)
    return np.vander(points, degree + 1) @ np.linalg.pinv(design)


def _polynomial(
    x: _FloatArray, y: _FloatArray, s: _FloatArray, points: _FloatArray, degree: int
) -> tuple[_FloatArray, _FloatArray] | None:
    if len(x) < degree + 1:
        return None
    weights = _linear_weights(x, points, degree)
    # The fit is linear in y, so independent errors propagate exactly.
    return weights @ y, np.sqrt((weights**2) @ (s**2))


def _exponential(
    x: _FloatArray, y: _FloatArray, s: _FloatArray, points: _FloatArray
) -> tuple[_FloatArray, _FloatArray] | None:
    sign = np.sign(y)
    if np.any(sign == 0) or np.any(sign != sign[0]) or np.any(np.abs(y) <= s):
        return None  # the log of a value lost in its noise is meaningless
    weights = _linear_weights(x, points, 1)
    values = sign[0] * np.exp(weights @ np.log(np.abs(y)))
    relative = np.sqrt((weights**2) @ ((s / y) ** 2))
    return values, np.abs(values) * relative


def _double_exponential(
    x: _FloatArray, y: _FloatArray, s: _FloatArray, points: _FloatArray
) -> tuple[_FloatArray, _FloatArray] | None:
    if len(x) < 4:
        return None
    from scipy.optimize import curve_fit  # a qiskit dependency; imported only when asked for

    def model(t: _FloatArray, a: float, b: float, c: float, d: float) -> _FloatArray:
        return np.asarray(a * np.exp(-b * t) + c * np.exp(-d * t))

    guess = (y[0] / 2, 0.1, y[0] / 2, 1.0)
    try:
        params, covariance = curve_fit(
            model, x, y, p0=guess, sigma=np.maximum(s, 1e-12), absolute_sigma=True, maxfev=2000
        )
    except (RuntimeError, ValueError):
        return None
    a, b, c, d = params
    values = model(points, a, b, c, d)
    gradient = np.stack(
        [
            np.exp(-b * points),
            -a * points * np.exp(-b * points),
            np.exp(-d * points),
            -c * points * np.exp(-d * points),
        ],
        axis=1,
    )
    variances = np.einsum("pi,ij,pj->p", gradient, covariance, gradient)
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(variances)):
        return None
    return values, np.sqrt(np.maximum(variances, 0.0))
