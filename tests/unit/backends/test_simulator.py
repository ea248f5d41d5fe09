"""build_simulator gives the ideal or the noisy Aer simulator, once per process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

from qruntime.backends import Catalogue, build_simulator, clear_simulator_cache, load_catalogue
from qruntime.backends.catalogue import AER_GATES, aer_max_qubits


@pytest.fixture(scope="module")
def catalogue() -> Iterator[Catalogue]:
    yield load_catalogue()
    clear_simulator_cache()


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def test_aer_entry_is_an_ideal_simulator_named_after_it(catalogue: Catalogue) -> None:
    simulator = build_simulator(catalogue.get("aer_simulator"))
    assert simulator.name == "aer_simulator"
    assert simulator.options.noise_model is None
    counts = simulator.run(bell(), shots=500, seed_simulator=1).result().get_counts()
    assert set(counts) == {"00", "11"}


def test_bell_on_fake_5q_is_noisy_but_usable(catalogue: Catalogue) -> None:
    simulator = build_simulator(catalogue.get("fake_5q"))
    assert simulator.name == "fake_5q"
    circuit = transpile(bell(), simulator, seed_transpiler=7)
    counts = simulator.run(circuit, shots=8000, seed_simulator=11).result().get_counts()
    correct = (counts.get("00", 0) + counts.get("11", 0)) / 8000
    assert 0.90 <= correct <= 0.97


def test_noise_model_keeps_the_asymmetric_readout_errors(catalogue: Catalogue) -> None:
    entry = catalogue.get("fake_5q")
    readout = entry.target["measure"][(2,)]
    noise = build_simulator(entry).options.noise_model.to_dict()
    errors = [e for e in noise["errors"] if e["type"] == "roerror" and e["gate_qubits"] == [(2,)]]
    assert len(errors) == 1
    (p0, p1) = errors[0]["probabilities"]
    assert p0[1] == pytest.approx(readout.prob_meas1_prep0)
    assert p1[0] == pytest.approx(readout.prob_meas0_prep1)


def test_simulator_is_built_once_per_spec(catalogue: Catalogue) -> None:
    first = build_simulator(catalogue.get("fake_5q"))
    assert build_simulator(catalogue.get("fake_5q")) is first
    # a catalogue loaded again (as a worker might) finds the same simulator
    assert build_simulator(load_catalogue().get("fake_5q")) is first


def test_27q_device_simulator_uses_the_heavy_hex_target(catalogue: Catalogue) -> None:
    simulator = build_simulator(catalogue.get("fake_27q"))
    assert simulator.name == "fake_27q"
    assert simulator.num_qubits == 27
    assert simulator.target.build_coupling_map().graph.num_edges() == 56
    circuit = transpile(bell(), simulator, seed_transpiler=3)
    counts = simulator.run(circuit, shots=2000, seed_simulator=5).result().get_counts()
    correct = (counts.get("00", 0) + counts.get("11", 0)) / 2000
    assert 0.88 <= correct < 1.0


def test_aer_limits_and_gates_match_aer_itself() -> None:
    simulator = AerSimulator()
    assert aer_max_qubits() == simulator.num_qubits
    assert set(AER_GATES) <= set(simulator.target.operation_names)
