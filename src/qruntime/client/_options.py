"""Options of the client's ``SamplerV2`` and ``EstimatorV2``, and the older ``Options``.

The option names are those of the built-in ``sampler`` and ``estimator`` programs
(:mod:`qruntime.primitives.options`), nested the same way, so
:meth:`SamplerOptions.to_dict` is exactly what the programs receive. ``None``
means unset: the server fills in its default. Unknown names are refused at once,
whether given as keywords, in a dict, or set as attributes; values are checked
by the server's own rules before a job is submitted.

Usage::

    options = SamplerOptions(default_shots=4000)
    options.twirling.enable_measure = True
    options.update(dynamical_decoupling={"enable": True})
    EstimatorOptions.from_dict({"resilience_level": 2, "resilience": {"zne": {...}}})
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from qruntime.errors import InputValueError
from qruntime.primitives.options import resolve_options

__all__ = [
    "DynamicalDecouplingOptions",
    "EnvironmentOptions",
    "EstimatorOptions",
    "ExecutionOptions",
    "LegacyExecutionOptions",
    "LegacyResilienceOptions",
    "MeasureNoiseLearningOptions",
    "Options",
    "PrimitiveKind",
    "ResilienceOptions",
    "SamplerExecutionOptions",
    "SamplerOptions",
    "SimulatorOptions",
    "TranspilationOptions",
    "TwirlingOptions",
    "ZneOptions",
    "check_options",
    "coerce_options",
    "wire_options",
]

PrimitiveKind = Literal["sampler", "estimator"]
_O = TypeVar("_O", bound="_OptionsBase")


class _OptionsBase:
    """Shared behaviour: strict names, dicts for nested groups, ``to_dict`` without unset values."""

    @classmethod
    def _nested(cls) -> Mapping[str, type[_OptionsBase]]:
        """Fields that hold a nested options group, with the group's class."""
        return _fields(cls)[1]

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return _fields(cls)[0]

    @classmethod
    def from_dict(cls: type[_O], data: Mapping[str, Any] | None, *, path: str = "options") -> _O:
        """Build from a (nested) dict; an unknown key raises ``InputValueError`` naming it."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InputValueError(f"{path} must be a dict or {cls.__name__}, not {data!r:.80}")
        _check_names(cls, data, path)
        nested = cls._nested()
        values = {
            key: _group_value(nested[key], value, f"{path}.{key}") if key in nested else value
            for key, value in data.items()
        }
        return cls(**values)

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name not in cls._names():
            _check_names(cls, {name: value}, cls.__name__)
        group = cls._nested().get(name)
        if group is not None:
            value = _group_value(group, value, f"{cls.__name__}.{name}")
        object.__setattr__(self, name, value)

    def update(self, **kwargs: Any) -> None:
        """Set several options; a nested group given as a dict updates only its keys."""
        _check_names(type(self), kwargs, type(self).__name__)
        nested = type(self)._nested()
        for key, value in kwargs.items():
            if key in nested and isinstance(value, Mapping):
                getattr(self, key).update(**value)
            else:
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """The options that are set, nested as dicts; unset values and empty groups left out."""
        out: dict[str, Any] = {}
        for name in self._names():
            value = getattr(self, name)
            if isinstance(value, _OptionsBase):
                value = value.to_dict()
                if not value:
                    continue
            if value is not None:
                out[name] = value
        return out


def _fields(
    cls: type[_OptionsBase],
) -> tuple[tuple[str, ...], Mapping[str, type[_OptionsBase]]]:
    """The field names of an options class, and those of its nested groups with their class.

    Kept per class: they are read for every attribute set and every ``to_dict``.
    """
    found = _FIELDS.get(cls)
    if found is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        nested: dict[str, type[_OptionsBase]] = {}
        for f in fields:
            factory: Any = f.default_factory
            if isinstance(factory, type) and issubclass(factory, _OptionsBase):
                nested[f.name] = factory
        found = _FIELDS[cls] = (tuple(f.name for f in fields), types.MappingProxyType(nested))
    return found


_FIELDS: dict[type[_OptionsBase], tuple[tuple[str, ...], Mapping[str, type[_OptionsBase]]]] = {}


def _group_value(group: type[_OptionsBase], value: Any, path: str) -> _OptionsBase:
    """A nested group from a dict (or ``None``: all unset) or an instance of the group."""
    if value is None or isinstance(value, Mapping):
        return group.from_dict(value, path=path)
    if not isinstance(value, group):
        raise InputValueError(
            f"{path} must be a {group.__name__} or a dict, not {type(value).__name__}"
        )
    return value


def _check_names(cls: type[_OptionsBase], data: Mapping[Any, Any], path: str) -> None:
    known = cls._names()
    for key in data:
        if key not in known:
            # "shots" is a suffix of "default_shots"; difflib alone misses such names.
            close = [name for name in known if name.endswith(f"_{key}")]
            close = close or difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputValueError(
                f"unknown option {path}.{key}{hint}; known options at {path}: {', '.join(known)}"
            )


# --- the groups of the V2 options ---------------------------------------------------------


@dataclass
class TwirlingOptions(_OptionsBase):
    """Pauli twirling; ``"auto"`` (or ``None``) lets the server pick the counts."""

    enable_gates: bool | None = None
    enable_measure: bool | None = None
    num_randomizations: int | Literal["auto"] | None = None
    shots_per_randomization: int | Literal["auto"] | None = None
    strategy: str | None = None


@dataclass
class DynamicalDecouplingOptions(_OptionsBase):
    """Dynamical decoupling in idle windows (device-like backends only)."""

    enable: bool | None = None
    sequence_type: str | None = None
    extra_slack_distribution: str | None = None
    scheduling_method: str | None = None
    skip_reset_qubits: bool | None = None


@dataclass
class ExecutionOptions(_OptionsBase):
    """How shots are taken; ``rep_delay`` is ignored by simulators."""

    init_qubits: bool | None = None
    rep_delay: float | None = None


@dataclass
class SamplerExecutionOptions(ExecutionOptions):
    """The sampler's execution options: ``meas_type`` can only be ``"classified"`` here."""

    meas_type: str | None = None


