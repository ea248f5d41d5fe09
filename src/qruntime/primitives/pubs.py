"""Inputs of the ``sampler`` and ``estimator`` programs: PUBs and the other parameters.

The built-in programs check a job's inputs here (on the server at submission, in the
worker when the job runs); the client coerces and checks its PUBs with the same code.

PUBs arrive the way qiskit-ibm-runtime's encoder writes them (``[circuit,
parameter_values, shots]`` and ``[circuit, observables, parameter_values,
precision]`` lists, ``None`` for unset values), or as qiskit PUB objects when
a program is run in-process. Qiskit's own ``SamplerPub.coerce`` and
``EstimatorPub.coerce`` apply the PUB rules; every failure becomes an
:class:`~qruntime.errors.InputValueError` that says which PUB is wrong.

A variational loop sends the same observables with every job. Their conversion to an
``ObservablesArray`` (a third of a small PUB's coercion) is kept by content: a
``SparsePauliOp`` by its Paulis and coefficients, the wire's ``{label: coefficient}``
dict by its items; other forms are converted each time.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives.containers import EstimatorPub, SamplerPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.quantum_info import SparsePauliOp

from qruntime._lru import LRUCache
from qruntime.errors import InputValueError
from qruntime.primitives.options import PrimitiveKind, PrimitiveOptions, resolve_options

__all__ = [
    "PrimitiveInputs",
    "coerce_estimator_pubs",
    "coerce_sampler_pubs",
    "parse_inputs",
    "validate_inputs",
]

# Inputs IBM's client sends besides pubs and options (support_qiskit asks for qiskit
# result types, which is all qruntime returns).
_COMMON_INPUTS = {"pubs", "options", "version", "support_qiskit"}
_KNOWN_INPUTS: dict[str, set[str]] = {
    "sampler": _COMMON_INPUTS,
    "estimator": _COMMON_INPUTS | {"resilience_level"},
}


@dataclass(frozen=True)
class PrimitiveInputs:
    """The checked inputs of one job: coerced PUBs and resolved options."""

    pubs: list[SamplerPub] | list[EstimatorPub]
    options: PrimitiveOptions


def parse_inputs(kind: PrimitiveKind, inputs: Mapping[str, Any]) -> PrimitiveInputs:
    """Check a job's inputs for ``kind`` and coerce them (not yet fitted to a backend)."""
    unknown = sorted(set(inputs) - _KNOWN_INPUTS[kind])
    if unknown:
        raise InputValueError(
            f"unknown input(s) for {kind}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_KNOWN_INPUTS[kind]))}"
        )
    version = inputs.get("version", 2)
    if version != 2:
        raise InputValueError(f"{kind} supports only version 2 of the primitives, not {version!r}")
    options = resolve_options(
        kind, inputs.get("options"), resilience_level=inputs.get("resilience_level")
    )
    if "pubs" not in inputs:
        raise InputValueError(f"pubs is required: give the {kind} a list of PUBs")
    pubs: list[SamplerPub] | list[EstimatorPub]
    if kind == "sampler":
        shots = options.default_shots if options.default_shots is not None else 1
        pubs = coerce_sampler_pubs(inputs["pubs"], default_shots=shots)
    else:
        pubs = coerce_estimator_pubs(inputs["pubs"], default_precision=options.default_precision)
    return PrimitiveInputs(pubs, options)


def validate_inputs(kind: PrimitiveKind, inputs: Mapping[str, Any], *, num_qubits: int) -> None:
    """Everything the server can check before a job runs, for a backend of ``num_qubits``."""
    parsed = parse_inputs(kind, inputs)
    check_width(parsed.pubs, num_qubits=num_qubits)


def check_width(pubs: Sequence[SamplerPub | EstimatorPub], *, num_qubits: int | None) -> None:
    """Refuse PUBs whose circuit is wider than the backend."""
    if num_qubits is None:
        return
    for i, pub in enumerate(pubs):
        if pub.circuit.num_qubits > num_qubits:
            raise InputValueError(
                f"pubs[{i}]: the circuit has {pub.circuit.num_qubits} qubits, "
                f"but the backend has only {num_qubits}"
            )


def coerce_sampler_pubs(pubs: Any, *, default_shots: int) -> list[SamplerPub]:
    """Sampler PUBs from what a client sent; each circuit must measure something."""
    out: list[SamplerPub] = []
    for i, raw in enumerate(_pub_list(pubs)):
        # A PUB made here by qiskit's coerce is validated already; one given is not.
        unchecked = isinstance(raw, SamplerPub)
        if isinstance(raw, SamplerPub):
            pub = raw
        else:
            items = _pub_items(raw, i, max_items=3)
            if len(items) >= 2:
                _check_values(items[0], items[1], i)
            if len(items) == 3 and items[2] is not None:
                _check_count(f"pubs[{i}] shots", items[2], integer=True)
            try:
                pub = SamplerPub.coerce(_trim(items), default_shots)
            except (ValueError, TypeError) as exc:
                raise InputValueError(f"pubs[{i}]: {exc}") from exc
        if pub.shots is None:
            pub = SamplerPub(pub.circuit, pub.parameter_values, default_shots, validate=False)
            unchecked = True
        if unchecked:
            _check_pub(pub, i)
        if not _measures(pub.circuit):
            raise InputValueError(
                f"pubs[{i}]: the circuit has no measurements, so the sampler has nothing to return"
            )
        out.append(pub)
    return out


