"""Exact expectation values on ideal simulators, for the built-in ``estimator``.

On an ideal Aer simulator (no noise model) a circuit without mid-circuit
measurements, resets or control flow has exact expectation values: one Aer run
saves the value of every Pauli term at every parameter set (`SaveExpectationValue`),
as Qiskit's ``StatevectorEstimator`` and Aer's ``EstimatorV2`` compute them. The
estimator then adds noise of the requested precision. Noisy backends are sampled
(``estimator.py``), so that mitigation works on shot data.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import CONTROL_FLOW_OP_NAMES
from qiskit.quantum_info import Pauli

from qruntime.primitives.options import PrimitiveOptions
from qruntime.programs.aer_runs import assemble
from qruntime.programs.cache import cached_preparation
from qruntime.programs.circuit_runner import few_qubit_run_options

__all__ = ["computes_exactly", "exact_expectation_values", "is_noisy"]

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
# Operations that make a statevector simulation stochastic: such circuits are sampled.
_DYNAMIC = frozenset({"measure", "reset", "initialize", *CONTROL_FLOW_OP_NAMES})


def is_noisy(backend: Any, options: PrimitiveOptions) -> bool:
    """False only for a backend known to be ideal (an Aer simulator without noise)."""
    if options.simulator.get("noise_model") is not None:
        return True
    from qiskit_aer import AerSimulator  # Aer only where a job runs

    if not isinstance(backend, AerSimulator):
        # A provider's BackendV2 (a lab's hardware, another simulator): its options may
        # look like Aer's (GenericBackendV2 copies them) but its run is its own.
        return True
    backend_options = getattr(backend, "options", None)
    if backend_options is None or not hasattr(backend_options, "noise_model"):
        return True
    return backend_options.noise_model is not None


def computes_exactly(backend: Any, options: PrimitiveOptions, circuit: QuantumCircuit) -> bool:
    """Whether expectation values of ``circuit`` can be computed instead of sampled."""
    if is_noisy(backend, options) or options.resilience.zne_mitigation:
        return False
    # The extended stabilizer method cannot save expectation values; it samples anyway.
    if getattr(backend.options, "method", None) == "extended_stabilizer":
        return False
    return _DYNAMIC.isdisjoint(circuit.count_ops())


def exact_expectation_values(
    circuit: QuantumCircuit,
    content: Hashable | None,
    terms: list[dict[str, float]],
    labels: list[str],
    values: np.ndarray[Any, Any],
    backend: Any,
) -> _FloatArray:
    """Table (parameter set, observable) of exact expectation values of ``terms``.

    ``labels`` are the non-identity Paulis of the terms; ``content`` is the cache key
    of ``circuit`` with those labels (None: nothing is cached); ``values`` has a row
    of parameter values per parameter set.
    """
    paulis = _pauli_values(circuit, content, labels, values, backend)
    return paulis @ _coefficients(terms, labels).T + _identity_parts(terms)


def _pauli_values(
    circuit: QuantumCircuit,
    content: Hashable | None,
    labels: list[str],
    values: np.ndarray[Any, Any],
    backend: Any,
) -> _FloatArray:
    """Table (parameter set, label) of the Paulis' exact expectation values: one Aer run."""
    if not labels:
        return np.zeros((len(values), 0))
    saving = cached_preparation(
        "estimator.saved_expectation_values",
        content,
        lambda: _with_saved_expectation_values(circuit, labels),
    )
    # Sampling is not needed: one shot gives the exact value of a circuit without
    # measurements, resets or noise.
    run_options: dict[str, Any] = {"shots": 1}
    # Judged on the circuit without its saves, which span every qubit.
    run_options.update(
        cached_preparation(
            "estimator.thread_options",
            content,
            lambda: few_qubit_run_options(backend, [circuit], run_options),
            backend=backend,
        )
    )
    parameters = list(saving.parameters)
    if parameters:
        columns = {p: values[:, j].tolist() for j, p in enumerate(parameters)}
        assembled = cached_preparation(
            "estimator.assembled", content, lambda: assemble(backend, saving), backend=backend
        )
        if assembled is not None:
            data = assembled.run(columns, run_options)
            return np.array([[row[label] for label in labels] for row in data], dtype=float)
        run_options["parameter_binds"] = [columns]
    result = backend.run(saving, **run_options).result()
    if not result.success:
        raise RuntimeError(f"the backend {backend.name} failed: {result.status}")
    table = np.array(
        [[result.data(b)[label] for label in labels] for b in range(len(result.results))],
        dtype=float,
    )
    # Without parameters every parameter set is the same circuit, run once.
    return np.broadcast_to(table, (len(values), len(labels)))


def _with_saved_expectation_values(circuit: QuantumCircuit, labels: list[str]) -> QuantumCircuit:
    """A copy of ``circuit`` that saves each Pauli's expectation value under its label.

    Each Pauli is saved on every qubit, as Aer's ``EstimatorV2`` does: Aer still
    leaves out the idle qubits of a wide backend (it trims the identities itself),
    whereas a Pauli saved on only the qubits it acts on can come out wrong once Aer
    drops idle qubits (qiskit-aer#2442, open in Aer 0.18).
    """
    from qiskit_aer.library import SaveExpectationValue  # Aer only where a job runs

    saving = circuit.copy()  # the cached circuit stays as it is
    everywhere = list(range(circuit.num_qubits))
    for label in labels:
        saving.append(SaveExpectationValue(Pauli(label), label=label), everywhere)
    return saving


def _coefficients(terms: list[dict[str, float]], labels: list[str]) -> _FloatArray:
    """Matrix (observable, label) of each Pauli's coefficient in each observable."""
    return np.array(
        [[float(np.real(term.get(label, 0.0))) for label in labels] for term in terms]
    ).reshape(len(terms), len(labels))


def _identity_parts(terms: list[dict[str, float]]) -> _FloatArray:
    """Each observable's identity coefficient: its value in every state."""
    return np.array(
        [
            sum(float(np.real(c)) for label, c in term.items() if set(label) == {"I"})
            for term in terms
        ]
    )
