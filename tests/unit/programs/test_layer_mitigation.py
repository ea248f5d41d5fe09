"""PEA and PEC in the built-in estimator: layer noise injected or cancelled, on real Aer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, PauliList, SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qruntime.backends import DeviceRunner, load_catalogue
from qruntime.errors import InputValueError
from qruntime.layer_noise import LayerError, NoiseLearnerResult, PauliLindbladError
from qruntime.primitives.options import resolve_options
from qruntime.programs import estimator
from qruntime.programs.layer_mitigation import LayerNoise, uses_layer_noise
from qruntime.programs.sampler import is_isa

LEARNING = {"num_randomizations": 8, "layer_pair_depths": [0, 1, 4, 12]}


@pytest.fixture(scope="module")
def device() -> DeviceRunner:
    return DeviceRunner(load_catalogue().get("fake_5q"))


def mirrored_ghz(backend: Any) -> tuple[QuantumCircuit, SparsePauliOp]:
    """GHZ-3 with its cx undone and redone twice (10 cx): <ZZI> + <IZZ> is exactly 2."""
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
    return isa, observable.apply_layout(isa.layout)


def model(pair: tuple[int, int], rate: float) -> LayerError:
    layer = QuantumCircuit(2)
    layer.cx(0, 1)
    generators = PauliList(["IX", "ZI", "ZZ"])
    return LayerError(layer, list(pair), PauliLindbladError(generators, [rate] * 3))


def estimate(backend: Any, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    pub = mirrored_ghz(backend)
    options = {"default_shots": 4000, "seed_simulator": 7, **options}
    result = estimator.main(backend, None, pubs=[pub], version=2, options=options)
    return float(result[0].data.evs), result[0].metadata


def test_pec_and_pea_bring_the_estimate_closer_to_the_exact_value(device: DeviceRunner) -> None:
    plain, _ = estimate(device, {"resilience_level": 0})
    pec, pec_meta = estimate(
        device, {"resilience": {"pec_mitigation": True, "layer_noise_learning": LEARNING}}
    )
    pea, _ = estimate(
        device,
        {
            "resilience": {
                "zne_mitigation": True,
                "zne": {"amplifier": "pea"},
                "layer_noise_learning": LEARNING,
            }
        },
    )
    assert abs(pec - 2) < abs(plain - 2) / 3
    assert abs(pea - 2) < abs(plain - 2) / 3
    report = pec_meta["resilience"]["layer_noise"]
    assert report["unique_mitigated_layers"] == 3  # cx(0, 1), cx(1, 2) and cx(0, 1) after it
    assert report["noise_gain"] == 0.0
    assert pec_meta["shots"] >= 4000 * report["sampling_overhead"]


def test_auto_noise_gain_keeps_to_the_maximum_overhead(device: DeviceRunner) -> None:
    given = NoiseLearnerResult([model((0, 1), 0.05), model((1, 2), 0.05)])
    options = {"pec_mitigation": True, "pec": {"max_overhead": 2}, "layer_noise_model": given}
    _, metadata = estimate(device, {"resilience": options, "default_shots": 500})
    report = metadata["resilience"]["layer_noise"]
    assert report["learned"] is False
    assert report["total_mitigated_layers"] == 10
    assert 0 < report["noise_gain"] < 1
    assert report["sampling_overhead"] == pytest.approx(2.0)


def test_pec_weights_are_signed_and_unbiased() -> None:
    circuit = QuantumCircuit(2)
    circuit.cx(0, 1)
    noise = LayerNoise([model((0, 1), 0.1)], strategy="active", backend=None, learned=False)
    rng = np.random.default_rng(1)
    variants, weights = noise.randomizer(-1.0, rng)(circuit, 4000)
    gamma = np.exp(2 * 0.3)
    assert set(np.round(np.abs(weights), 9)) == {round(gamma, 9)}
    assert (weights < 0).any()
    # E[sign] = 1 / gamma: the weights average to one, as a quasi-probability must.
    assert np.mean(weights) == pytest.approx(1.0, abs=0.1)
    assert len(variants) == 4000


def test_injected_paulis_follow_the_layer_on_its_qubits(device: DeviceRunner) -> None:
    circuit = QuantumCircuit(5)
    circuit.cx(0, 1)
    circuit.sx(1)
    noise = LayerNoise([model((0, 1), 5.0)], strategy="active", backend=device, learned=False)
    variants, weights = noise.randomizer(1.0, np.random.default_rng(2))(circuit, 20)
    assert np.all(weights == 1.0)  # amplification: plain probabilities, no signs

    def with_pauli(label: str) -> Operator:
        expected = QuantumCircuit(5)
        expected.cx(0, 1)
        expected.pauli(label, [0, 1])
        expected.sx(1)
        return Operator(expected)

    # Products of the generators IX, ZI and ZZ (qubit 0 rightmost), right after the cx.
    products = ["II", "IX", "ZI", "ZZ", "ZX", "ZY", "IZ", "IY"]
    injected = []
    for variant in variants:
        assert is_isa(variant, device.target)
        found = [label for label in products if Operator(variant).equiv(with_pauli(label))]
        assert found, "a variant is the circuit with a Pauli of the model after its layer"
        injected.append(found[0])
    assert len(set(injected)) > 2


def test_the_options_ask_for_layer_noise_only_with_pea_or_pec() -> None:
    assert not uses_layer_noise(resolve_options("estimator", {"resilience_level": 2}))
    pea = resolve_options(
        "estimator", {"resilience": {"zne_mitigation": True, "zne": {"amplifier": "pea"}}}
    )
    assert uses_layer_noise(pea)
    assert pea.twirling.enable_gates  # PEA twirls the gates at any level
    pec = resolve_options(
        "estimator", {"resilience_level": 0, "resilience": {"pec_mitigation": True}}
    )
    assert uses_layer_noise(pec)
    assert pec.twirling.enable_gates
    assert pec.resilience.layer_noise_learning.layer_pair_depths == (0, 1, 2, 4, 16, 32)


def test_a_model_pec_cannot_use_is_refused_with_a_reason(device: DeviceRunner) -> None:
    off_device = {"pec_mitigation": True, "layer_noise_model": [model((0, 9), 0.01)]}
    with pytest.raises(InputValueError, match="distinct qubits"):
        estimate(device, {"resilience": off_device, "default_shots": 100})
    huge = {
        "pec_mitigation": True,
        "pec": {"noise_gain": 0},
        "layer_noise_model": [model((0, 1), 10.0)],
    }
    with pytest.raises(InputValueError, match="sampling overhead"):
        estimate(device, {"resilience": huge, "default_shots": 100})