def coerce_estimator_pubs(pubs: Any, *, default_precision: float) -> list[EstimatorPub]:
    """Estimator PUBs from what a client sent; observables must match their circuit's width."""
    out: list[EstimatorPub] = []
    for i, raw in enumerate(_pub_list(pubs)):
        # A PUB made here by qiskit's coerce is validated already; one given is not.
        unchecked = isinstance(raw, EstimatorPub)
        if isinstance(raw, EstimatorPub):
            pub = raw
        else:
            items = _pub_items(raw, i, max_items=4)
            if len(items) < 2:
                raise InputValueError(
                    f"pubs[{i}]: an estimator PUB needs a circuit and observables"
                )
            if len(items) >= 3:
                _check_values(items[0], items[2], i)
            if len(items) == 4 and items[3] is not None:
                _check_count(f"pubs[{i}] precision", items[3], integer=False)
            try:
                items = (items[0], _observables(items[1]), *items[2:])
                pub = EstimatorPub.coerce(_trim(items), default_precision)
            except (ValueError, TypeError) as exc:
                raise InputValueError(f"pubs[{i}]: {exc}") from exc
        if pub.precision is None:
            pub = EstimatorPub(
                pub.circuit,
                pub.observables,
                pub.parameter_values,
                default_precision,
                validate=False,
            )
            unchecked = True
        if unchecked:
            _check_pub(pub, i)
        out.append(pub)
    return out


# Converted observables by content, bounded by their count of terms.
_OBSERVABLES: LRUCache[Hashable, ObservablesArray] = LRUCache(
    max_entries=64, max_weight=200_000, weigh=lambda array: max(1, array.size)
)
_MAX_KEPT_TERMS = 20_000


def _observables(raw: Any) -> Any:
    """``raw`` as an ``ObservablesArray``, the one converted before from the same content;
    ``raw`` itself when it is of a form not kept (qiskit's coercion converts it)."""
    key = _observables_key(raw)
    if key is None:
        return raw
    found = _OBSERVABLES.get(key)
    if found is None:
        found = ObservablesArray.coerce(raw)
        _OBSERVABLES.put(key, found)
    return found


def _observables_key(raw: Any) -> Hashable | None:
    if (
        isinstance(raw, SparsePauliOp)
        and raw.size <= _MAX_KEPT_TERMS
        and raw.coeffs.dtype.kind in "fc"  # not parameters: objects have no content bytes
    ):
        paulis = raw.paulis
        parts = (paulis.z, paulis.x, paulis.phase, raw.coeffs)
        return ("SparsePauliOp", raw.num_qubits, *(part.tobytes() for part in parts))
    if (
        isinstance(raw, dict)
        and len(raw) <= _MAX_KEPT_TERMS
        and all(isinstance(k, str) and type(v) in (int, float) for k, v in raw.items())
    ):
        return ("dict", tuple(raw.items()))
    return None


def _pub_list(pubs: Any) -> list[Any]:
    if isinstance(pubs, QuantumCircuit | SamplerPub | EstimatorPub):
        return [pubs]
    if not isinstance(pubs, list | tuple) or not pubs:
        raise InputValueError(f"pubs must be a non-empty list of PUBs, not {type(pubs).__name__}")
    return list(pubs)


def _pub_items(raw: Any, index: int, *, max_items: int) -> tuple[Any, ...]:
    if isinstance(raw, QuantumCircuit):
        return (raw,)
    if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= max_items:
        raise InputValueError(
            f"pubs[{index}] must be a circuit or a list of 1 to {max_items} items, not {raw!r:.80}"
        )
    if not isinstance(raw[0], QuantumCircuit):
        raise InputValueError(
            f"pubs[{index}] must start with a QuantumCircuit, not {type(raw[0]).__name__}"
        )
    return tuple(raw)


def _trim(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop trailing ``None`` values: the client writes unset shots and precision so."""
    values = list(items)
    while values and values[-1] is None:
        values.pop()
    return tuple(values)


def _check_values(circuit: QuantumCircuit, values: Any, index: int) -> None:
    """Say plainly when an array of values does not fit the circuit's parameters."""
    if values is None or not isinstance(values, list | tuple | np.ndarray):
        return  # a BindingsArray or a dict: qiskit's coercion checks it by name
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"pubs[{index}]: parameter values are not numbers: {exc}") from exc
    wanted = circuit.num_parameters
    if wanted == 0:
        if array.size:
            raise InputValueError(
                f"pubs[{index}]: parameter values given for a circuit without parameters"
            )
        return
    last = array.shape[-1] if array.ndim else 1
    if last != wanted:
        raise InputValueError(
            f"pubs[{index}]: parameter values have {last} per set (last axis of shape "
            f"{array.shape}), but the circuit has {wanted} parameters"
        )


def _check_count(name: str, value: Any, *, integer: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputValueError(f"{name} must be a number, not {value!r}")
    if integer and not float(value).is_integer():
        raise InputValueError(f"{name} must be an integer, not {value!r}")
    if not value > 0:
        raise InputValueError(f"{name} must be > 0, not {value!r}")


def _check_pub(pub: SamplerPub | EstimatorPub, index: int) -> None:
    try:
        pub.validate()
    except (ValueError, TypeError) as exc:
        raise InputValueError(f"pubs[{index}]: {exc}") from exc


def _measures(circuit: QuantumCircuit) -> bool:
    for instruction in circuit.data:
        if instruction.operation.name == "measure":
            return True
        for block in getattr(instruction.operation, "blocks", ()):
            if _measures(block):
                return True
    return False
