"""The sampler on an ideal simulator draws shots from a circuit's exact probabilities.

Only where that gives the same distribution as running every shot: measurements that
all come last, no noise, no twirling. Everything else is run shot by shot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.primitives import StatevectorSampler
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from qruntime.backends import build_simulator, load_catalogue
from qruntime.programs import sampler


def run(backend: Any, pubs: list[Any], **options: Any) -> Any:
    return sampler.main(backend, None, pubs=pubs, options=options, version=2)


def ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


def frequencies(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()}


def assert_close(measured: dict[str, float], expected: dict[str, float], shots: int) -> None:
    for key in set(measured) | set(expected):
        p = expected.get(key, 0.0)
        sigma = max(np.sqrt(p * (1 - p) / shots), 1 / shots)
        assert abs(measured.get(key, 0.0) - p) <= 5 * sigma + 1e-9, (key, measured, expected)


def test_final_measurements_are_drawn_from_the_exact_probabilities(
    ideal_backend: AerSimulator,
) -> None:
    circuit = QuantumCircuit(3)
    circuit.ry(1.1, 0)
    circuit.cx(0, 1)
    circuit.ry(0.4, 2)
    circuit.measure_all()
    result = run(ideal_backend, [(circuit, None, 4000)], seed_simulator=5)
    reference = StatevectorSampler(default_shots=200_000, seed=1).run([circuit]).result()
    assert result[0].metadata["simulation"] == "probabilities"
    assert result[0].data.meas.num_shots == 4000
    assert_close(
        frequencies(result[0].data.meas.get_counts()),
        frequencies(reference[0].data.meas.get_counts()),
        4000,
    )


def test_each_qubit_lands_in_the_bit_it_was_measured_into(ideal_backend: AerSimulator) -> None:
    circuit = QuantumCircuit(QuantumRegister(3), ClassicalRegister(2, "low"))
    high = ClassicalRegister(2, "high")
    circuit.add_register(high)
    circuit.x(0)
    circuit.x(2)
    circuit.measure(0, 3)  # into high[1]
    circuit.measure(2, 0)  # into low[0]; qubit 1 and bits 1 and 2 are never measured
    result = run(ideal_backend, [(circuit, None, 50)])
    assert result[0].metadata["simulation"] == "probabilities"
    assert result[0].data.low.get_counts() == {"01": 50}
    assert result[0].data.high.get_counts() == {"10": 50}


def test_parameter_sets_each_get_their_own_probabilities(ideal_backend: AerSimulator) -> None:
    theta = Parameter("t")
    circuit = QuantumCircuit(1)
    circuit.ry(theta, 0)
    circuit.measure_all()
    values = np.array([[0.0], [np.pi], [np.pi / 2]])
    result = run(ideal_backend, [(circuit, values, 2000)], seed_simulator=3)
    bits = result[0].data.meas
    assert result[0].metadata["simulation"] == "probabilities"
    assert bits.shape == (3,)
    assert bits[0].get_counts() == {"0": 2000}
    assert bits[1].get_counts() == {"1": 2000}
    assert_close(frequencies(bits[2].get_counts()), {"0": 0.5, "1": 0.5}, 2000)


def test_a_circuit_without_parameters_run_at_several_sets_draws_each_anew(
    ideal_backend: AerSimulator,
) -> None:
    result = run(ideal_backend, [(ghz(2), np.zeros((3, 0)), 500)], seed_simulator=4)
    bits = result[0].data.meas
    assert bits.shape == (3,)
    draws = [bits[i].array.tobytes() for i in range(3)]
    assert len(set(draws)) == 3  # three draws, not one repeated
    for i in range(3):
        assert set(bits[i].get_counts()) == {"00", "11"}


def test_a_seed_makes_the_drawn_shots_reproducible(ideal_backend: AerSimulator) -> None:
    first = run(ideal_backend, [(ghz(3), None, 100)], seed_simulator=8)
    second = run(ideal_backend, [(ghz(3), None, 100)], seed_simulator=8)
    assert np.array_equal(first[0].data.meas.array, second[0].data.meas.array)


def test_a_mid_circuit_measurement_runs_shot_by_shot(ideal_backend: AerSimulator) -> None:
    circuit = QuantumCircuit(1, 2)
    circuit.h(0)
    circuit.measure(0, 0)
    circuit.h(0)
    circuit.measure(0, 1)
    result = run(ideal_backend, [(circuit, None, 2000)], seed_simulator=6)
    assert result[0].metadata["simulation"] == "sampled"
    # The second measurement is independent of the first: four outcomes, a quarter each.
    expected = dict.fromkeys(("00", "01", "10", "11"), 0.25)
    assert_close(frequencies(result[0].data.c.get_counts()), expected, 2000)


@pytest.mark.parametrize(
    "options",
    [
        {"twirling": {"enable_measure": True}},
        {"twirling": {"enable_gates": True, "num_randomizations": 4}},
    ],
)
def test_twirled_jobs_run_shot_by_shot(ideal_backend: AerSimulator, options: Any) -> None:
    result = run(ideal_backend, [(ghz(2), None, 400)], seed_simulator=2, **options)
    assert result[0].metadata["simulation"] == "sampled"
    assert set(result[0].data.meas.get_counts()) == {"00", "11"}


def test_a_noisy_device_runs_shot_by_shot() -> None:
    device = build_simulator(load_catalogue().get("fake_5q"))
    target = load_catalogue().get("fake_5q").target
    isa = generate_preset_pass_manager(1, target=target).run(ghz(2))
    result = run(device, [(isa, None, 500)], seed_simulator=1)
    assert result[0].metadata["simulation"] == "sampled"
    assert result[0].data.meas.num_shots == 500


def test_a_circuit_sent_again_reuses_its_probabilities_and_draws_fresh_shots(
    ideal_backend: AerSimulator,
) -> None:
    """The plan and the probabilities are kept by the circuit's content: a job that sends
    the same circuit again runs no simulation, and still gets shots of its own."""
    from qruntime.programs import cache

    cache.begin_job(keep_transpiled=False)  # a worker whose caches hold nothing yet
    first = run(ideal_backend, [(ghz(3), None, 2000)])
    cold = cache.end_job()
    cache.begin_job(keep_transpiled=True)  # the same owner's next job
    second = run(ideal_backend, [(ghz(3), None, 2000)])  # a new object, the same content
    warm = cache.end_job()
    assert second[0].metadata["simulation"] == "probabilities"
    assert warm["preparation_hits"] >= cold["preparation_hits"] + 2  # plan, probabilities
    assert warm["preparation_misses"] == 0
    assert not np.array_equal(first[0].data.meas.array, second[0].data.meas.array)
    assert_close(frequencies(second[0].data.meas.get_counts()), {"000": 0.5, "111": 0.5}, 2000)
    cache.begin_job(keep_transpiled=False)  # another owner's job: nothing is reused
    run(ideal_backend, [(ghz(3), None, 10)])
    assert cache.end_job()["preparation_hits"] == 0


def test_a_parameterized_circuit_keeps_aer_s_form_and_binds_new_values(
    ideal_backend: AerSimulator,
) -> None:
    from qruntime.programs import cache

    theta = Parameter("t")
    circuit = QuantumCircuit(1)
    circuit.ry(theta, 0)
    circuit.measure_all()
    cache.begin_job(keep_transpiled=False)
    run(ideal_backend, [(circuit, np.array([[0.0]]), 100)])
    cache.end_job()
    cache.begin_job(keep_transpiled=True)
    result = run(ideal_backend, [(circuit, np.array([[np.pi]]), 100)])
    warm = cache.end_job()
    assert warm["preparation_misses"] == 0
    assert result[0].data.meas.get_counts() == {"1": 100}  # the new value, not the old
