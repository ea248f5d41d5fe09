"""The client's result decoders, fed real circuit-runner output through the runtime encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.result import QuasiDistribution, Result
from qiskit_aer import AerSimulator

from qruntime.client._decoders import ResultDecoder, RunnerResult
from qruntime.encoding import dumps
from qruntime.errors import InputValueError, QRuntimeError
from qruntime.programs import circuit_runner
from qruntime.programs.circuit_runner import clear_pass_manager_cache
from qruntime.programs.mitigation import clear_calibration_cache


class _SilentMessenger:
    def publish(self, message: Any, encoder: Any = None, final: bool = False) -> None:
        raise AssertionError("circuit-runner publishes no interim results")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_pass_manager_cache()
    clear_calibration_cache()
    yield
    clear_pass_manager_cache()
    clear_calibration_cache()


@pytest.fixture(scope="module")
def backend() -> AerSimulator:
    return AerSimulator.from_backend(GenericBackendV2(5, seed=3))


def _bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def _partly_measured() -> QuantumCircuit:
    """Three classical bits in two registers; bit 1 is never written."""
    qubits = QuantumRegister(2, "q")
    low, high = ClassicalRegister(2, "low"), ClassicalRegister(1, "high")
    circuit = QuantumCircuit(qubits, low, high, name="partial")
    circuit.x(1)
    circuit.measure(0, low[0])
    circuit.measure(1, high[0])
    return circuit


def _run(backend: AerSimulator, circuits: Any, **options: Any) -> str:
    """circuit-runner's final result as the client receives it: runtime JSON text."""
    output = circuit_runner.main(backend, _SilentMessenger(), circuits=circuits, **options)
    return dumps(output)


def test_result_decoder_rebuilds_runtime_encoded_values() -> None:
    decoded = ResultDecoder.decode(dumps({"values": np.arange(3), "z": 1 + 2j}))
    assert np.array_equal(decoded["values"], np.arange(3))
    assert decoded["z"] == 1 + 2j


def test_result_decoder_returns_text_that_is_not_json_as_is() -> None:
    assert ResultDecoder.decode("All done!") == "All done!"


def test_runner_result_is_a_qiskit_result_with_the_runs_counts(backend: AerSimulator) -> None:
    text = _run(backend, [_bell(), _partly_measured()], shots=200, seed_simulator=5)
    result = RunnerResult.decode(text)
    assert isinstance(result, Result)
    assert isinstance(result, RunnerResult)
    raw = json.loads(text)
    assert result.get_counts(0) == {
        format(int(k, 16), "02b"): v for k, v in raw["results"][0]["data"]["counts"].items()
    }
    assert sum(result.get_counts("partial").values()) == 200


def test_runner_result_decodes_an_already_parsed_dict(backend: AerSimulator) -> None:
    parsed = json.loads(_run(backend, _bell(), shots=50))
    assert (
        RunnerResult.decode(parsed).get_counts()
        == RunnerResult.decode(json.dumps(parsed)).get_counts()
    )


def test_quasiprobabilities_come_back_as_a_distribution_over_bitstrings(
    backend: AerSimulator,
) -> None:
    text = _run(backend, _bell(), shots=4000, seed_simulator=8, measurement_error_mitigation=True)
    result = RunnerResult.decode(text)
    quasi = result.get_quasiprobabilities()
    assert isinstance(quasi, QuasiDistribution)
    assert quasi.shots == 4000
    assert sum(quasi.values()) == pytest.approx(1.0)
    raw = json.loads(text)["results"][0]["data"]["quasiprobabilities"]
    assert quasi.binary_probabilities() == pytest.approx(
        {format(int(k, 16), "02b"): v for k, v in raw.items()}
    )
    assert quasi.binary_probabilities()["11"] > 0.4


def test_quasiprobability_keys_are_as_wide_as_all_classical_bits(backend: AerSimulator) -> None:
    text = _run(
        backend,
        _partly_measured(),
        shots=1000,
        seed_simulator=2,
        measurement_error_mitigation=True,
    )
    quasi = RunnerResult.decode(text).get_quasiprobabilities(0)
    assert isinstance(quasi, QuasiDistribution)
    probabilities = quasi.binary_probabilities()
    assert all(len(key) == 3 for key in probabilities)
    # Qubit 1 was flipped and read into the high register (bit 2).
    assert max(probabilities, key=probabilities.__getitem__) == "100"


def test_several_experiments_give_a_list_and_can_be_picked_by_name(backend: AerSimulator) -> None:
    result = RunnerResult.decode(
        _run(
            backend,
            [_bell(), _partly_measured()],
            shots=300,
            seed_simulator=4,
            measurement_error_mitigation=True,
        )
    )
    every = result.get_quasiprobabilities()
    assert isinstance(every, list)
    assert len(every) == 2
    assert result.get_quasiprobabilities("partial") == every[1]


def test_final_measurement_mapping_gets_integer_qubits_back(backend: AerSimulator) -> None:
    result = RunnerResult.decode(
        _run(
            backend,
            _bell(),
            shots=100,
            initial_layout=[2, 1],
            optimization_level=0,
            measurement_error_mitigation=True,
        )
    )
    assert result.final_measurement_mapping(0) == {2: 0, 1: 1}


def test_asking_for_quasiprobabilities_of_an_unmitigated_job_says_how_to_get_them(
    backend: AerSimulator,
) -> None:
    result = RunnerResult.decode(_run(backend, _bell(), shots=10))
    with pytest.raises(QRuntimeError, match="measurement_error_mitigation=True"):
        result.get_quasiprobabilities()
    with pytest.raises(QRuntimeError, match="measurement_error_mitigation=True"):
        result.final_measurement_mapping()


def test_text_that_is_not_a_runner_result_is_refused() -> None:
    with pytest.raises(InputValueError, match="not a circuit-runner result"):
        RunnerResult.decode("All done!")