@dataclass
class EnvironmentOptions(_OptionsBase):
    """The job's environment; ``callback`` stays on the client and gets the results."""

    log_level: str | None = None
    callback: Any = None
    job_tags: list[str] | None = None
    private: bool | None = None


@dataclass
class SimulatorOptions(_OptionsBase):
    """Simulator settings; ``noise_model`` is a qiskit-aer ``NoiseModel``."""

    noise_model: Any = None
    seed_simulator: int | None = None
    coupling_map: Any = None
    basis_gates: list[str] | None = None


@dataclass
class ZneOptions(_OptionsBase):
    """Zero-noise extrapolation (``resilience.zne_mitigation``)."""

    amplifier: str | None = None
    noise_factors: list[float] | tuple[float, ...] | None = None
    extrapolator: str | list[str] | tuple[str, ...] | None = None
    extrapolated_noise_factors: list[float] | tuple[float, ...] | None = None


@dataclass
class MeasureNoiseLearningOptions(_OptionsBase):
    """How readout errors are learnt for ``measure_mitigation``."""

    num_randomizations: int | None = None
    shots_per_randomization: int | Literal["auto"] | None = None


@dataclass
class _PecOptions(_OptionsBase):
    max_overhead: Any = None
    noise_gain: Any = None


@dataclass
class _LayerNoiseLearningOptions(_OptionsBase):
    max_layers_to_learn: Any = None
    shots_per_randomization: Any = None
    num_randomizations: Any = None
    layer_pair_depths: Any = None


@dataclass
class ResilienceOptions(_OptionsBase):
    """Error mitigation of the estimator; unset flags follow ``resilience_level``.

    ``pec_mitigation`` and ``zne.amplifier = "pea"`` use the layers' noise: learned with
    ``layer_noise_learning``, or given as ``layer_noise_model`` (a ``NoiseLearnerResult``).
    """

    measure_mitigation: bool | None = None
    measure_noise_learning: MeasureNoiseLearningOptions = field(
        default_factory=MeasureNoiseLearningOptions
    )
    zne_mitigation: bool | None = None
    zne: ZneOptions = field(default_factory=ZneOptions)
    pec_mitigation: bool | None = None
    pec: _PecOptions = field(default_factory=_PecOptions)
    layer_noise_learning: _LayerNoiseLearningOptions = field(
        default_factory=_LayerNoiseLearningOptions
    )
    layer_noise_model: Any = None


