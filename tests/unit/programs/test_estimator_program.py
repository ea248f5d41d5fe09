"""The built-in estimator program against qiskit's exact estimator, on real Aer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator
from qiskit.primitives.containers import EstimatorPub, PubResult
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from qruntime.backends import build_simulator, load_catalogue
from qruntime.encoding import dumps, loads
from qruntime.errors import InputValueError
from qruntime.programs import cache, estimator, load_builtin_module


def ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    return circuit


def ansatz() -> QuantumCircuit:
    theta = ParameterVector("t", 4)
    circuit = QuantumCircuit(2)
    circuit.ry(theta[0], 0)
    circuit.ry(theta[1], 1)
    circuit.cx(0, 1)
    circuit.rx(theta[2], 0)
    circuit.rz(theta[3], 1)
    return circuit


def zz_chain(n: int) -> SparsePauliOp:
    return SparsePauliOp.from_sparse_list([("ZZ", [i, i + 1], 1.0) for i in range(n - 1)], n)


def run(backend: Any, pubs: list[Any], **inputs: Any) -> Any:
    return estimator.main(backend, None, pubs=pubs, version=2, **inputs)


def vqe_pub(num_sets: int, *, seed: int = 3) -> tuple[Any, ...]:
    """The ansatz at ``num_sets`` parameter sets, with observables broadcast against them."""
    values = np.random.default_rng(seed).uniform(-np.pi, np.pi, size=(num_sets, 1, 4))
    mixed = SparsePauliOp.from_list([("YY", 1.0), ("ZX", 2.0), ("II", 0.5)])
    return (ansatz(), [["ZZ", "XI", mixed]], values)


def exact(pubs: list[Any]) -> list[np.ndarray[Any, Any]]:
    # Without their precision: the reference estimator would add noise of that size.
    result = StatevectorEstimator().run([pub[:3] for pub in pubs], precision=0).result()
    return [np.asarray(r.data.evs) for r in result]


def assert_agrees(result: Any, expected: list[np.ndarray[Any, Any]]) -> None:
    for pub_result, evs in zip(result, expected, strict=True):
        assert isinstance(pub_result, PubResult)
        assert pub_result.data.evs.shape == evs.shape
        tolerance = 5 * np.asarray(pub_result.data.stds) + 0.01
        assert np.all(np.abs(pub_result.data.evs - evs) <= tolerance), (pub_result.data.evs, evs)


@pytest.fixture(scope="module")
def fake_5q() -> AerSimulator:
    return build_simulator(load_catalogue().get("fake_5q"))


def test_bell_ghz_and_a_many_term_observable_match_the_exact_estimator(
    ideal_backend: AerSimulator,
) -> None:
    bell = ghz(2)
    many = SparsePauliOp.from_list(
        [
            *[("ZZ", 1.0), ("XX", 0.5), ("YY", -0.3), ("IZ", 0.2), ("XZ", 0.7)],
            *[("ZX", 0.1), ("II", 0.25), ("YI", 0.4), ("XY", -0.6)],
        ]
    )
    pubs = [(bell, [many, "ZZ", "XI"]), (ghz(4), [zz_chain(4), "XXXX", "ZIII"], None, 0.02)]
    result = run(ideal_backend, pubs, options={"seed_simulator": 1})
    assert_agrees(result, exact(pubs))
    assert result[0].metadata["target_precision"] == 0.015625
    assert result[1].metadata["target_precision"] == 0.02
    assert result[1].metadata["shots"] == 2500  # ceil(1 / 0.02**2)
    # Exact values with noise of the requested precision, as Aer's EstimatorV2 gives.
    assert np.all(result[0].data.stds == 0.015625)
    assert np.all(result[1].data.ensemble_standard_error == 0.02)
    assert [r.metadata["simulation"] for r in result] == ["exact", "exact"]


def test_parameter_sets_and_observables_broadcast(ideal_backend: AerSimulator) -> None:
    values = np.random.default_rng(3).uniform(-np.pi, np.pi, size=(3, 1, 4))
    observables = [["ZZ", "XI", SparsePauliOp.from_list([("YY", 1.0), ("ZX", 2.0)])]]
    pubs = [(ansatz(), observables, values, 0.03)]
    result = run(ideal_backend, pubs, options={"seed_simulator": 2, "default_shots": None})
    assert result[0].data.evs.shape == (3, 3)
    assert result[0].data.stds.shape == (3, 3)
    assert result[0].data.ensemble_standard_error.shape == (3, 3)
    assert_agrees(result, exact(pubs))


def test_precision_zero_on_an_ideal_simulator_gives_the_exact_values(
    ideal_backend: AerSimulator,
) -> None:
    observables = ["ZZ", "XX", "IZ", SparsePauliOp.from_list([("XY", 0.5), ("II", -1.0)])]
    # Transpiled by the program onto the wide simulator (a gate it lacks), so laid out
    # there with its observables; and laid out by the user on two of its qubits.
    composite = QuantumCircuit(2)
    composite.append(ghz(2).to_gate(label="bell"), [0, 1])
    composite.rx(0.3, 1)
    manager = generate_preset_pass_manager(0, backend=ideal_backend, initial_layout=[7, 3])
    laid_out = manager.run(composite)
    on_device = [SparsePauliOp(o).apply_layout(laid_out.layout) for o in observables]
    pubs = [vqe_pub(6), (composite, observables), (laid_out, on_device)]
    reference = exact(pubs[:2])
    result = run(ideal_backend, [EstimatorPub.coerce(pub, 0.0) for pub in pubs])
    assert laid_out.num_qubits == ideal_backend.num_qubits
    for pub_result, evs in zip(result, [*reference, reference[1]], strict=True):
        assert pub_result.data.evs.shape == evs.shape
        assert np.allclose(pub_result.data.evs, evs, rtol=0, atol=1e-9)
        assert np.all(pub_result.data.stds == 0)
        assert pub_result.metadata["simulation"] == "exact"
        assert pub_result.metadata["shots"] == 0


def test_the_same_seed_gives_the_same_values_and_another_seed_others(
    ideal_backend: AerSimulator,
) -> None:
    def evs(seed: int) -> np.ndarray[Any, Any]:
        result = run(ideal_backend, [vqe_pub(4)], options={"seed_estimator": seed})
        return np.asarray(result[0].data.evs)

    assert np.array_equal(evs(5), evs(5))
    assert not np.allclose(evs(5), evs(6))


def test_exact_values_get_gaussian_noise_of_the_requested_precision(
    ideal_backend: AerSimulator,
) -> None:
    pub = vqe_pub(140)  # 420 values
    result = run(ideal_backend, [(*pub, 0.05)], options={"seed_simulator": 8})
    deviations = (result[0].data.evs - exact([pub])[0]).ravel()
    assert 0.03 < deviations.std() < 0.07
    assert abs(deviations.mean()) < 0.02
    assert np.all(result[0].data.stds == 0.05)


def test_default_shots_set_the_precision_of_the_exact_values(ideal_backend: AerSimulator) -> None:
    result = run(ideal_backend, [(ghz(2), "ZZ", None, 0.2)], options={"default_shots": 400})
    assert result[0].data.stds == 0.05  # IBM: default_shots override the precision
    assert result[0].metadata["shots"] == 400
    assert result[0].metadata["target_precision"] == 0.2


def test_circuits_with_mid_circuit_measurements_are_sampled(ideal_backend: AerSimulator) -> None:
    circuit = QuantumCircuit(2, 1)
    circuit.h(0)
    circuit.measure(0, 0)
    circuit.cx(0, 1)  # a classical mixture of 00 and 11: ZZ is certain, XX is not
    result = run(ideal_backend, [(circuit, ["ZZ", "XX"])], options={"seed_simulator": 9})
    assert result[0].metadata["simulation"] == "sampled"
    assert result[0].data.evs[0] == 1.0
    assert abs(result[0].data.evs[1]) < 5 * 0.015625


def test_a_noisy_device_samples_and_refuses_precision_zero(fake_5q: AerSimulator) -> None:
    result = run(fake_5q, [(ghz(2), "ZZ")], options={"seed_simulator": 1})
    assert result[0].metadata["simulation"] == "sampled"
    assert result[0].metadata["shots"] == 4096
    with pytest.raises(InputValueError, match="precision 0"):
        run(fake_5q, [EstimatorPub.coerce((ghz(2), "ZZ"), 0.0)])


@pytest.mark.parametrize("case", ["exact", "exact_laid_out", "sampled"])
def test_a_repeated_pub_reuses_its_prepared_circuits(
    case: str, ideal_backend: AerSimulator, fake_5q: AerSimulator
) -> None:
    backend = fake_5q if case == "sampled" else ideal_backend
    circuit, observables, values = vqe_pub(3)
    if case == "exact_laid_out":  # laid-out circuits (all transpiled ones) have stable keys too
        manager = generate_preset_pass_manager(0, backend=ideal_backend, initial_layout=[5, 2])
        circuit = manager.run(circuit)
        observables = [[SparsePauliOp(o).apply_layout(circuit.layout) for o in observables[0]]]

    evs: list[np.ndarray[Any, Any]] = []

    def counts(observables: Any) -> tuple[int, int]:
        cache.begin_job()
        result = run(backend, [(circuit, observables, values)], options={"seed_simulator": 4})
        evs.append(result[0].data.evs)
        counters = cache.counters()
        return counters["preparation_hits"], counters["preparation_misses"]

    hits, misses = counts(observables)
    assert misses > 0
    assert counts(observables) == (hits + misses, 0)
    assert np.array_equal(evs[0], evs[1])  # what is reused changes nothing
    # Another observable on the same circuit: its unmeasured circuit is reused.
    assert counts(observables[0][0])[0] >= 1


def test_a_worker_shared_by_users_forgets_prepared_circuits(ideal_backend: AerSimulator) -> None:
    pub = vqe_pub(2)
    run(ideal_backend, [pub])
    cache.begin_job(keep_transpiled=False)  # the next job may be another user's
    run(ideal_backend, [pub])
    assert cache.counters()["preparation_hits"] == 0


def test_a_cached_circuit_is_not_changed_by_what_is_built_on_it(
    ideal_backend: AerSimulator,
) -> None:
    circuit, observables, values = vqe_pub(3)
    for observable in (observables, "ZZ", "XI"):
        pub = (circuit, observable, values)
        result = run(ideal_backend, [EstimatorPub.coerce(pub, 0.0)])
        assert np.allclose(result[0].data.evs, exact([pub])[0], rtol=0, atol=1e-9)
    assert circuit.count_ops() == ansatz().count_ops()  # no saves, no measurements added


def test_isa_circuits_on_a_device_are_laid_out_with_their_observables(
    fake_5q: AerSimulator,
) -> None:
    # A qubit order the transpiler may permute: the observable must follow it.
    circuit = QuantumCircuit(3)
    circuit.x(2)
    circuit.h(0)
    pubs = [(circuit, ["IIZ", "ZII", "IIX"])]
    result = run(fake_5q, pubs, resilience_level=1, options={"seed_simulator": 3})
    assert np.allclose(result[0].data.evs, [0.0, -1.0, 1.0], atol=0.1)


def noisy_error(backend: AerSimulator, level: int, seed: int) -> float:
    pub = (ghz(5), zz_chain(5))
    options = {"seed_simulator": seed, "default_shots": 4000}
    result = run(backend, [pub], options=options, resilience_level=level)
    return float(abs(result[0].data.evs - 4.0))


def test_mitigation_levels_reduce_the_error_on_a_noisy_device(fake_5q: AerSimulator) -> None:
    errors = {
        level: np.mean([noisy_error(fake_5q, level, s) for s in range(3)]) for level in range(3)
    }
    assert errors[0] > 2 * errors[1] > 0
    assert errors[1] > errors[2]
    assert errors[2] < 0.1


def test_zne_reports_every_noise_factor_and_extrapolation(fake_5q: AerSimulator) -> None:
    options = {
        "seed_simulator": 4,
        "default_precision": 0.03,
        "resilience": {"zne": {"extrapolator": ["exponential", "linear"]}},
    }
    result = run(fake_5q, [(ghz(3), ["ZZI", "IZZ"])], options=options, resilience_level=2)
    data = result[0].data
    assert data.evs_noise_factors.shape == (2, 3)
    assert data.evs_extrapolated.shape == (2, 2, 4)  # 2 extrapolators at 0, 1, 3, 5
    # More noise, smaller correlations: the amplification really happened.
    assert np.all(data.evs_noise_factors[:, 0] > data.evs_noise_factors[:, 2])
    zne = result[0].metadata["resilience"]["zne"]
    assert zne["noise_factors"] == [1.0, 3.0, 5.0]
    assert set(zne["extrapolator"]) <= {"exponential", "linear"}
    assert np.all(data.stds > 0)


def test_the_result_survives_the_runtime_encoding(ideal_backend: AerSimulator) -> None:
    pubs = [(ghz(2), ["ZZ", "XX"]), (ansatz(), "ZZ", np.zeros((2, 4)))]
    result = run(ideal_backend, pubs, resilience_level=0)
    decoded = loads(dumps(result))
    assert decoded.metadata["options"]["resilience_level"] == 0
    for ours, back in zip(result, decoded, strict=True):
        assert np.array_equal(back.data.evs, ours.data.evs)
        assert np.array_equal(back.data.stds, ours.data.stds)
        assert back.metadata == ours.metadata


def test_the_program_is_registered_as_a_builtin() -> None:
    assert load_builtin_module("estimator") is estimator


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"pubs": [(ghz(6), "ZZZZZZ")]}, "has 6 qubits, but the backend has only 5"),
        ({"pubs": [(ghz(2), "ZZZ")]}, "(?i)qubits"),
        ({"pubs": [(ansatz(), "ZZ", np.zeros((3, 2)))]}, "has 4 parameters"),
        ({"pubs": [(ghz(2), "ZZ", None, 0.0)]}, "precision must be > 0"),
        ({"pubs": [(ghz(2), "ZZ", None, -0.1)]}, "precision must be > 0"),
        ({"pubs": [(ghz(2),)]}, "needs a circuit and observables"),
        ({"pubs": [(ghz(2), "ZZ")], "resilience_level": 3}, "resilience_level"),
        ({"pubs": [(ghz(2), "ZZ")], "options": {"default_precision": 0}}, "default_precision"),
        ({"pubs": [(ghz(2), "ZZ")], "options": {"resilience": {"zne": {"x": 1}}}}, "zne.x"),
        (
            {
                "pubs": [(ghz(2), "ZZ")],
                "options": {"resilience": {"pec_mitigation": True, "zne_mitigation": True}},
            },
            "cannot both be on",
        ),
        (
            {
                "pubs": [(ghz(2), "ZZ")],
                "options": {"resilience": {"zne": {"noise_factors": [0.5]}}},
            },
            "noise_factors",
        ),
    ],
)
def test_bad_inputs_are_refused_at_submission(inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputValueError, match=message):
        estimator.validate(inputs, num_qubits=5)


def test_inputs_built_by_the_ibm_client_are_accepted() -> None:
    from qiskit_ibm_runtime.options import EstimatorOptions

    options = EstimatorOptions()
    options.resilience_level = 2
    options.default_precision = 0.05
    options.resilience.zne.noise_factors = (1, 2, 3)
    options.twirling.num_randomizations = 4
    options.simulator.seed_simulator = 7
    options.environment.job_tags = ["a"]
    from dataclasses import asdict

    inputs = EstimatorOptions._get_program_inputs(asdict(options))
    pub = [ghz(2), [{"ZZ": 1.0}], np.array([]), None]
    estimator.validate({"pubs": [pub], **inputs}, num_qubits=5)


def test_mitigation_levels_reduce_the_error_on_the_27_qubit_device() -> None:
    """The issue's check: GHZ-5 parity on the noisy 27-qubit device, several seeds."""
    from qruntime.backends import DeviceRunner

    device = DeviceRunner(load_catalogue().get("fake_27q"))
    errors = {
        level: np.mean([noisy_error(device, level, s) for s in range(3)]) for level in range(3)
    }
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.2, errors
