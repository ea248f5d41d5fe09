"""The built-in ``circuit-runner`` program: transpile, run, optionally mitigate readout.

Returns ``Result.to_dict()``. With ``measurement_error_mitigation`` each
experiment also gets ``data.quasiprobabilities`` (hex keys, summing to 1) and
``header.final_measurement_mapping`` (physical qubit -> classical bit), which
the client's ``RunnerResult.get_quasiprobabilities`` reads.

Pass managers are cached per backend name and options in this process: a warm
worker builds one once (tens of milliseconds) and reuses it (well under one).
Transpiled circuits are cached by content (``qruntime.programs.cache``): a
session's second identical job does not transpile at all.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.transpiler import PassManager, generate_preset_pass_manager
from qiskit.transpiler.preset_passmanagers.plugin import list_stage_plugins

from qruntime.backends.compact import run_circuits
from qruntime.errors import InputValueError
from qruntime.programs import cache
from qruntime.programs.mitigation import (
    cached_readout_calibration,
    final_measurement_mapping,
    quasiprobabilities_to_hex,
)

__all__ = [
    "METADATA",
    "cached_pass_manager",
    "cached_transpile",
    "clear_pass_manager_cache",
    "few_qubit_run_options",
    "main",
    "warm_up",
]

logger = logging.getLogger(__name__)

# Up to this many active qubits an Aer backend runs on one thread (few_qubit_run_options).
_SINGLE_THREAD_QUBITS = 10

METADATA: dict[str, Any] = {
    "name": "circuit-runner",
    "description": (
        "Transpile circuits for the backend, run them, and return the Result as a dict; "
        "optionally mitigate readout errors into quasi-probabilities."
    ),
    "max_execution_time": 600,
    "spec": {
        "backend_requirements": {"min_num_qubits": 1},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "circuits": {
                    "description": "A QuantumCircuit or a list of them (runtime-encoded).",
                    "type": ["object", "array"],
                },
                "shots": {"description": "Shots per circuit.", "type": "integer", "minimum": 1},
                "initial_layout": {
                    "description": "Physical qubit for each virtual qubit, in order.",
                    "type": ["array", "object", "null"],
                },
                "layout_method": {
                    "description": "trivial, dense, sabre, default; noise_adaptive = default.",
                    "type": ["string", "null"],
                },
                "routing_method": {
                    "description": "basic, lookahead, sabre, none (stochastic maps to sabre).",
                    "type": ["string", "null"],
                },
                "translation_method": {
                    "description": "translator, synthesis or default.",
                    "type": ["string", "null"],
                },
                "seed_transpiler": {
                    "description": "Seed of the transpiler.",
                    "type": ["integer", "null"],
                },
                "optimization_level": {
                    "description": "Transpiler optimization level.",
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 3,
                },
                "init_qubits": {
                    "description": "Reset qubits to |0> before each shot.",
                    "type": "boolean",
                },
                "rep_delay": {
                    "description": "Delay between shots in seconds (ignored by simulators).",
                    "type": ["number", "null"],
                },
                "transpiler_options": {
                    "description": "More keyword arguments for generate_preset_pass_manager.",
                    "type": ["object", "null"],
                },
                "measurement_error_mitigation": {
                    "description": "Mitigate readout errors and return quasi-probabilities.",
                    "type": "boolean",
                },
                "seed_simulator": {
                    "description": "Seed of the simulator, for reproducible counts.",
                    "type": ["integer", "null"],
                },
                "memory": {"description": "Return per-shot memory.", "type": "boolean"},
            },
            "required": ["circuits"],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "Result.to_dict(); decode it with RunnerResult.",
            "type": "object",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "None: circuit-runner publishes no interim results.",
            "type": "null",
        },
    },
}

# Names that qiskit 2 no longer has, and what replaces them.
_LEGACY_LAYOUT = {"noise_adaptive": "default"}  # VF2Layout scores layouts by error rates
_LEGACY_ROUTING = {"stochastic": "sabre"}  # StochasticSwap was removed in favour of Sabre
# Run options a caller may pass on to the backend (the rest could inject objects).
_RUN_OPTIONS = ("seed_simulator", "memory")
# Arguments of generate_preset_pass_manager that this program sets itself.
_RESERVED_TRANSPILER_OPTIONS = {"backend", "target", "optimization_level", "qubits_initially_zero"}
_TRANSPILER_OPTIONS = {
    "basis_gates",
    "coupling_map",
    "initial_layout",
    "layout_method",
    "routing_method",
    "translation_method",
    "scheduling_method",
    "approximation_degree",
    "seed_transpiler",
    "unitary_synthesis_method",
    "unitary_synthesis_plugin_config",
    "hls_config",
    "init_method",
    "optimization_method",
    "dt",
}
_CACHE_SIZE = 64

_cache_lock = threading.Lock()
_pass_managers: OrderedDict[tuple[str, str], PassManager] = OrderedDict()


def main(
    backend: Any,
    user_messenger: Any,
    circuits: QuantumCircuit | Sequence[QuantumCircuit] | None = None,
    shots: int = 1024,
    initial_layout: Sequence[int] | Mapping[Any, int] | None = None,
    layout_method: str | None = None,
    routing_method: str | None = None,
    translation_method: str | None = None,
    seed_transpiler: int | None = None,
    optimization_level: int = 1,
    init_qubits: bool = True,
    rep_delay: float | None = None,
    transpiler_options: Mapping[str, Any] | None = None,
    measurement_error_mitigation: bool = False,
    **run_options: Any,
) -> dict[str, Any]:
    """Transpile ``circuits`` for ``backend``, run them and return ``Result.to_dict()``."""
    del user_messenger  # no interim results
    circuit_list = _circuits(circuits, backend)
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise InputValueError(f"shots must be a positive integer, not {shots!r}")
    unknown = sorted(set(run_options) - set(_RUN_OPTIONS))
    if unknown:
        raise InputValueError(f"unknown parameter(s) for circuit-runner: {', '.join(unknown)}")

    options: dict[str, Any] = dict(transpiler_options or {})
    _check_transpiler_options(options)
    explicit = {
        "initial_layout": _layout(initial_layout),
        "layout_method": _stage_method("layout", layout_method, _LEGACY_LAYOUT),
        "routing_method": _stage_method("routing", routing_method, _LEGACY_ROUTING),
        "translation_method": _stage_method("translation", translation_method, {}),
        "seed_transpiler": seed_transpiler,
    }
    for name, value in explicit.items():
        if value is None:
            continue
        if name in options:
            raise InputValueError(f"{name} is given both directly and in transpiler_options")
        options[name] = value
    for name in ("layout_method", "routing_method", "translation_method"):
        if name in options and options[name] is not None:
            stage = name.removesuffix("_method")
            options[name] = _stage_method(stage, options[name], {})
    if options.get("initial_layout") is not None:
        _check_layout_fits(options["initial_layout"], circuit_list, backend)

    transpiled = cached_transpile(
        circuit_list,
        backend,
        optimization_level=optimization_level,
        qubits_initially_zero=bool(init_qubits),
        **options,
    )

    run_config: dict[str, Any] = {"shots": shots}
    run_config.update({k: v for k, v in run_options.items() if v is not None})
    if _has_option(backend, "init_qubits"):
        run_config["init_qubits"] = bool(init_qubits)
    if rep_delay is not None and _has_option(backend, "rep_delay"):
        run_config["rep_delay"] = rep_delay
    run_config.update(few_qubit_run_options(backend, transpiled, run_config))
    # Compact on our device-like backends: Aer then simulates only the qubits used.
    result = run_circuits(backend, transpiled, **run_config)
    failed = [r.header.get("name", str(i)) for i, r in enumerate(result.results) if not r.success]
    if failed:
        raise RuntimeError(f"circuits failed on {backend.name}: {failed}: {result.status}")
    output: dict[str, Any] = result.to_dict()
    if measurement_error_mitigation:
        _add_quasiprobabilities(output, transpiled, backend, run_options.get("seed_simulator"))
    return output


def cached_pass_manager(
    backend: Any, *, optimization_level: int = 1, **options: Any
) -> PassManager:
    """A preset pass manager for ``backend``, built once per backend name and options."""
    key = _pass_manager_key(backend, optimization_level, options)
    with _cache_lock:
        manager = _pass_managers.get(key)
        if manager is not None:
            _pass_managers.move_to_end(key)
            return manager
    try:
        manager = generate_preset_pass_manager(
            optimization_level=optimization_level, backend=backend, **options
        )
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"invalid transpiler options {options}: {exc}") from exc
    cache.count("pass_manager_builds")
    with _cache_lock:
        _pass_managers[key] = manager
        while len(_pass_managers) > _CACHE_SIZE:
            _pass_managers.popitem(last=False)
    return manager


def cached_transpile(
    circuits: Sequence[QuantumCircuit],
    backend: Any,
    *,
    optimization_level: int = 1,
    **options: Any,
) -> list[QuantumCircuit]:
    """``circuits`` transpiled by :func:`cached_pass_manager`, reusing earlier results.

    A circuit equal in content to one transpiled before for the same backend object
    with the same options (see :func:`qruntime.programs.cache.circuit_key`) is not transpiled
    again: the result is a copy of the earlier one, with this circuit's own name and
    metadata. Each lookup counts as a transpile hit or miss of the current job.
    """
    manager_key = _pass_manager_key(backend, optimization_level, options)
    manager: PassManager | None = None
    transpiled: list[QuantumCircuit] = []
    for circuit in circuits:
        content = cache.circuit_key(circuit)
        key = (content, *manager_key) if content is not None else None
        hit = cache.load_transpiled(key, backend) if key is not None else None
        if hit is not None:
            cache.count("transpile_hits")
            again = hit.copy(name=circuit.name)
            again.metadata = copy.deepcopy(circuit.metadata)
            transpiled.append(again)
            continue
        cache.count("transpile_misses")
        if manager is None:
            manager = cached_pass_manager(backend, optimization_level=optimization_level, **options)
        # One at a time: a list makes the pass manager fan out to processes.
        result: QuantumCircuit = manager.run(circuit)
        if key is not None:
            # The cache keeps its own copy: the caller may change what it gets.
            cache.store_transpiled(key, backend, result.copy())
        transpiled.append(result)
    return transpiled


def _pass_manager_key(
    backend: Any, optimization_level: Any, options: Mapping[str, Any]
) -> tuple[str, str]:
    if (
        isinstance(optimization_level, bool)
        or not isinstance(optimization_level, int)
        or not 0 <= optimization_level <= 3
    ):
        raise InputValueError(
            f"optimization_level must be 0, 1, 2 or 3, not {optimization_level!r}"
        )
    # repr() keeps unhashable values (lists, dicts) in the key; a repr that
    # differs for equal objects only costs a cache miss, never a wrong hit.
    return (
        str(backend.name),
        json.dumps([optimization_level, options], sort_keys=True, default=repr),
    )


def warm_up(backend: Any = None) -> None:
    """Load what later jobs need: the transpiler's stage plugins, a backend's default pass manager.

    A worker calls this before it drops privileges: plugins are found through
    package metadata that a sandboxed process may no longer be able to read.
    """
    for stage in ("layout", "routing", "translation"):
        _known_methods(stage)
    if backend is not None:
        cached_pass_manager(backend, optimization_level=1, qubits_initially_zero=True)


def clear_pass_manager_cache() -> None:
    """Forget every cached pass manager (tests; a backend whose target changed)."""
    with _cache_lock:
        _pass_managers.clear()


def _circuits(circuits: Any, backend: Any) -> list[QuantumCircuit]:
    if circuits is None:
        raise InputValueError("circuits is required: give a QuantumCircuit or a list of them")
    circuit_list = [circuits] if isinstance(circuits, QuantumCircuit) else circuits
    if not isinstance(circuit_list, Sequence) or isinstance(circuit_list, str | bytes):
        raise InputValueError(f"circuits must be a QuantumCircuit or a list, not {circuits!r}")
    if not circuit_list:
        raise InputValueError("circuits is empty: give at least one QuantumCircuit")
    width = backend.num_qubits
    for i, circuit in enumerate(circuit_list):
        if not isinstance(circuit, QuantumCircuit):
            raise InputValueError(
                f"circuits[{i}] is a {type(circuit).__name__}, not a QuantumCircuit"
            )
        if width is not None and circuit.num_qubits > width:
            raise InputValueError(
                f"circuits[{i}] has {circuit.num_qubits} qubits but backend {backend.name} "
                f"has only {width}"
            )
    return list(circuit_list)


def _stage_method(stage: str, method: str | None, legacy: Mapping[str, str]) -> str | None:
    if method is None:
        return None
    if method in legacy:
        logger.info("%s_method %r is gone from qiskit 2: using %r", stage, method, legacy[method])
        return legacy[method]
    choices = _known_methods(stage)
    if method not in choices:
        known = sorted([*choices, *legacy])
        raise InputValueError(f"{stage}_method {method!r} is not one of {known}")
    return method


@functools.cache
def _known_methods(stage: str) -> tuple[str, ...]:
    return tuple(list_stage_plugins(stage))


def _layout(initial_layout: Any) -> list[int] | None:
    """A layout as a list of physical qubits; a dict maps virtual index -> physical."""
    if initial_layout is None:
        return None
    if isinstance(initial_layout, Mapping):
        try:
            pairs = sorted((int(k), int(v)) for k, v in initial_layout.items())
        except (TypeError, ValueError) as exc:
            raise InputValueError(
                f"initial_layout keys and values must be integers: {exc}"
            ) from exc
        if [k for k, _ in pairs] != list(range(len(pairs))):
            raise InputValueError("initial_layout must map every virtual qubit 0..n-1")
        return [v for _, v in pairs]
    if isinstance(initial_layout, Sequence) and all(
        isinstance(q, int) and not isinstance(q, bool) for q in initial_layout
    ):
        return list(initial_layout)
    raise InputValueError(
        f"initial_layout must be a list of physical qubits, not {initial_layout!r}"
    )


def _check_layout_fits(layout: Any, circuits: list[QuantumCircuit], backend: Any) -> None:
    if not isinstance(layout, list):
        return  # a Layout object given in-process: the transpiler checks it
    width = backend.num_qubits
    if len(set(layout)) != len(layout) or any(not 0 <= q < width for q in layout):
        raise InputValueError(
            f"initial_layout {layout} must name distinct qubits of {backend.name} (0..{width - 1})"
        )
    for i, circuit in enumerate(circuits):
        if circuit.num_qubits != len(layout):
            raise InputValueError(
                f"initial_layout has {len(layout)} qubits, "
                f"but circuits[{i}] has {circuit.num_qubits}"
            )


def _check_transpiler_options(options: Mapping[str, Any]) -> None:
    reserved = sorted(set(options) & _RESERVED_TRANSPILER_OPTIONS)
    if reserved:
        raise InputValueError(
            f"transpiler_options may not set {', '.join(reserved)}: use the top-level parameters"
        )
    unknown = sorted(set(options) - _TRANSPILER_OPTIONS)
    if unknown:
        raise InputValueError(
            f"unknown transpiler_options {', '.join(unknown)}; known: {sorted(_TRANSPILER_OPTIONS)}"
        )


def few_qubit_run_options(
    backend: Any, circuits: Sequence[QuantumCircuit], run_options: Mapping[str, Any]
) -> dict[str, Any]:
    """``max_parallel_threads=1`` for an Aer backend when every circuit is small, else ``{}``.

    Aer's OpenMP threads cost more than they save on a few qubits: a 4-qubit ansatz
    with 1024 shots took 14-30 ms with them on 2 busy cores and 1.4 ms without. Aer
    drops idle qubits, so only the qubits some operation acts on count. A thread count
    set on the backend or in ``run_options`` is left alone.
    """
    if not _has_option(backend, "max_parallel_threads") or backend.options.max_parallel_threads:
        return {}
    if "max_parallel_threads" in run_options:
        return {}
    for circuit in circuits:
        active: set[int] = set()
        for inst in circuit.data:
            if inst.operation.name not in ("barrier", "delay"):
                active.update(circuit.find_bit(q).index for q in inst.qubits)
        if len(active) > _SINGLE_THREAD_QUBITS:
            return {}
    return {"max_parallel_threads": 1}


def _has_option(backend: Any, name: str) -> bool:
    return hasattr(backend, "options") and hasattr(backend.options, name)


def _add_quasiprobabilities(
    output: dict[str, Any], transpiled: list[QuantumCircuit], backend: Any, seed: int | None
) -> None:
    mappings = [final_measurement_mapping(circuit) for circuit in transpiled]
    qubits = sorted({q for mapping in mappings for q in mapping})
    calibration = cached_readout_calibration(backend, qubits, seed_simulator=seed)
    for experiment, mapping in zip(output["results"], mappings, strict=True):
        quasi = calibration.mitigate(experiment["data"].get("counts", {}), mapping)
        experiment["data"]["quasiprobabilities"] = quasiprobabilities_to_hex(quasi)
        header = experiment.setdefault("header", {})
        header["final_measurement_mapping"] = mapping
