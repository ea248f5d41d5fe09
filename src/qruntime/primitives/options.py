"""Options of the ``sampler`` and ``estimator`` programs, checked and resolved.

The built-in programs resolve a job's options with :func:`resolve_options`; the
client's ``SamplerV2`` and ``EstimatorV2`` run the same checks before they send one.

The option names are IBM's (``qiskit_ibm_runtime.options.SamplerOptions`` and
``EstimatorOptions``), nested the way its client sends them; unset values take
IBM's documented defaults. Every key is checked: an unknown key is refused with
a message that names it and the keys known at that place, and values out of
range are refused too. qruntime adds ``optimization_level`` (also accepted
under ``experimental``) and a flat ``seed_simulator``.

Usage::

    options = resolve_options("estimator", {"resilience": {"zne_mitigation": True}})
    options.resilience.zne.noise_factors     # (1.0, 3.0, 5.0)
    options.to_dict()                        # what the result's metadata reports
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from qruntime._lru import LRUCache
from qruntime.errors import InputValueError

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "EXTRAPOLATORS",
    "DynamicalDecouplingOptions",
    "ExecutionOptions",
    "LayerNoiseLearningOptions",
    "PecOptions",
    "PrimitiveKind",
    "PrimitiveOptions",
    "ResilienceOptions",
    "TwirlingOptions",
    "ZneOptions",
    "resolve_options",
]

PrimitiveKind = Literal["sampler", "estimator"]

DEFAULT_SHOTS = 4096
DEFAULT_PRECISION = 0.015625  # 1 / sqrt(4096)
EXTRAPOLATORS = (
    "linear",
    "exponential",
    "double_exponential",
    *(f"polynomial_degree_{d}" for d in range(1, 8)),
    "fallback",
    "quadratic",  # qruntime's alias of polynomial_degree_2
)
# Amplifiers this server implements: IBM's folding ones, and whole-circuit folding.
AMPLIFIERS = ("gate_folding", "gate_folding_front", "gate_folding_back", "global_folding")
_MAX_NOISE_FACTOR = 100.0

Validator = Callable[[str, Any], Any]
Spec = Mapping[str, "Validator | Spec"]


@dataclass(frozen=True)
class ZneOptions:
    """Zero-noise extrapolation: how noise is amplified and how it is extrapolated away."""

    amplifier: str = "gate_folding"
    noise_factors: tuple[float, ...] = (1.0, 3.0, 5.0)
    extrapolator: tuple[str, ...] = ("exponential", "linear")
    extrapolated_noise_factors: tuple[float, ...] | None = None


@dataclass(frozen=True)
class PecOptions:
    """Probabilistic error cancellation: ``noise_gain`` None is IBM's "auto"."""

    max_overhead: float | None = 100.0
    noise_gain: float | None = None


@dataclass(frozen=True)
class LayerNoiseLearningOptions:
    """How PEA and PEC learn the noise of layers they are not given (IBM's defaults)."""

    max_layers_to_learn: int = 4
    shots_per_randomization: int = 128
    num_randomizations: int = 32
    layer_pair_depths: tuple[int, ...] = (0, 1, 2, 4, 16, 32)


@dataclass(frozen=True)
class ResilienceOptions:
    """Error mitigation of the estimator; the flags are resolved from the level when unset.

    ``layer_noise_model`` is a ``NoiseLearnerResult`` or a list of ``LayerError``
    (``qruntime.layer_noise``) for PEA and PEC; None: they learn the layers' noise.
    """

    measure_mitigation: bool = False
    zne_mitigation: bool = False
    zne: ZneOptions = field(default_factory=ZneOptions)
    pec_mitigation: bool = False
    pec: PecOptions = field(default_factory=PecOptions)
    layer_noise_learning: LayerNoiseLearningOptions = field(
        default_factory=LayerNoiseLearningOptions
    )
    layer_noise_model: Any = None


@dataclass(frozen=True)
class TwirlingOptions:
    """Pauli twirling of 2-qubit gates and of measurements; ``None`` means IBM's "auto"."""

    enable_gates: bool = False
    enable_measure: bool = False
    num_randomizations: int | None = None
    shots_per_randomization: int | None = None
    strategy: str = "active-accum"


@dataclass(frozen=True)
class DynamicalDecouplingOptions:
    """Dynamical decoupling in idle windows (device-like backends only)."""

    enable: bool = False
    sequence_type: str = "XX"
    extra_slack_distribution: str = "middle"
    scheduling_method: str = "alap"
    skip_reset_qubits: bool = False


@dataclass(frozen=True)
class ExecutionOptions:
    """How shots are taken; ``rep_delay`` is ignored by simulators."""

    init_qubits: bool = True
    rep_delay: float | None = None