# --- the primitives' options --------------------------------------------------------------


@dataclass
class SamplerOptions(_OptionsBase):
    """Options of ``SamplerV2``: ``SamplerOptions(default_shots=4000, seed_simulator=7)``."""

    default_shots: int | None = None
    seed_simulator: int | None = None
    optimization_level: int | None = None
    max_execution_time: int | None = None
    dynamical_decoupling: DynamicalDecouplingOptions = field(
        default_factory=DynamicalDecouplingOptions
    )
    execution: SamplerExecutionOptions = field(default_factory=SamplerExecutionOptions)
    twirling: TwirlingOptions = field(default_factory=TwirlingOptions)
    environment: EnvironmentOptions = field(default_factory=EnvironmentOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)
    experimental: dict[str, Any] | None = None


@dataclass
class EstimatorOptions(_OptionsBase):
    """Options of ``EstimatorV2``: ``EstimatorOptions(resilience_level=2, default_precision=0.01)``.

    ``default_shots``, when set, wins over ``default_precision``.
    """

    default_precision: float | None = None
    default_shots: int | None = None
    resilience_level: int | None = None
    seed_estimator: int | None = None
    seed_simulator: int | None = None
    optimization_level: int | None = None
    max_execution_time: int | None = None
    resilience: ResilienceOptions = field(default_factory=ResilienceOptions)
    dynamical_decoupling: DynamicalDecouplingOptions = field(
        default_factory=DynamicalDecouplingOptions
    )
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    twirling: TwirlingOptions = field(default_factory=TwirlingOptions)
    environment: EnvironmentOptions = field(default_factory=EnvironmentOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)
    experimental: dict[str, Any] | None = None


# --- the older Options --------------------------------------------------------------------


@dataclass
class TranspilationOptions(_OptionsBase):
    """Older transpilation settings: kept for old code, ignored (the server transpiles)."""

    skip_transpilation: bool | None = None
    initial_layout: Any = None
    layout_method: str | None = None
    routing_method: str | None = None
    approximation_degree: float | None = None


@dataclass
class LegacyResilienceOptions(_OptionsBase):
    """Older ZNE settings, mapped to ``resilience.zne`` of the estimator."""

    noise_amplifier: str | None = None
    noise_factors: list[float] | tuple[float, ...] | None = None
    extrapolator: str | None = None


@dataclass
class LegacyExecutionOptions(_OptionsBase):
    """Older execution settings: ``shots`` becomes ``default_shots``."""

    shots: int | None = None
    init_qubits: bool | None = None


@dataclass
class Options(_OptionsBase):
    """The options of the older primitives, accepted by ``SamplerV2`` and ``EstimatorV2``.

    ``Sampler(session=session, options=Options(optimization_level=3))`` keeps working:
    the values are mapped to the V2 names (``execution.shots`` to ``default_shots``,
    ``simulator.seed_simulator`` to ``seed_simulator``, ZNE settings to
    ``resilience.zne``). Settings V2 has no place for are ignored with a warning.
    """

    optimization_level: int | None = None
    resilience_level: int | None = None
    max_execution_time: int | None = None
    transpilation: TranspilationOptions = field(default_factory=TranspilationOptions)
    resilience: LegacyResilienceOptions = field(default_factory=LegacyResilienceOptions)
    execution: LegacyExecutionOptions = field(default_factory=LegacyExecutionOptions)
    environment: EnvironmentOptions = field(default_factory=EnvironmentOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)


_AMPLIFIERS = {
    "TwoQubitAmplifier": "gate_folding",
    "LocalFoldingAmplifier": "gate_folding",
    "CxAmplifier": "gate_folding",
    "GlobalFoldingAmplifier": "global_folding",
}
_EXTRAPOLATORS = {
    "LinearExtrapolator": "linear",
    "QuadraticExtrapolator": "polynomial_degree_2",
    "CubicExtrapolator": "polynomial_degree_3",
    "QuarticExtrapolator": "polynomial_degree_4",
}


