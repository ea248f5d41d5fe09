"""Circuits kept in Aer's own form give what ``backend.run`` gives, run after run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives.containers import EstimatorPub
from qiskit.quantum_info import Pauli
from qiskit_aer import AerSimulator
from qiskit_aer.library import SaveExpectationValue

from qruntime.backends import build_simulator, load_catalogue
from qruntime.programs import cache, estimator
from qruntime.programs.aer_runs import assemble, run_once

LABELS = ["ZZI", "IXX", "YIY", "XYZ"]


def saving_ansatz() -> QuantumCircuit:
    """Three qubits, two layers of rotations (one of expressions), a phase, Paulis saved."""
    theta = ParameterVector("t", 6)
    qc = QuantumCircuit(3, global_phase=theta[0] / 2)
    for q in range(3):
        qc.ry(theta[q], q)
    qc.cx(0, 1)
    qc.cx(1, 2)
    for q in range(3):
        qc.rz(theta[3 + q] * 2 + 0.5, q)
    for label in LABELS:
        qc.append(SaveExpectationValue(Pauli(label), label=label), [0, 1, 2])
    return qc


def reference(backend: Any, circuit: QuantumCircuit, values: np.ndarray[Any, Any]) -> Any:
    columns = {p: values[:, j].tolist() for j, p in enumerate(circuit.parameters)}
    result = backend.run(circuit, shots=1, parameter_binds=[columns]).result()
    return np.array([[result.data(b)[label] for label in LABELS] for b in range(len(values))])


def kept_run(kept: Any, circuit: QuantumCircuit, values: np.ndarray[Any, Any]) -> Any:
    columns = {p: values[:, j].tolist() for j, p in enumerate(circuit.parameters)}
    data = kept.run(columns, {"shots": 1})
    return np.array([[row[label] for label in LABELS] for row in data])


def test_a_kept_circuit_gives_backend_runs_values_for_new_values_each_time() -> None:
    backend = AerSimulator()
    circuit = saving_ansatz()
    kept = assemble(backend, circuit)
    assert kept is not None
    rng = np.random.default_rng(5)
    first = rng.uniform(-np.pi, np.pi, size=(4, 6))
    for values in (first, rng.uniform(-np.pi, np.pi, size=(1, 6)), first):
        # Exact values: the same numbers, up to floating-point summation order.
        assert np.allclose(kept_run(kept, circuit, values), reference(backend, circuit, values))
    # Running it left the kept circuit as it was: the first values give the first answer.
    assert np.array_equal(kept_run(kept, circuit, first), kept_run(kept, circuit, first))


def test_only_parameterised_circuits_on_ideal_aer_simulators_are_kept(
    device_noisy_backend: AerSimulator,
) -> None:
    circuit = saving_ansatz()
    assert assemble(device_noisy_backend, circuit) is None  # a device: its noise and basis
    assert assemble(AerSimulator(), circuit.assign_parameters([0.1] * 6)) is None
    assert assemble(object(), circuit) is None  # not Aer at all


def test_a_failing_simulation_raises_with_aers_status() -> None:
    backend = AerSimulator(method="stabilizer")  # cannot apply ry with any angle
    circuit = saving_ansatz()
    kept = assemble(backend, circuit)
    assert kept is not None
    with pytest.raises(RuntimeError, match="failed"):
        kept_run(kept, circuit, np.full((1, 6), 0.3))


def test_the_estimators_second_job_reuses_the_kept_circuit() -> None:
    backend = build_simulator(load_catalogue().get("aer_simulator"))
    circuit = QuantumCircuit(3)
    theta = ParameterVector("a", 3)
    for q in range(3):
        circuit.ry(theta[q], q)
    circuit.cx(0, 2)
    evs = []
    for values in ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6]):
        cache.begin_job()
        pubs = [EstimatorPub.coerce((circuit, ["ZIZ", "XXI"], values), 0.0)]
        result = estimator.main(backend, None, pubs=pubs)
        evs.append(result[0].data.evs)
        assert result[0].metadata["simulation"] == "exact"
    assert cache.counters()["preparation_misses"] == 0  # the second job built nothing
    bound = circuit.assign_parameters([0.4, 0.5, 0.6])
    saved = bound.copy()
    for label in ("ZIZ", "XXI"):
        saved.append(SaveExpectationValue(Pauli(label), label=label), [0, 1, 2])
    expected = AerSimulator().run(saved, shots=1).result().data(0)
    assert np.allclose(evs[1], [expected["ZIZ"], expected["XXI"]])


def test_a_kept_circuit_draws_a_new_seed_each_run_unless_one_is_set() -> None:
    theta = ParameterVector("t", 3)
    sampled = QuantumCircuit(3)
    for q in range(3):
        sampled.ry(theta[q], q)
    sampled.measure_all()
    columns = {p: [1.1] for p in sampled.parameters}

    def kept_for(backend: AerSimulator) -> Any:
        kept = assemble(backend, sampled)
        assert kept is not None
        return kept

    def counts(kept: Any, **options: Any) -> Any:
        return kept.run(columns, {"shots": 2000, **options})[0]["counts"]

    free = kept_for(AerSimulator())
    assert counts(free) != counts(free)  # a fresh seed per run, as backend.run draws
    seeded = kept_for(AerSimulator(seed_simulator=5))
    assert counts(seeded) == counts(seeded)  # the backend's seed holds
    assert counts(free, seed_simulator=9) == counts(free, seed_simulator=9)


def test_a_circuit_run_once_gives_what_backend_run_gives() -> None:
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.ry(0.7, 2)
    circuit.save_probabilities([0, 2], label="probabilities")
    backend = AerSimulator()
    data = run_once(backend, circuit, {"shots": 1})
    expected = backend.run(circuit, shots=1).result().data(0)["probabilities"]
    assert data is not None
    assert len(data) == 1
    assert np.allclose(data[0]["probabilities"], expected)


def test_only_circuits_without_parameters_on_ideal_aer_simulators_run_once() -> None:
    theta = ParameterVector("t", 1)
    parameterised = QuantumCircuit(1)
    parameterised.ry(theta[0], 0)
    parameterised.save_probabilities(label="p")
    plain = QuantumCircuit(1)
    plain.h(0)
    plain.save_probabilities(label="p")
    device = build_simulator(load_catalogue().get("fake_5q"))
    assert run_once(AerSimulator(), parameterised, {"shots": 1}) is None
    assert run_once(device, plain, {"shots": 1}) is None
