"""The built-in ``executor`` program: runs the ``QuantumProgram`` of qiskit-ibm-runtime's Executor.

``qiskit_ibm_runtime.Executor`` (and the client-side ``executor_sampler`` and
``executor_estimator`` primitives built on it) submits program id ``executor``
with ``params`` = a versioned pydantic model of ``ibm_quantum_schemas``
(``{"schema_version": "v2.0", "quantum_program": ..., "options": ...}``), all
plain JSON. The client decodes the result with the ``QuantumProgramResultModel``
of the ``schema_version`` the result names. This program reads the params with the
converters qiskit-ibm-runtime ships, runs each item on the job's backend, and
answers with a ``v2.0`` result model:

* a circuit item is run once per row of its ``circuit_arguments``;
* a samplex item's samplex (samplomatic) draws the circuit's parameter values
  (twirling, noise injection, basis changes) for every element of its shape, and
  the draws other than ``parameter_values`` (such as measurement flips) are
  returned beside the bits, for the client to post-process.

All parameter sets of an item run in one backend call per group of qubits that
never interact (:mod:`qruntime.programs.separable`): the client's estimator measures
every qubit of a device, and simulating 27 noisy qubits whole took minutes.
``options.experimental["seed_simulator"]`` seeds the draws and the simulator.

Each classical register comes back as a bool array ``(*item.shape, shots,
register size)``. qiskit-ibm-runtime is imported only here, when such a job
runs: the server itself does not need it.
"""

from __future__ import annotations

import importlib.util
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from qruntime.errors import InputValueError, QRuntimeError
from qruntime.programs.sampler import flat_values
from qruntime.programs.separable import sample_bits

__all__ = ["INSTALL_HINT", "METADATA", "main", "validate"]

INSTALL_HINT = "install qiskit-ibm-runtime to use the executor program"

#: The result schema this program answers in (what qiskit-ibm-runtime 0.51 decodes).
RESULT_SCHEMA_VERSION = "v2.0"

METADATA: dict[str, Any] = {
    "name": "executor",
    "description": (
        "Runs the QuantumProgram of qiskit-ibm-runtime's Executor (and its client-side "
        "sampler and estimator): circuit and samplex items, bits per classical register."
    ),
    "max_execution_time": 3600,
    "spec": {
        "backend_requirements": {"min_num_qubits": 1},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "schema_version": {
                    "description": "Version of the executor params schema, such as v2.0.",
                    "type": "string",
                },
                "quantum_program": {
                    "description": "The QuantumProgram model: shots, QPY circuits, items.",
                    "type": "object",
                },
                "options": {
                    "description": "Executor options (init_qubits, ...).",
                    "type": "object",
                },
            },
            "required": ["schema_version", "quantum_program"],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "A QuantumProgramResultModel (ibm_quantum_schemas, schema v2.0).",
            "type": "object",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "None: the executor publishes no interim results.",
            "type": "null",
        },
    },
}


def validate(inputs: dict[str, Any], *, num_qubits: int) -> None:
    """Check an executor job at submission, without importing qiskit-ibm-runtime.

    The full params model is read in the worker: importing the client (about
    1.4 s) in the server for every submission would stall it.
    """
    del num_qubits  # the circuits are QPY: their width is checked when the job runs
    if not _client_installed():
        raise InputValueError(f"This server cannot run executor jobs: {INSTALL_HINT}.")
    version = inputs.get("schema_version")
    if not isinstance(version, str) or not version.startswith("v"):
        raise InputValueError(f"Invalid input schema_version: {version!r} is not like 'v2.0'.")


def main(backend: Any, user_messenger: Any, **kwargs: Any) -> dict[str, Any]:
    """Run the quantum program in ``kwargs`` on ``backend``; returns the result model as JSON."""
    del user_messenger  # no interim results
    program, seed = _read_params(kwargs)
    if program.meas_level != "classified":
        raise InputValueError(
            f"meas_level {program.meas_level!r} needs a real device; simulators return "
            "only 'classified' bits"
        )
    width = getattr(backend, "num_qubits", None)
    # Draws the samplex values and the simulator's seeds: seeded, a job repeats its bits.
    rng = np.random.default_rng(seed)
    items = []
    spans = []
    for index, item in enumerate(program.items):
        if width is not None and item.circuit.num_qubits > width:
            raise InputValueError(
                f"item {index}: the circuit has {item.circuit.num_qubits} qubits; "
                f"backend {backend.name} has {width}"
            )
        started = datetime.now(UTC)
        items.append(_run_item(item, backend, shots=program.shots, rng=rng))
        spans.append((started, datetime.now(UTC), index, item.shape))
    # Passed back as sent (plain JSON): the result model takes the same types.
    sent = kwargs.get("quantum_program") or {}
    return _result_model(
        items,
        spans,
        passthrough=sent.get("passthrough_data"),
        semantic_role=sent.get("semantic_role"),
    )


def _client_installed() -> bool:
    try:
        return importlib.util.find_spec("qiskit_ibm_runtime") is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False


# --- reading the params ----------------------------------------------------------------------


def _read_params(params: dict[str, Any]) -> tuple[Any, int | None]:
    """The ``QuantumProgram`` of the params (via the client's converters) and the job's seed.

    The seed is qruntime's ``experimental`` option ``seed_simulator`` (the client passes
    its ``options.experimental`` through); ``init_qubits`` does not matter to a
    simulator, whose qubits always start in 0.
    """
    try:
        from qiskit_ibm_runtime.quantum_program.params_converters import (
            QUANTUM_PROGRAM_PARAMS_CONVERTERS,
        )
    except ImportError as exc:
        raise QRuntimeError(f"{INSTALL_HINT} ({exc})") from None
    from pydantic import ValidationError

    version = params.get("schema_version")
    converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS.get(str(version))
    if converter is None:
        known = ", ".join(sorted(QUANTUM_PROGRAM_PARAMS_CONVERTERS))
        raise InputValueError(f"executor params schema {version!r} is unknown here; use {known}")
    try:
        model = converter.model.model_validate(params)
    except ValidationError as exc:
        raise InputValueError(f"invalid executor params: {exc}") from None
    program, executor_options = converter.decoder(model)
    seed = (executor_options.experimental or {}).get("seed_simulator")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise InputValueError(
            f"experimental.seed_simulator must be a non-negative integer, not {seed!r}"
        )
    return program, seed