def _from_legacy(legacy: Options, kind: PrimitiveKind) -> dict[str, Any]:
    """The V2 options dict for an older ``Options`` object."""
    old = legacy.to_dict()
    new: dict[str, Any] = {
        key: old[key] for key in ("optimization_level", "max_execution_time") if key in old
    }
    execution = old.get("execution", {})
    if "shots" in execution:
        new["default_shots"] = execution["shots"]
    if "init_qubits" in execution:
        new["execution"] = {"init_qubits": execution["init_qubits"]}
    if "environment" in old:
        new["environment"] = old["environment"]
    simulator = dict(old.get("simulator", {}))
    if "seed_simulator" in simulator:
        new["seed_simulator"] = simulator.pop("seed_simulator")
    if simulator:
        new["simulator"] = simulator
    ignored = [f"transpilation.{key}" for key in old.get("transpilation", {})]
    level = old.get("resilience_level")
    resilience = old.get("resilience", {})
    if kind == "sampler":
        if level:  # the V2 sampler returns raw bits: there is nothing to mitigate
            ignored.append("resilience_level")
        ignored.extend(f"resilience.{key}" for key in resilience)
    else:
        if level == 3:
            raise InputValueError(
                "resilience_level 3 has no V2 level; use 0, 1 or 2, and for probabilistic "
                "error cancellation set resilience.pec_mitigation of EstimatorOptions"
            )
        if level is not None:
            new["resilience_level"] = level
        zne = _legacy_zne(resilience)
        if zne:
            new["resilience"] = {"zne": zne}
    if ignored:
        warnings.warn(
            f"Options {', '.join(ignored)} have no V2 equivalent and are ignored "
            "(the server itself transpiles circuits that are not ISA for the backend)",
            UserWarning,
            stacklevel=4,
        )
    return new


def _legacy_zne(resilience: Mapping[str, Any]) -> dict[str, Any]:
    zne: dict[str, Any] = {}
    if "noise_factors" in resilience:
        zne["noise_factors"] = list(resilience["noise_factors"])
    for key, table, target in (
        ("noise_amplifier", _AMPLIFIERS, "amplifier"),
        ("extrapolator", _EXTRAPOLATORS, "extrapolator"),
    ):
        if key in resilience:
            name = resilience[key]
            if name not in table:
                raise InputValueError(
                    f"options.resilience.{key} {name!r} is unknown; use one of {list(table)}"
                )
            zne[target] = table[name]
    return zne


def coerce_options(
    kind: PrimitiveKind,
    value: SamplerOptions | EstimatorOptions | Options | Mapping[str, Any] | None,
) -> SamplerOptions | EstimatorOptions:
    """A fresh, checked options object of ``kind`` for whatever a user passed as options.

    Raises ``InputValueError`` for unknown names, out-of-range values, or the other
    primitive's options class.
    """
    cls: type[SamplerOptions] | type[EstimatorOptions] = (
        SamplerOptions if kind == "sampler" else EstimatorOptions
    )
    if isinstance(value, Options):
        options = cls.from_dict(_from_legacy(value, kind))
    elif isinstance(value, cls):
        options = cls.from_dict(value.to_dict())  # a copy: later edits to value do not leak
    elif isinstance(value, _OptionsBase):
        raise InputValueError(
            f"the {kind} takes {cls.__name__}, a dict or Options, not {type(value).__name__}"
        )
    else:
        options = cls.from_dict(value)
    check_options(kind, options)
    return options


def check_options(kind: PrimitiveKind, options: SamplerOptions | EstimatorOptions) -> None:
    """Check every value with the server's own rules; raises ``InputValueError``."""
    resolve_options(kind, wire_options(options))


def wire_options(options: SamplerOptions | EstimatorOptions) -> dict[str, Any]:
    """The ``options`` input of a job: what is set, without the client-side callback."""
    out = options.to_dict()
    environment = out.get("environment")
    if environment is not None:
        environment.pop("callback", None)
        if not environment:
            del out["environment"]
    return out