@dataclass(frozen=True)
class PrimitiveOptions:
    """Every option of one sampler or estimator job, resolved to a value."""

    kind: PrimitiveKind
    default_shots: int | None
    default_precision: float
    optimization_level: int = 1
    resilience_level: int = 0
    seed_simulator: int | None = None
    seed_estimator: int | None = None
    max_execution_time: int | None = None
    resilience: ResilienceOptions = field(default_factory=ResilienceOptions)
    twirling: TwirlingOptions = field(default_factory=TwirlingOptions)
    dynamical_decoupling: DynamicalDecouplingOptions = field(
        default_factory=DynamicalDecouplingOptions
    )
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    environment: dict[str, Any] = field(default_factory=dict)
    simulator: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, for a result's metadata (the noise model left out).

        A new dict each call (the caller may change it), copied from one made once.
        """
        plain: dict[str, Any] = _fresh(self._plain)
        return plain

    @functools.cached_property
    def _plain(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["simulator"] = {k: v for k, v in self.simulator.items() if k != "noise_model"}
        if self.resilience.layer_noise_model is not None:  # reported, not sent back
            out["resilience"]["layer_noise_model"] = "given"
        return out


def _fresh(value: Any) -> Any:
    """A copy of nested dicts, lists and tuples (their leaves are immutable)."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return value


# Options resolved before, by the repr of what was sent: a session's loop sends the same
# options with every job. Only plain values are keyed so (a repr of other objects, such
# as a noise model, need not tell two of them apart); those are resolved each time.
_RESOLVED: LRUCache[str, PrimitiveOptions] = LRUCache(max_entries=64)


def resolve_options(
    kind: PrimitiveKind, options: Mapping[str, Any] | None, *, resilience_level: int | None = None
) -> PrimitiveOptions:
    """Check ``options`` as sent for a ``kind`` job and fill in every default.

    ``resilience_level`` is the top-level input IBM's client sends beside ``options``.
    The result may be shared with other jobs that sent the same options: never change it.
    """
    key = repr((kind, options, resilience_level)) if _plain_value(options) else None
    if key is not None:
        known = _RESOLVED.get(key)
        if known is not None:
            return known
    resolved = _resolve(kind, options, resilience_level)
    if key is not None:
        _RESOLVED.put(key, resolved)
    return resolved


def _plain_value(value: Any) -> bool:
    """Whether ``value`` is made of dicts with string keys, lists, tuples and scalars only."""
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain_value(v) for v in value)
    return False


