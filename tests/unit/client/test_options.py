"""The client's primitive options: strict names, server-checked values, the older Options."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from qruntime.client._options import (
    EstimatorOptions,
    Options,
    SamplerOptions,
    TwirlingOptions,
    coerce_options,
    wire_options,
)
from qruntime.errors import InputValueError
from qruntime.primitives import options as primitive_options


def option_tree(cls: type[Any]) -> dict[str, Any]:
    """Field names of an options class, nested groups as sub-dicts."""
    tree: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        factory: Any = f.default_factory
        nested = isinstance(factory, type) and dataclasses.is_dataclass(factory)
        tree[f.name] = option_tree(factory) if nested else None
    return tree


def spec_tree(spec: Mapping[str, Any], *, leaves: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        key: spec_tree(value) if isinstance(value, Mapping) and key not in leaves else None
        for key, value in spec.items()
    }


@pytest.mark.parametrize(
    ("cls", "spec"),
    [
        (SamplerOptions, primitive_options._SAMPLER_SPEC),
        (EstimatorOptions, primitive_options._ESTIMATOR_SPEC),
    ],
    ids=["sampler", "estimator"],
)
def test_option_names_are_exactly_those_the_server_accepts(cls: type[Any], spec: Any) -> None:
    # "experimental" is a free-form dict on the client; the server checks its keys.
    assert option_tree(cls) == spec_tree(spec, leaves=("experimental",))


def test_dict_options_become_nested_dataclasses() -> None:
    options = coerce_options("sampler", {"default_shots": 10, "twirling": {"enable_gates": True}})
    assert isinstance(options, SamplerOptions)
    assert options.default_shots == 10
    assert isinstance(options.twirling, TwirlingOptions)
    assert options.twirling.enable_gates is True
    assert options.twirling.enable_measure is None


def test_to_dict_leaves_out_unset_values_and_empty_groups() -> None:
    options = EstimatorOptions(resilience_level=2)
    options.resilience.zne.noise_factors = [1, 2, 3]
    assert options.to_dict() == {
        "resilience_level": 2,
        "resilience": {"zne": {"noise_factors": [1, 2, 3]}},
    }
    assert SamplerOptions().to_dict() == {}


def test_wire_options_keep_the_callback_on_the_client() -> None:
    options = SamplerOptions()
    options.environment.callback = print
    assert wire_options(options) == {}
    options.environment.job_tags = ["a"]
    assert wire_options(options) == {"environment": {"job_tags": ["a"]}}
    assert options.environment.callback is print


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shots": 100}, r"options\.shots \(did you mean 'default_shots'\?\)"),
        ({"twirling": {"enable": True}}, r"options\.twirling\.enable .*enable_gates"),
        ({"resilience_level": 1}, r"options\.resilience_level"),  # an estimator option
        ({"default_shots": -1}, r"default_shots must be an integer >= 1, not -1"),
        ({"optimization_level": 4}, r"optimization_level must be an integer from 0 to 3"),
        ({"environment": {"log_level": "LOUD"}}, r"log_level"),
        ({"twirling": 3}, r"options\.twirling must be a TwirlingOptions or a dict"),
        ("default_shots=3", r"options must be a dict"),
    ],
)
def test_bad_sampler_options_are_refused_with_a_message_naming_them(
    options: Any, message: str
) -> None:
    with pytest.raises(InputValueError, match=message):
        coerce_options("sampler", options)


def test_estimator_options_out_of_range_are_refused() -> None:
    with pytest.raises(InputValueError, match="resilience_level"):
        coerce_options("estimator", {"resilience_level": 3})
    with pytest.raises(InputValueError, match="default_precision"):
        coerce_options("estimator", EstimatorOptions(default_precision=-0.1))


def test_setting_an_unknown_attribute_is_refused() -> None:
    options = SamplerOptions()
    with pytest.raises(InputValueError, match=r"SamplerOptions\.shots"):
        options.shots = 3  # type: ignore[attr-defined]
    with pytest.raises(InputValueError, match=r"enable_gates"):
        options.twirling.enable = True  # type: ignore[attr-defined]
    with pytest.raises(InputValueError, match="default_shots"):
        options.update(default_shot=3)


def test_a_group_can_be_assigned_as_a_dict_or_updated_in_part() -> None:
    options = SamplerOptions()
    options.twirling = {"enable_measure": True}  # type: ignore[assignment]
    assert options.twirling == TwirlingOptions(enable_measure=True)
    options.update(default_shots=5, twirling={"strategy": "all"})
    assert options.twirling == TwirlingOptions(enable_measure=True, strategy="all")
    assert options.default_shots == 5
    with pytest.raises(
        InputValueError, match=r"SamplerOptions\.twirling must be a TwirlingOptions or a dict"
    ):
        options.twirling = 7  # type: ignore[assignment]


def test_coerced_options_are_a_copy() -> None:
    given = SamplerOptions(default_shots=10)
    options = coerce_options("sampler", given)
    given.default_shots = 99
    assert options.default_shots == 10


def test_the_other_primitives_options_class_is_refused() -> None:
    with pytest.raises(InputValueError, match="SamplerOptions"):
        coerce_options("sampler", EstimatorOptions())
    with pytest.raises(InputValueError, match="EstimatorOptions"):
        coerce_options("estimator", SamplerOptions())


def test_legacy_options_map_to_the_v2_names() -> None:
    legacy = Options(
        optimization_level=3,
        resilience_level=2,
        max_execution_time=60,
        execution={"shots": 1000, "init_qubits": False},
        environment={"log_level": "INFO", "job_tags": ["old"]},
        simulator={"seed_simulator": 7, "basis_gates": ["cx", "rz", "sx"]},
        resilience={
            "noise_factors": (1, 3),
            "extrapolator": "QuadraticExtrapolator",
            "noise_amplifier": "GlobalFoldingAmplifier",
        },
    )
    options = coerce_options("estimator", legacy)
    assert options.to_dict() == {
        "default_shots": 1000,
        "resilience_level": 2,
        "seed_simulator": 7,
        "optimization_level": 3,
        "max_execution_time": 60,
        "resilience": {
            "zne": {
                "amplifier": "global_folding",
                "noise_factors": [1, 3],
                "extrapolator": "polynomial_degree_2",
            }
        },
        "execution": {"init_qubits": False},
        "environment": {"log_level": "INFO", "job_tags": ["old"]},
        "simulator": {"basis_gates": ["cx", "rz", "sx"]},
    }


def test_legacy_options_without_a_v2_place_are_ignored_with_a_warning() -> None:
    legacy = Options(optimization_level=1, resilience_level=1)
    legacy.transpilation.initial_layout = [0, 1]
    with pytest.warns(UserWarning, match=r"transpilation\.initial_layout, resilience_level"):
        options = coerce_options("sampler", legacy)
    assert options.to_dict() == {"optimization_level": 1}


def test_legacy_options_the_server_cannot_honour_are_refused() -> None:
    with pytest.raises(InputValueError, match="resilience_level 3"):
        coerce_options("estimator", Options(resilience_level=3))
    with pytest.raises(InputValueError, match="RichardsonExtrapolator"):
        coerce_options("estimator", Options(resilience={"extrapolator": "RichardsonExtrapolator"}))
    with pytest.raises(InputValueError, match=r"options\.execution\.shot "):
        Options.from_dict({"execution": {"shot": 5}})
