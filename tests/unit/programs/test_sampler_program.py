"""The built-in sampler program against qiskit's reference sampler, on real Aer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorSampler
from qiskit.primitives.containers import BitArray, SamplerPubResult
from qiskit_aer import AerSimulator

from qruntime.backends import build_simulator, load_catalogue
from qruntime.encoding import dumps, loads
from qruntime.errors import InputValueError
from qruntime.programs import load_builtin_module, sampler


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


def ansatz() -> QuantumCircuit:
    theta = ParameterVector("t", 3)
    circuit = QuantumCircuit(2)
    circuit.ry(theta[0], 0)
    circuit.ry(theta[1], 1)
    circuit.cx(0, 1)
    circuit.rz(theta[2], 1)
    circuit.h(1)
    circuit.measure_all()
    return circuit


def probabilities(bits: BitArray) -> dict[str, float]:
    counts = bits.get_counts()
    return {key: value / bits.num_shots for key, value in counts.items()}


def assert_close(measured: dict[str, float], expected: dict[str, float], shots: int) -> None:
    for key in set(measured) | set(expected):
        p = expected.get(key, 0.0)
        sigma = max(np.sqrt(p * (1 - p) / shots), 1 / shots)
        assert abs(measured.get(key, 0.0) - p) <= 5 * sigma + 1e-9, (key, measured, expected)


def run(backend: Any, pubs: list[Any], **options: Any) -> Any:
    return sampler.main(backend, None, pubs=pubs, options=options, version=2)


@pytest.fixture(scope="module")
def fake_5q() -> AerSimulator:
    return build_simulator(load_catalogue().get("fake_5q"))


def test_bell_and_ghz_match_the_statevector_sampler(ideal_backend: AerSimulator) -> None:
    pubs = [(bell(),), (ghz(4), None, 2000)]
    result = run(ideal_backend, pubs, simulator={"seed_simulator": 3})
    reference = StatevectorSampler(seed=3).run(pubs).result()
    assert isinstance(result[0], SamplerPubResult)
    assert result[0].data.c.num_shots == 4096  # IBM's default_shots
    assert result[1].data.meas.num_shots == 2000
    for ours, theirs, shots in zip(result, reference, (4096, 2000), strict=True):
        name = next(iter(theirs.data.keys()))
        assert_close(probabilities(ours.data[name]), probabilities(theirs.data[name]), shots)
    assert set(result[1].data.meas.get_counts()) == {"0000", "1111"}


def test_parameter_sets_broadcast_into_the_pub_shape(ideal_backend: AerSimulator) -> None:
    rng = np.random.default_rng(5)
    values = rng.uniform(0, np.pi, size=(2, 3, 3))
    pub = (ansatz(), values, 3000)
    result = run(ideal_backend, [pub], simulator={"seed_simulator": 1})
    exact = StatevectorSampler(default_shots=200_000, seed=2).run([pub]).result()
    bits = result[0].data.meas
    assert bits.shape == (2, 3)
    assert bits.num_shots == 3000
    for index in np.ndindex(2, 3):
        assert_close(probabilities(bits[index]), probabilities(exact[0].data.meas[index]), 3000)


def test_each_classical_register_gets_its_own_bit_array(ideal_backend: AerSimulator) -> None:
    circuit = QuantumCircuit(QuantumRegister(3), ClassicalRegister(2, "alpha"))
    beta = ClassicalRegister(1, "beta")
    circuit.add_register(beta)
    circuit.x(0)
    circuit.x(2)
    circuit.measure(0, circuit.clbits[0])
    circuit.measure(1, circuit.clbits[1])
    circuit.measure(2, beta[0])
    result = run(ideal_backend, [(circuit, None, 50)])
    data = result[0].data
    assert set(data.keys()) == {"alpha", "beta"}
    assert data.alpha.num_bits == 2
    assert data.beta.num_bits == 1
    assert data.alpha.get_counts() == {"01": 50}
    assert data.beta.get_counts() == {"1": 50}


def test_a_seed_makes_the_bits_reproducible(ideal_backend: AerSimulator) -> None:
    first = run(ideal_backend, [(bell(), None, 64)], simulator={"seed_simulator": 11})
    second = run(ideal_backend, [(bell(), None, 64)], seed_simulator=11)
    assert np.array_equal(first[0].data.c.array, second[0].data.c.array)


def test_twirled_gates_and_measurements_keep_the_ideal_distribution(
    ideal_backend: AerSimulator,
) -> None:
    twirling = {"enable_gates": True, "enable_measure": True, "num_randomizations": 8}
    result = run(ideal_backend, [(ghz(3), None, 800)], twirling=twirling, seed_simulator=2)
    assert result[0].metadata["num_randomizations"] == 8
    assert result[0].data.meas.num_shots == 800
    counts = result[0].data.meas.get_counts()
    assert set(counts) == {"000", "111"}
    assert abs(counts["000"] / 800 - 0.5) < 0.1


def test_non_isa_circuits_are_transpiled_for_a_device(fake_5q: AerSimulator) -> None:
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.y(1)  # not in the device's basis
    circuit.measure_all()
    result = run(fake_5q, [(circuit, None, 1000)], seed_simulator=4, optimization_level=2)
    counts = result[0].data.meas.get_counts()
    assert (counts.get("010", 0) + counts.get("101", 0)) / 1000 > 0.8


def test_dynamical_decoupling_runs_on_a_device_and_keeps_the_answer(
    fake_5q: AerSimulator,
) -> None:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    for _ in range(4):
        circuit.x(0)  # leaves qubit 1 idle for a while
    circuit.measure_all()
    options = {"dynamical_decoupling": {"enable": True}, "seed_simulator": 9}
    result = run(fake_5q, [(circuit, None, 1000)], **options)
    counts = result[0].data.meas.get_counts()
    assert (counts.get("00", 0) + counts.get("11", 0)) / 1000 > 0.85


def test_the_result_survives_the_runtime_encoding(ideal_backend: AerSimulator) -> None:
    result = run(ideal_backend, [(bell(), None, 32), (ansatz(), np.zeros((2, 3)), 16)])
    decoded = loads(dumps(result))
    assert decoded.metadata["options"]["default_shots"] == 4096
    for ours, back in zip(result, decoded, strict=True):
        assert back.metadata["shots"] == ours.metadata["shots"]
        for name, bits in ours.data.items():
            assert np.array_equal(back.data[name].array, bits.array)


def test_the_program_is_registered_as_a_builtin() -> None:
    assert load_builtin_module("sampler") is sampler


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"pubs": [(ghz(6),)]}, "has 6 qubits, but the backend has only 5"),
        ({"pubs": [(QuantumCircuit(2),)]}, "no measurements"),
        ({"pubs": [(ansatz(), np.zeros((2, 2)))]}, "have 2 per set .* has 3 parameters"),
        ({"pubs": [(ansatz(), [[0.1, 0.2, 0.3, 0.4]])]}, "has 3 parameters"),
        ({"pubs": [(bell(), [0.5])]}, "without parameters"),
        ({"pubs": [(bell(), None, 0)]}, "shots must be > 0"),
        ({"pubs": [(bell(), None, -5)]}, "shots must be > 0"),
        ({"pubs": [(bell(),)], "options": {"shots": 10}}, "'options.shots'"),
        ({"pubs": [(bell(),)], "options": {"default_shots": 0}}, "default_shots"),
        ({"pubs": [(bell(),)], "options": {"twirling": {"enable": True}}}, "enable_gates"),
        ({"pubs": [(bell(),)], "options": {"optimization_level": 4}}, "optimization_level"),
        ({"pubs": [(bell(),)], "version": 1}, "version 2"),
        ({"pubs": [(bell(),)], "resilience_level": 1}, "unknown input"),
        ({"pubs": []}, "non-empty list"),
        ({"options": {}}, "pubs is required"),
    ],
)
def test_bad_inputs_are_refused_at_submission(inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputValueError, match=message):
        sampler.validate(inputs, num_qubits=5)


def test_valid_inputs_as_the_ibm_client_sends_them_pass() -> None:
    inputs = {
        "pubs": [[bell(), np.array([]), None], [ansatz(), np.zeros((4, 3)), 100]],
        "options": {"default_shots": 1000, "execution": {"init_qubits": True}},
        "version": 2,
        "support_qiskit": True,
    }
    sampler.validate(inputs, num_qubits=5)