# --- running ----------------------------------------------------------------------------------


def _run_item(
    item: Any, backend: Any, *, shots: int, rng: np.random.Generator
) -> dict[str, np.ndarray[Any, Any]]:
    """The named result arrays of one item: samplex draws, then one bool array per register."""
    from samplomatic.quantum_program import (  # type: ignore[import-untyped]
        CircuitItem,
        SamplexItem,
    )

    shape = tuple(item.shape)
    outputs: dict[str, np.ndarray[Any, Any]] = {}
    if isinstance(item, CircuitItem):
        values = np.asarray(item.circuit_arguments, dtype=float)
    elif isinstance(item, SamplexItem):
        outputs = _draw_samplex(item.samplex, item.samplex_arguments, shape, rng)
        values = outputs.pop("parameter_values", np.zeros((*shape, 0)))
    else:
        raise InputValueError(f"unsupported quantum program item: {type(item).__name__}")
    circuit: QuantumCircuit = item.circuit
    rows = flat_values(values, shape) if circuit.num_parameters else np.zeros((math.prod(shape), 0))
    if rows.shape[1] != circuit.num_parameters:
        raise InputValueError(
            f"the circuit has {circuit.num_parameters} parameters; {rows.shape[1]} values given"
        )
    # All parameter sets in one backend call per independent group of qubits.
    bits = sample_bits(backend, circuit, rows, shots=shots, rng=rng)
    for register in circuit.cregs:
        columns = [circuit.find_bit(bit).index for bit in register]
        outputs[register.name] = bits[:, :, columns].reshape(*shape, shots, len(register))
    return outputs


def _draw_samplex(
    samplex: Any, arguments: Any, shape: tuple[int, ...], rng: np.random.Generator
) -> dict[str, np.ndarray[Any, Any]]:
    """Draw the samplex's outputs for every element of ``shape``, as ``(*shape, ...)`` arrays.

    Axes where the (right-aligned) arguments have more than one entry sweep
    over those entries; the other axes of ``shape`` enumerate randomizations,
    all drawn in one ``sample`` call per swept element.
    """
    aligned = (1,) * (len(shape) - arguments.ndim) + tuple(arguments.shape)
    swept = [axis for axis, size in enumerate(aligned) if size > 1]
    random_axes = [axis for axis in range(len(shape)) if axis not in swept]
    random_shape = tuple(shape[axis] for axis in random_axes)
    offset = len(shape) - arguments.ndim
    # A samplex read back from its JSON model is not finalized yet; finalizing twice is harmless.
    samplex.finalize()
    outputs: dict[str, np.ndarray[Any, Any]] = {}
    for point in np.ndindex(*(shape[axis] for axis in swept)):
        where = dict(zip(swept, point, strict=True))
        # Index of the arguments (their own axes) and of the outputs (all of shape).
        argument_index = tuple(where.get(offset + axis, 0) for axis in range(arguments.ndim))
        output_index = tuple(where.get(axis, slice(None)) for axis in range(len(shape)))
        drawn = samplex.sample(
            arguments[argument_index], num_randomizations=math.prod(random_shape), rng=rng
        )
        for name, value in dict(drawn).items():
            value = np.asarray(value)
            if name not in outputs:
                outputs[name] = np.empty((*shape, *value.shape[1:]), dtype=value.dtype)
            outputs[name][output_index] = value.reshape(*random_shape, *value.shape[1:])
    return outputs


# --- the result model -------------------------------------------------------------------------


def _result_model(
    items: list[dict[str, np.ndarray[Any, Any]]],
    spans: list[tuple[datetime, datetime, int, tuple[int, ...]]],
    *,
    passthrough: Any,
    semantic_role: str | None,
) -> dict[str, Any]:
    """The ``v2.0`` ``QuantumProgramResultModel`` of the run, dumped to JSON values."""
    from ibm_quantum_schemas.common import (  # type: ignore[import-untyped]
        CompressedTensorModel,
    )
    from ibm_quantum_schemas.executor.version_2_0 import (  # type: ignore[import-untyped]
        ChunkPart,
        ChunkSpan,
        ItemMetadataModel,
        MetadataModel,
        QuantumProgramResultItemModel,
        QuantumProgramResultModel,
    )

    data = [
        QuantumProgramResultItemModel(
            results={name: CompressedTensorModel.from_numpy(a) for name, a in arrays.items()},
            metadata=ItemMetadataModel(),
        )
        for arrays in items
    ]
    # One chunk per item, each item run whole and in order.
    chunks = [
        ChunkSpan(
            start=start,
            stop=stop,
            parts=[
                ChunkPart(
                    idx_item=index,
                    size=math.prod(shape),
                    permutation=list(range(len(shape))),
                    element_range=(0, math.prod(shape), 1),
                )
            ],
        )
        for start, stop, index, shape in spans
    ]
    model = QuantumProgramResultModel(
        schema_version=RESULT_SCHEMA_VERSION,
        data=data,
        metadata=MetadataModel(chunk_timing=chunks),
        passthrough_data=passthrough,
        semantic_role=semantic_role,
    )
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped
