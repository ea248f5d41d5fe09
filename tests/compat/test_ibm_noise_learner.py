"""qiskit-ibm-runtime's ``NoiseLearner``, and the estimator's PEA and PEC, against a real server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:The (NoiseLearner|EstimatorV2) class is deprecated:DeprecationWarning"
)

# Small learning runs: the rates are still well within their statistics for these tests.
LEARNING = {"num_randomizations": 8, "layer_pair_depths": [0, 1, 4, 12]}


def _two_layers() -> Any:
    """An ISA circuit of fake_5q (T-shaped: 0-1, 1-2, 1-3, 3-4) with two layers of cx."""
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(5)
    circuit.cx(0, 1)
    circuit.cx(3, 4)
    circuit.sx(1)
    circuit.cx(1, 2)
    return circuit


def _cx_error(backend: Any, pair: tuple[int, int]) -> float:
    error: float = backend.target["cx"][pair].error
    return error


def test_noise_learner_returns_the_layers_with_plausible_rates(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.noise_learner import NoiseLearner
    from qiskit_ibm_runtime.options import NoiseLearnerOptions
    from qiskit_ibm_runtime.results import LayerError, NoiseLearnerResult

    backend = ibm_service.backend("fake_5q")
    options = NoiseLearnerOptions(twirling_strategy="active", **LEARNING)
    options.simulator.seed_simulator = 11
    job = NoiseLearner(backend, options).run([_two_layers()])
    result = job.result(timeout=120)

    assert isinstance(result, NoiseLearnerResult)
    assert job.primitive_id == "noise-learner"
    assert [layer.qubits for layer in result] == [[0, 1, 3, 4], [1, 2]]  # more gates first
    assert all(isinstance(layer, LayerError) for layer in result)
    assert result.metadata["backend"] == "fake_5q"
    assert result.metadata["input_options"]["num_randomizations"] == 8

    for layer, pairs in zip(result, [[(0, 1), (3, 4)], [(1, 2)]], strict=True):
        error = layer.error
        assert error is not None
        assert error.num_qubits == layer.circuit.num_qubits == len(layer.qubits)
        assert np.all(error.rates >= 0)
        gates = [
            tuple(layer.qubits[layer.circuit.find_bit(q).index] for q in inst.qubits)
            for inst in layer.circuit.data
        ]
        assert sorted(gates) == pairs
        # A Pauli channel's rates add up to about its process infidelity, 5/4 of the
        # average gate error the backend reports, plus a little for the twirls' gates.
        expected = 1.25 * sum(_cx_error(backend, pair) for pair in pairs)
        assert 0.5 * expected < error.rates.sum() < 2.0 * expected + 0.01
        # Every generator is a one- or two-qubit Pauli of the layer's qubits.
        weights = np.sum(error.generators.x | error.generators.z, axis=1)
        assert set(weights) == {1, 2}


def test_noise_learner_refuses_what_it_cannot_learn(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.exceptions import IBMInputValueError, IBMRuntimeError
    from qiskit_ibm_runtime.noise_learner import NoiseLearner

    backend = ibm_service.backend("fake_5q")
    with pytest.raises((IBMRuntimeError, IBMInputValueError), match="2 different depths"):
        NoiseLearner(backend, {"layer_pair_depths": [3]}).run([_two_layers()])


def _estimate(ibm_service: Any, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import EstimatorV2

    backend = ibm_service.backend("fake_5q")
    # A GHZ state, then its cx undone and redone twice: 10 cx, <ZZI> + <IZZ> = 2 exactly.
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    for _ in range(2):
        for pair in ((1, 2), (0, 1), (0, 1), (1, 2)):
            circuit.barrier()
            circuit.cx(*pair)
    manager = generate_preset_pass_manager(
        optimization_level=1, backend=backend, initial_layout=[0, 1, 2], seed_transpiler=1
    )
    isa = manager.run(circuit)
    observable = SparsePauliOp.from_sparse_list([("ZZ", [0, 1], 1), ("ZZ", [1, 2], 1)], 3)
    estimator = EstimatorV2(mode=backend, options={"default_shots": 4000, **options})
    job = estimator.run([(isa, observable.apply_layout(isa.layout))])
    result = job.result(timeout=180)[0]
    return float(result.data.evs), dict(result.metadata)


def test_pea_and_pec_reduce_the_error_of_the_estimator(ibm_service: Any) -> None:
    exact = 2.0
    learning = {"layer_noise_learning": LEARNING}
    seeds = {"seed_estimator": 5, "simulator": {"seed_simulator": 5}}
    plain, _ = _estimate(ibm_service, {"resilience_level": 0, **seeds})
    readout_only, _ = _estimate(ibm_service, {"resilience_level": 1, **seeds})
    pec, pec_meta = _estimate(
        ibm_service, {"resilience": {"pec_mitigation": True, **learning}, **seeds}
    )
    pea, pea_meta = _estimate(
        ibm_service,
        {
            "resilience": {"zne_mitigation": True, "zne": {"amplifier": "pea"}, **learning},
            **seeds,
        },
    )
    assert abs(pec - exact) < abs(readout_only - exact) < abs(plain - exact)
    assert abs(pea - exact) < abs(readout_only - exact)
    assert abs(pec - exact) < 0.1
    assert abs(pea - exact) < 0.1
    layer_noise = pec_meta["resilience"]["layer_noise"]
    assert layer_noise["learned"] is True
    assert layer_noise["total_mitigated_layers"] == 10
    assert layer_noise["sampling_overhead"] > 1
    assert pea_meta["resilience"]["zne"]["noise_factors"] == [1.0, 3.0, 5.0]


def test_pec_uses_a_layer_noise_model_from_the_noise_learner(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.noise_learner import NoiseLearner

    backend = ibm_service.backend("fake_5q")
    learned = NoiseLearner(backend, LEARNING).run([_two_layers()]).result(timeout=120)
    # The model lacks this circuit's layers but one: those are left unmitigated.
    value, metadata = _estimate(
        ibm_service,
        {"resilience": {"pec_mitigation": True, "layer_noise_model": learned}},
    )
    layer_noise = metadata["resilience"]["layer_noise"]
    assert layer_noise["learned"] is False
    # cx(1, 2) is a layer of the model; cx(0, 1) alone is not (it came with cx(3, 4)).
    assert layer_noise["total_mitigated_layers"] == 5
    assert layer_noise["total_unmitigated_layers"] == 5
    assert 1.5 < value < 2.2
