"""The circuit-runner program on real Aer backends: results, options, mitigation, bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qruntime.encoding import dumps
from qruntime.errors import InputValueError
from qruntime.programs import circuit_runner
from qruntime.programs.circuit_runner import cached_pass_manager


def _bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def _ghz3() -> QuantumCircuit:
    circuit = QuantumCircuit(3, 3, name="ghz3")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure([0, 1, 2], [0, 1, 2])
    return circuit


def _probabilities(counts: dict[str, float]) -> dict[int, float]:
    total = sum(counts.values())
    return {int(key, 16): value / total for key, value in counts.items()}


def _hellinger(p: dict[int, float], q: dict[int, float]) -> float:
    """Hellinger distance; negative quasi-probabilities count as zero."""
    keys = set(p) | set(q)
    return math.sqrt(
        0.5
        * sum(
            (math.sqrt(max(p.get(k, 0.0), 0.0)) - math.sqrt(max(q.get(k, 0.0), 0.0))) ** 2
            for k in keys
        )
    )


def _tvd(p: dict[int, float], q: dict[int, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def test_result_is_a_result_dict_with_counts_per_circuit(
    ideal_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        ideal_backend, messenger, circuits=[_bell(), _ghz3()], shots=300, seed_simulator=3
    )
    assert output["success"] is True
    assert [r["header"]["name"] for r in output["results"]] == ["bell", "ghz3"]
    bell_counts = output["results"][0]["data"]["counts"]
    assert set(bell_counts) <= {"0x0", "0x3"}
    assert sum(bell_counts.values()) == 300
    assert set(output["results"][1]["data"]["counts"]) <= {"0x0", "0x7"}
    assert "quasiprobabilities" not in output["results"][0]["data"]
    assert messenger.messages == []
    json.loads(dumps(output))  # the final result must travel as runtime JSON


def test_a_single_circuit_is_accepted_without_a_list(
    ideal_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(ideal_backend, messenger, circuits=_bell())
    assert len(output["results"]) == 1
    assert output["results"][0]["shots"] == 1024


def test_seed_simulator_makes_counts_reproducible(
    device_noisy_backend: AerSimulator, messenger: Any
) -> None:
    runs = [
        circuit_runner.main(
            device_noisy_backend, messenger, circuits=_ghz3(), shots=500, seed_simulator=42
        )["results"][0]["data"]["counts"]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_only_the_measured_qubits_are_simulated(
    device_noisy_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        device_noisy_backend, messenger, circuits=_bell(), measurement_error_mitigation=True
    )
    # The transpiled circuit spans the 5 device qubits; Aer must drop the idle three.
    assert output["results"][0]["header"]["n_qubits"] == 5
    assert output["results"][0]["metadata"]["num_qubits"] == 2


def test_initial_layout_places_circuits_on_the_chosen_physical_qubits(
    readout_noisy_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        readout_noisy_backend,
        messenger,
        circuits=_bell(),
        initial_layout=[3, 4],
        optimization_level=0,
        measurement_error_mitigation=True,
        seed_simulator=1,
    )
    assert output["results"][0]["header"]["final_measurement_mapping"] == {3: 0, 4: 1}


def test_mitigation_brings_bell_and_ghz_closer_to_the_ideal_distribution(
    readout_noisy_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        readout_noisy_backend,
        messenger,
        circuits=[_bell(), _ghz3()],
        shots=20000,
        seed_simulator=1234,
        seed_transpiler=7,
        measurement_error_mitigation=True,
    )
    ideals = [{0b00: 0.5, 0b11: 0.5}, {0b000: 0.5, 0b111: 0.5}]
    for experiment, ideal in zip(output["results"], ideals, strict=True):
        raw = _probabilities(experiment["data"]["counts"])
        quasi = {int(k, 16): v for k, v in experiment["data"]["quasiprobabilities"].items()}
        assert sum(quasi.values()) == pytest.approx(1.0)
        assert all(key.startswith("0x") for key in experiment["data"]["quasiprobabilities"])
        # Readout errors here are 2-10 %: mitigation must remove most of the distance.
        assert _tvd(quasi, ideal) < 0.5 * _tvd(raw, ideal)
        assert _hellinger(quasi, ideal) < 0.5 * _hellinger(raw, ideal)


def test_mitigation_with_the_device_noise_model_does_not_hurt(
    device_noisy_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        device_noisy_backend,
        messenger,
        circuits=_ghz3(),
        shots=20000,
        seed_simulator=99,
        measurement_error_mitigation=True,
    )
    experiment = output["results"][0]
    raw = _probabilities(experiment["data"]["counts"])
    quasi = {int(k, 16): v for k, v in experiment["data"]["quasiprobabilities"].items()}
    ideal = {0b000: 0.5, 0b111: 0.5}
    assert _tvd(quasi, ideal) < _tvd(raw, ideal)


def test_pass_managers_are_cached_per_backend_and_options(ideal_backend: AerSimulator) -> None:
    first = cached_pass_manager(ideal_backend, optimization_level=1, seed_transpiler=1)
    assert cached_pass_manager(ideal_backend, optimization_level=1, seed_transpiler=1) is first
    assert cached_pass_manager(ideal_backend, optimization_level=1, seed_transpiler=2) is not first
    assert cached_pass_manager(ideal_backend, optimization_level=2, seed_transpiler=1) is not first


@pytest.mark.parametrize(
    ("options", "used"),
    [
        ({"layout_method": "noise_adaptive"}, "layout"),
        ({"routing_method": "stochastic"}, "routing"),
        ({"layout_method": "dense", "routing_method": "lookahead"}, "layout"),
        ({"translation_method": "synthesis"}, "translation"),
    ],
)
def test_legacy_and_current_stage_methods_are_accepted(
    device_noisy_backend: AerSimulator, messenger: Any, options: dict[str, str], used: str
) -> None:
    output = circuit_runner.main(
        device_noisy_backend, messenger, circuits=_ghz3(), shots=10, **options
    )
    assert output["success"] is True, used


def test_transpiler_options_reach_the_pass_manager(
    device_noisy_backend: AerSimulator, messenger: Any
) -> None:
    output = circuit_runner.main(
        device_noisy_backend,
        messenger,
        circuits=_bell(),
        shots=10,
        transpiler_options={"initial_layout": [4, 3]},
        measurement_error_mitigation=True,
    )
    assert output["results"][0]["header"]["final_measurement_mapping"] == {4: 0, 3: 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"circuits": None}, "circuits is required"),
        ({"circuits": []}, "circuits is empty"),
        ({"circuits": ["not a circuit"]}, r"circuits\[0\] is a str"),
        ({"circuits": QuantumCircuit(6)}, r"circuits\[0\] has 6 qubits"),
        ({"optimization_level": 7}, "optimization_level must be 0, 1, 2 or 3"),
        ({"shots": 0}, "shots must be a positive integer"),
        ({"layout_method": "psychic"}, "layout_method 'psychic' is not one of"),
        ({"routing_method": "teleport"}, "routing_method 'teleport'"),
        ({"initial_layout": [0, 0]}, "initial_layout"),
        ({"initial_layout": [0, 1, 2]}, r"initial_layout has 3 qubits"),
        ({"transpiler_options": {"warp": 9}}, "unknown transpiler_options warp"),
        ({"transpiler_options": {"backend": None}}, "may not set backend"),
        ({"seed_transpiler": 1, "transpiler_options": {"seed_transpiler": 2}}, "given both"),
        ({"noise_model": {}}, "unknown parameter"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(
    readout_noisy_backend: AerSimulator, messenger: Any, kwargs: dict[str, Any], message: str
) -> None:
    arguments = {"circuits": _bell(), **kwargs}
    with pytest.raises(InputValueError, match=message):
        circuit_runner.main(readout_noisy_backend, messenger, **arguments)


def test_memory_is_passed_to_the_backend(ideal_backend: AerSimulator, messenger: Any) -> None:
    output = circuit_runner.main(ideal_backend, messenger, circuits=_bell(), shots=5, memory=True)
    assert len(output["results"][0]["data"]["memory"]) == 5


def test_metadata_spec_documents_the_legacy_parameters() -> None:
    spec = circuit_runner.METADATA["spec"]
    properties = spec["parameters"]["properties"]
    for name in (
        "circuits",
        "shots",
        "initial_layout",
        "layout_method",
        "routing_method",
        "translation_method",
        "seed_transpiler",
        "optimization_level",
        "init_qubits",
        "rep_delay",
        "transpiler_options",
        "measurement_error_mitigation",
    ):
        assert name in properties, name
    assert spec["parameters"]["required"] == ["circuits"]


def test_warm_up_builds_the_default_pass_manager_that_jobs_then_reuse(
    ideal_backend: AerSimulator,
) -> None:
    circuit_runner.warm_up(ideal_backend)
    warmed = cached_pass_manager(ideal_backend, optimization_level=1, qubits_initially_zero=True)
    assert (
        cached_pass_manager(ideal_backend, optimization_level=1, qubits_initially_zero=True)
        is warmed
    )


def test_mitigation_on_the_catalogues_fake_5q_device(messenger: Any) -> None:
    from qruntime.backends import build_simulator, load_catalogue

    backend = build_simulator(load_catalogue().get("fake_5q"))
    output = circuit_runner.main(
        backend,
        messenger,
        circuits=[_bell(), _ghz3()],
        shots=8000,
        seed_simulator=21,
        measurement_error_mitigation=True,
    )
    ideals = [{0b00: 0.5, 0b11: 0.5}, {0b000: 0.5, 0b111: 0.5}]
    for experiment, ideal in zip(output["results"], ideals, strict=True):
        raw = _probabilities(experiment["data"]["counts"])
        quasi = {int(k, 16): v for k, v in experiment["data"]["quasiprobabilities"].items()}
        assert _hellinger(quasi, ideal) < _hellinger(raw, ideal)
        assert _tvd(quasi, ideal) < _tvd(raw, ideal)