def _resolve(
    kind: PrimitiveKind, options: Mapping[str, Any] | None, resilience_level: int | None
) -> PrimitiveOptions:
    raw = _parse(_ESTIMATOR_SPEC if kind == "estimator" else _SAMPLER_SPEC, options, "options")
    experimental = raw.pop("experimental", {})
    if "optimization_level" in experimental:
        if "optimization_level" in raw:
            raise InputValueError("optimization_level is given both directly and in experimental")
        raw["optimization_level"] = experimental["optimization_level"]
    if resilience_level is not None:
        level = _int_range(0, 2)("resilience_level", resilience_level)
        if raw.setdefault("resilience_level", level) != level:
            raise InputValueError("resilience_level is given both as an input and in options")

    simulator = dict(raw.get("simulator", {}))
    flat_seed = raw.get("seed_simulator")
    if flat_seed is not None:
        if simulator.get("seed_simulator", flat_seed) != flat_seed:
            raise InputValueError("seed_simulator differs between options and options.simulator")
        simulator["seed_simulator"] = flat_seed

    level = int(raw.get("resilience_level", 1 if kind == "estimator" else 0))
    resilience = raw.get("resilience", {})
    zne = resilience.get("zne", {})
    zne_options = ZneOptions(
        amplifier=zne.get("amplifier", "gate_folding"),
        noise_factors=tuple(zne.get("noise_factors", (1.0, 3.0, 5.0))),
        extrapolator=tuple(zne.get("extrapolator", ("exponential", "linear"))),
        extrapolated_noise_factors=zne.get("extrapolated_noise_factors"),
    )
    zne_on = bool(resilience.get("zne_mitigation", level >= 2))
    if zne_on:
        _check_zne(zne_options)
    pec_on = bool(resilience.get("pec_mitigation", False))
    if pec_on and zne_on:
        raise InputValueError(
            "options.resilience.pec_mitigation and zne_mitigation cannot both be on; "
            "set one of them to False"
        )
    pec = resilience.get("pec", {})
    learning = resilience.get("layer_noise_learning", {})
    twirling = raw.get("twirling", {})
    # IBM's estimator twirls gates from level 2 and measurements from level 1; its sampler
    # never. PEA and PEC always twirl gates: their noise model is of twirled layers.
    pauli_noise = pec_on or (zne_on and zne_options.amplifier == "pea")
    if pauli_noise and twirling.get("enable_gates") is False:
        raise InputValueError(
            "PEA and PEC twirl the gates: options.twirling.enable_gates cannot be False"
        )
    auto_gates = kind == "estimator" and (level >= 2 or pauli_noise)
    auto_measure = kind == "estimator" and level >= 1
    dd = raw.get("dynamical_decoupling", {})
    execution = raw.get("execution", {})
    return PrimitiveOptions(
        kind=kind,
        default_shots=raw.get("default_shots", DEFAULT_SHOTS if kind == "sampler" else None),
        default_precision=raw.get("default_precision", DEFAULT_PRECISION),
        optimization_level=raw.get("optimization_level", 1),
        resilience_level=level,
        seed_simulator=simulator.get("seed_simulator"),
        seed_estimator=raw.get("seed_estimator"),
        max_execution_time=raw.get("max_execution_time"),
        resilience=ResilienceOptions(
            measure_mitigation=bool(resilience.get("measure_mitigation", level >= 1)),
            zne_mitigation=zne_on,
            zne=zne_options,
            pec_mitigation=pec_on,
            pec=PecOptions(
                max_overhead=pec.get("max_overhead", 100.0), noise_gain=pec.get("noise_gain")
            ),
            layer_noise_learning=LayerNoiseLearningOptions(**learning),
            layer_noise_model=resilience.get("layer_noise_model"),
        ),
        twirling=TwirlingOptions(
            enable_gates=twirling.get("enable_gates", auto_gates),
            enable_measure=twirling.get("enable_measure", auto_measure),
            num_randomizations=twirling.get("num_randomizations"),
            shots_per_randomization=twirling.get("shots_per_randomization"),
            strategy=twirling.get("strategy", "active-accum"),
        ),
        dynamical_decoupling=DynamicalDecouplingOptions(**dd),
        execution=ExecutionOptions(
            init_qubits=execution.get("init_qubits", True), rep_delay=execution.get("rep_delay")
        ),
        environment=dict(raw.get("environment", {})),
        simulator=simulator,
    )


def _check_zne(zne: ZneOptions) -> None:
    if zne.amplifier not in (*AMPLIFIERS, "pea"):
        raise InputValueError(
            f"options.resilience.zne.amplifier {zne.amplifier!r} is not supported here; "
            f"use one of {[*AMPLIFIERS, 'pea']}"
        )
    if len(zne.noise_factors) < 2:
        raise InputValueError("options.resilience.zne.noise_factors needs at least 2 factors")
    if len(set(zne.noise_factors)) != len(zne.noise_factors):
        raise InputValueError("options.resilience.zne.noise_factors must be distinct")


# --- value checks -------------------------------------------------------------------------


def _fail(path: str, value: Any, expected: str) -> InputValueError:
    return InputValueError(f"{path} must be {expected}, not {value!r}")


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, value, "true or false")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(low: int, high: int | None = None) -> Validator:
    def check(path: str, value: Any) -> int:
        if not _is_int(value) or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            raise _fail(path, value, f"an integer {span}")
        return int(value)

    return check


