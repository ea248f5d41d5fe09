"""Resolving the sampler's and estimator's options: IBM's names and defaults, strict checks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from qruntime.errors import InputValueError
from qruntime.primitives.options import resolve_options


def test_unset_options_take_ibms_defaults() -> None:
    sampler = resolve_options("sampler", None)
    assert sampler.default_shots == 4096
    assert sampler.resilience_level == 0
    assert not sampler.twirling.enable_gates
    assert not sampler.twirling.enable_measure
    estimator = resolve_options("estimator", {})
    assert estimator.default_precision == 0.015625
    assert estimator.default_shots is None
    assert estimator.resilience_level == 1
    assert estimator.resilience.measure_mitigation
    assert not estimator.resilience.zne_mitigation
    assert estimator.twirling.enable_measure
    assert not estimator.twirling.enable_gates
    assert estimator.resilience.zne.noise_factors == (1.0, 3.0, 5.0)
    assert estimator.optimization_level == 1
    assert not estimator.dynamical_decoupling.enable


@pytest.mark.parametrize(
    ("level", "measure", "zne", "gates"),
    [(0, False, False, False), (1, True, False, False), (2, True, True, True)],
)
def test_the_resilience_level_sets_the_unset_mitigation_flags(
    level: int, measure: bool, zne: bool, gates: bool
) -> None:
    options = resolve_options("estimator", None, resilience_level=level)
    assert options.resilience.measure_mitigation is measure
    assert options.resilience.zne_mitigation is zne
    assert options.twirling.enable_gates is gates


def test_explicit_flags_override_the_level() -> None:
    raw = {
        "resilience_level": 2,
        "resilience": {"zne_mitigation": False},
        "twirling": {"enable_measure": False},
    }
    options = resolve_options("estimator", raw)
    assert options.resilience.measure_mitigation
    assert not options.resilience.zne_mitigation
    assert not options.twirling.enable_measure


def test_nested_values_are_resolved() -> None:
    raw = {
        "default_shots": 100,
        "twirling": {"num_randomizations": "auto", "shots_per_randomization": 20},
        "resilience": {"zne": {"noise_factors": [1, 2, 3], "extrapolator": "quadratic"}},
        "dynamical_decoupling": {"enable": True, "sequence_type": "XY4"},
        "execution": {"init_qubits": False, "rep_delay": 0.0001},
        "environment": {"log_level": "INFO", "job_tags": ["x"]},
        "experimental": {"optimization_level": 3},
    }
    options = resolve_options("estimator", raw)
    assert options.default_shots == 100
    assert options.twirling.num_randomizations is None
    assert options.twirling.shots_per_randomization == 20
    assert options.resilience.zne.noise_factors == (1.0, 2.0, 3.0)
    assert options.resilience.zne.extrapolator == ("quadratic",)
    assert options.dynamical_decoupling.sequence_type == "XY4"
    assert options.execution == type(options.execution)(init_qubits=False, rep_delay=0.0001)
    assert options.environment["job_tags"] == ["x"]
    assert options.optimization_level == 3
    assert options.to_dict()["resilience"]["zne"]["extrapolator"] == ("quadratic",)


def test_a_flat_seed_and_the_simulator_seed_are_the_same_option() -> None:
    assert resolve_options("sampler", {"seed_simulator": 5}).seed_simulator == 5
    assert resolve_options("sampler", {"simulator": {"seed_simulator": 6}}).seed_simulator == 6
    with pytest.raises(InputValueError, match="seed_simulator differs"):
        resolve_options("sampler", {"seed_simulator": 5, "simulator": {"seed_simulator": 6}})


def test_an_unknown_key_is_named_with_the_known_ones() -> None:
    with pytest.raises(InputValueError) as info:
        resolve_options("estimator", {"twirling": {"enable_gate": True}})
    message = str(info.value)
    assert "'options.twirling.enable_gate'" in message
    assert "enable_gates" in message
    assert "num_randomizations" in message


def test_estimator_only_options_are_unknown_to_the_sampler() -> None:
    for key in ("resilience_level", "default_precision", "resilience"):
        with pytest.raises(InputValueError, match=f"options.{key}"):
            resolve_options("sampler", {key: 1})


@pytest.mark.parametrize(
    "raw",
    [
        {"default_shots": -1},
        {"default_shots": 2.5},
        {"default_precision": 0},
        {"default_precision": float("inf")},
        {"resilience_level": 3},
        {"optimization_level": -1},
        {"optimization_level": True},
        {"twirling": {"num_randomizations": 0}},
        {"twirling": {"strategy": "none"}},
        {"dynamical_decoupling": {"sequence_type": "XZ"}},
        {"resilience": {"zne": {"noise_factors": [1, 0.5]}}},
        {"resilience": {"zne": {"extrapolator": "cubic"}}},
        {"resilience": {"zne_mitigation": True, "zne": {"noise_factors": [3]}}},
        {"resilience": {"zne_mitigation": True, "pec_mitigation": True}},
        {"resilience": {"pec": {"noise_gain": -1}}},
        {"resilience": {"layer_noise_learning": {"layer_pair_depths": [2, 2]}}},
        {"resilience": {"layer_noise_model": [{"qubits": [0, 1]}]}},
        {
            "resilience": {"zne_mitigation": True, "zne": {"amplifier": "pea"}},
            "twirling": {"enable_gates": False},
        },
        {"environment": {"log_level": "LOUD"}},
        {"execution": {"rep_delay": -1}},
        {"twirling": []},
    ],
)
def test_out_of_range_values_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(InputValueError):
        resolve_options("estimator", raw)


def test_the_level_may_come_beside_the_options_but_not_disagree() -> None:
    assert resolve_options("estimator", {}, resilience_level=0).resilience_level == 0
    with pytest.raises(InputValueError, match="both"):
        resolve_options("estimator", {"resilience_level": 1}, resilience_level=2)


def test_what_the_ibm_client_sends_for_its_own_options_is_accepted() -> None:
    from qiskit_ibm_runtime.options import EstimatorOptions, SamplerOptions

    estimator = EstimatorOptions(resilience_level=2, default_shots=500)
    estimator.resilience.zne.extrapolator = ["exponential", "linear"]
    estimator.twirling.strategy = "all"
    estimator.dynamical_decoupling.enable = True
    estimator.experimental = {"optimization_level": 0}
    inputs = EstimatorOptions._get_program_inputs(asdict(estimator))
    options = resolve_options(
        "estimator", inputs["options"], resilience_level=inputs["resilience_level"]
    )
    assert options.resilience.zne_mitigation
    assert options.default_shots == 500
    assert options.optimization_level == 0
    sampler = SamplerOptions(default_shots=123)
    sampler.twirling.enable_measure = True
    sampler.simulator.seed_simulator = 3
    inputs = SamplerOptions._get_program_inputs(asdict(sampler))
    options = resolve_options("sampler", inputs["options"])
    assert options.default_shots == 123
    assert options.twirling.enable_measure
    assert options.seed_simulator == 3
