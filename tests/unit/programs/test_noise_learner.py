"""The noise-learner program: layers, learning circuits on real Aer, and its result's encoding."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Pauli
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, PauliLindbladError, ReadoutError

from qruntime.encoding import dumps, loads
from qruntime.errors import InputValueError
from qruntime.layer_noise import LayerError
from qruntime.programs import load_builtin_module, noise_learner
from qruntime.programs.layers import layered_circuit
from qruntime.programs.pauli_lindblad import measurement_bases, sparse_generators


def brickwork() -> QuantumCircuit:
    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cz(2, 3)
    circuit.sx(1)
    circuit.cx(1, 2)
    circuit.barrier(0, 1)
    circuit.cx(0, 1)
    circuit.rz(0.3, 3)
    return circuit


def test_gates_on_disjoint_qubits_share_a_layer_and_barriers_separate_layers() -> None:
    layered = layered_circuit(brickwork(), "active")
    assert [layer.gates for layer in layered.layers] == [
        (("cx", (0, 1)), ("cz", (2, 3))),
        (("cx", (1, 2)),),
        (("cx", (0, 1)),),  # after the barrier: not with cx(1, 2)
    ]


def test_replaying_the_stages_gives_the_same_circuit() -> None:
    layered = layered_circuit(brickwork(), "active-accum")
    replay = layered.circuit.copy_empty_like()
    for index in layered.items():
        if index >= 0:
            replay.append(layered.circuit.data[index])
    assert Operator(replay).equiv(Operator(brickwork()))


@pytest.mark.parametrize(
    ("strategy", "twirled"),
    [
        ("active", [(0, 1, 2, 3), (1, 2), (0, 1)]),
        ("active-accum", [(0, 1, 2, 3)] * 3),
        ("active-circuit", [(0, 1, 2, 3)] * 3),
        ("all", [(0, 1, 2, 3, 4)] * 3),
    ],
)
def test_the_twirled_qubits_follow_the_strategy(strategy: str, twirled: list[Any]) -> None:
    circuit = QuantumCircuit(5)
    circuit.compose(brickwork(), range(4), inplace=True)
    assert [layer.qubits for layer in layered_circuit(circuit, strategy).layers] == twirled


def test_active_accum_adds_the_qubits_used_so_far() -> None:
    circuit = QuantumCircuit(4)
    circuit.cx(0, 1)
    circuit.x(3)
    circuit.cx(1, 2)
    layers = layered_circuit(circuit, "active-accum").layers
    assert [layer.qubits for layer in layers] == [(0, 1, 3), (0, 1, 2, 3)]


def test_the_sparse_model_and_its_bases_cover_every_coupled_pair() -> None:
    edges = [(0, 1), (1, 2), (1, 3)]
    generators = sparse_generators(4, edges)
    assert len(generators) == 3 * 4 + 9 * 3
    bases = measurement_bases(4, edges)
    assert len(bases) == 9
    for a, b in edges:
        assert len({(row[a], row[b]) for row in bases}) == 9


def test_learned_rates_match_a_known_pauli_lindblad_noise() -> None:
    # cx(0, 1) followed by Z on its control and X on its target: both Paulis are left
    # unchanged by the cx, so the pairs of layers can tell their rates apart exactly.
    noise = NoiseModel(basis_gates=["cx", "rz", "sx", "x"])
    noise.add_quantum_error(
        PauliLindbladError([Pauli("IZ"), Pauli("XI")], [0.02, 0.01]), "cx", [0, 1]
    )
    noise.add_all_qubit_readout_error(ReadoutError([[0.97, 0.03], [0.06, 0.94]]))
    backend = AerSimulator(method="density_matrix", noise_model=noise, max_parallel_threads=1)
    circuit = QuantumCircuit(2)
    circuit.cx(0, 1)
    options = {
        "num_randomizations": 16,
        "shots_per_randomization": 256,
        "layer_pair_depths": [0, 1, 2, 4, 8, 16],
        "twirling_strategy": "active",
        "simulator": {"seed_simulator": 3},
    }
    result = noise_learner.main(backend, None, circuits=[circuit], options=options)
    (layer,) = result["data"]
    assert layer.qubits == [0, 1]
    rates = dict(zip(layer.error.generators.to_labels(), layer.error.rates, strict=True))
    assert rates["IZ"] == pytest.approx(0.02, abs=0.003)
    assert rates["XI"] == pytest.approx(0.01, abs=0.003)
    others = [rate for label, rate in rates.items() if label not in ("IZ", "XI")]
    assert max(others) < 0.003
    assert min(others) >= 0


def test_an_ideal_simulator_learns_no_noise() -> None:
    backend = AerSimulator(max_parallel_threads=1)
    circuit = QuantumCircuit(3)
    circuit.cx(0, 1)
    options = {"num_randomizations": 2, "layer_pair_depths": [0, 2], "max_layers_to_learn": 0}
    assert noise_learner.main(backend, None, circuits=[circuit], options=options)["data"] == []
    options["max_layers_to_learn"] = 1
    (layer,) = noise_learner.main(backend, None, circuits=[circuit], options=options)["data"]
    assert layer.qubits == [0, 1]
    assert np.all(layer.error.rates == 0)


def test_the_result_reads_back_as_ibm_writes_it() -> None:
    from qiskit_ibm_runtime.decoders.noise_learner import NoiseLearnerResultDecoder

    backend = AerSimulator(max_parallel_threads=1)
    circuit = QuantumCircuit(2)
    circuit.cx(1, 0)
    options = {"num_randomizations": 2, "layer_pair_depths": [0, 1]}
    result = noise_learner.main(backend, None, circuits=[circuit], options=options)
    text = dumps(result)
    ibm = NoiseLearnerResultDecoder.decode(text)
    assert ibm[0].qubits == [0, 1]
    assert ibm[0].error.generators.to_labels() == result["data"][0].error.generators.to_labels()
    assert ibm.metadata["input_options"]["layer_pair_depths"] == [0, 1]
    # What the official client sends back (a layer_noise_model) decodes into qruntime's classes.
    from qiskit_ibm_runtime import RuntimeEncoder

    again = loads(json.dumps({"model": ibm}, cls=RuntimeEncoder))["model"]
    assert isinstance(again[0], LayerError)
    assert np.allclose(again[0].error.rates, result["data"][0].error.rates)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "circuits must be"),
        ({"circuits": ["x"]}, "not a QuantumCircuit"),
        ({"circuits": [QuantumCircuit(9)]}, "the backend has 5"),
        ({"schema_version": "v0.1", "instructions": []}, "NoiseLearnerV3"),
        ({"circuits": [QuantumCircuit(2)], "options": {"layer_pair_depths": [4]}}, "2 differ"),
        ({"circuits": [QuantumCircuit(2)], "options": {"num_randomizations": 0}}, "integer"),
        ({"circuits": [QuantumCircuit(2)], "options": {"twirling_strategy": "x"}}, "one of"),
        ({"circuits": [QuantumCircuit(2)], "options": {"shots": 5}}, "unknown"),
    ],
)
def test_bad_inputs_are_refused_at_submission(inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputValueError, match=message):
        noise_learner.validate(inputs, num_qubits=5)


def test_the_program_is_registered_as_a_builtin() -> None:
    module = load_builtin_module("noise-learner")
    assert module.METADATA["name"] == "noise-learner"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("qiskit_ibm_runtime.utils.noise_learner_result", "NoiseLearnerResult"),
        ("os", "LayerError"),
        ("qiskit_ibm_runtime.results.noise_learner", "Popen"),
    ],
)
def test_only_the_noise_learner_classes_decode_from_json_payloads(module: str, name: str) -> None:
    payload = {"__type__": "_json", "__module__": module, "__class__": name, "__value__": {}}
    with pytest.raises(InputValueError, match="allow-list"):
        loads(json.dumps(payload))