def _positive_float(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _fail(path, value, "a number > 0")
    if not math.isfinite(value):
        raise _fail(path, value, "a finite number")
    return float(value)


def _non_negative_float(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise _fail(path, value, "a number >= 0")
    return float(value)


def _choice(*choices: Any) -> Validator:
    def check(path: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise _fail(path, value, f"one of {list(choices)}")
        return value

    return check


def _int_or_auto(path: str, value: Any) -> int | None:
    if value == "auto":
        return None
    checked: int = _int_range(1)(path, value)
    return checked


def _noise_factors(path: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _fail(path, value, "a non-empty list of numbers")
    factors = tuple(_positive_float(f"{path}[{i}]", v) for i, v in enumerate(value))
    bad = [f for f in factors if f < 1 or f > _MAX_NOISE_FACTOR]
    if bad:
        raise _fail(path, value, f"numbers from 1 to {_MAX_NOISE_FACTOR:g}")
    return factors


def _extrapolated_factors(path: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(path, value, "a list of numbers >= 0")
    return tuple(_non_negative_float(f"{path}[{i}]", v) for i, v in enumerate(value))


def _extrapolators(path: str, value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names:
        raise _fail(path, value, f"one or a list of {list(EXTRAPOLATORS)}")
    return tuple(_choice(*EXTRAPOLATORS)(f"{path}", name) for name in names)


def _string_list(path: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _fail(path, value, "a list of strings")
    return list(value)


def _anything(path: str, value: Any) -> Any:
    return value


def _noise_gain(path: str, value: Any) -> float | None:
    if value == "auto":
        return None
    return _non_negative_float(path, value)


def _pair_depths(path: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _fail(path, value, "a non-empty list of integers >= 0")
    depths = tuple(_int_range(0, 1024)(f"{path}[{i}]", v) for i, v in enumerate(value))
    if len(set(depths)) < 2:
        raise _fail(path, value, "at least 2 different depths (a decay needs 2 points)")
    return tuple(sorted(set(depths)))


def _layer_noise_model(path: str, value: Any) -> Any:
    from qruntime.layer_noise import LayerError, NoiseLearnerResult

    layers = list(value) if isinstance(value, NoiseLearnerResult | list | tuple) else None
    if layers is None or not all(isinstance(layer, LayerError) for layer in layers):
        raise _fail(path, type(value).__name__, "a NoiseLearnerResult or a list of LayerError")
    return value


_TWIRLING: Spec = {
    "enable_gates": _bool,
    "enable_measure": _bool,
    "num_randomizations": _int_or_auto,
    "shots_per_randomization": _int_or_auto,
    "strategy": _choice("active", "active-accum", "active-circuit", "all"),
}
_DYNAMICAL_DECOUPLING: Spec = {
    "enable": _bool,
    "sequence_type": _choice("XX", "XpXm", "XY4"),
    "extra_slack_distribution": _choice("middle", "edges"),
    "scheduling_method": _choice("alap", "asap"),
    "skip_reset_qubits": _bool,
}
_ENVIRONMENT: Spec = {
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "callback": _anything,  # a client-side function: never sent, harmless if named
    "job_tags": _string_list,
    "private": _bool,
}
_SIMULATOR: Spec = {
    "noise_model": _anything,  # a NoiseModel the decoder rebuilt, passed to Aer
    "seed_simulator": _int_range(0),
    "coupling_map": _anything,  # recorded only: the backend's own target decides
    "basis_gates": _string_list,
}
_COMMON: Spec = {
    "optimization_level": _int_range(0, 3),
    "seed_simulator": _int_range(0),
    "max_execution_time": _int_range(1),
    "dynamical_decoupling": _DYNAMICAL_DECOUPLING,
    "twirling": _TWIRLING,
    "environment": _ENVIRONMENT,
    "simulator": _SIMULATOR,
    "experimental": {"optimization_level": _int_range(0, 3), "image": _anything},
}
_SAMPLER_SPEC: Spec = {
    **_COMMON,
    "default_shots": _int_range(1),
    "execution": {
        "init_qubits": _bool,
        "rep_delay": _non_negative_float,
        "meas_type": _choice("classified"),  # a simulator has no kerneled data
    },
}
_ESTIMATOR_SPEC: Spec = {
    **_COMMON,
    "default_shots": _int_range(1),
    "default_precision": _positive_float,
    "resilience_level": _int_range(0, 2),
    "seed_estimator": _int_range(0),
    "execution": {"init_qubits": _bool, "rep_delay": _non_negative_float},
    "resilience": {
        "measure_mitigation": _bool,
        "measure_noise_learning": {
            "num_randomizations": _int_range(1),
            "shots_per_randomization": _int_or_auto,
        },
        "zne_mitigation": _bool,
        "zne": {
            "amplifier": _choice(*AMPLIFIERS, "pea"),
            "noise_factors": _noise_factors,
            "extrapolator": _extrapolators,
            "extrapolated_noise_factors": _extrapolated_factors,
        },
        "pec_mitigation": _bool,
        "pec": {"max_overhead": _positive_float, "noise_gain": _noise_gain},
        "layer_noise_learning": {
            "max_layers_to_learn": _int_range(0),
            "shots_per_randomization": _int_range(1, 1_000_000),
            "num_randomizations": _int_range(1, 4096),
            "layer_pair_depths": _pair_depths,
        },
        "layer_noise_model": _layer_noise_model,
    },
}


def _parse(spec: Spec, value: Any, path: str) -> dict[str, Any]:
    """Check ``value`` against ``spec``; ``None`` values count as unset and are dropped."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, value, "a dict")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}"
        check = spec.get(key) if isinstance(key, str) else None
        if check is None:
            raise InputValueError(f"unknown option {where!r}; known at {path}: {sorted(spec)}")
        if item is None:
            continue
        out[key] = _parse(check, item, where) if isinstance(check, Mapping) else check(where, item)
    return out
