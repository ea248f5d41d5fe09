"""The built-in ``noise-learner`` program: the Pauli-Lindblad noise of each layer of a circuit.

What qiskit-ibm-runtime's ``NoiseLearner`` submits: ``circuits`` (ISA circuits) and
``options`` (``NoiseLearnerOptions``). The circuits' layers of two-qubit gates
(``layers.py``) are counted; the most frequent ``max_layers_to_learn`` (ties: more
gates first) are learned on the job's backend as IBM's service learns them:

- for each depth in ``layer_pair_depths`` and each of at most 9 measurement bases,
  ``num_randomizations`` circuits of ``shots_per_randomization`` shots: the qubits
  prepared in the basis, the layer repeated ``2 * depth`` times with fresh Pauli
  twirls around each repetition, the readout twirled, and measured in the basis;
- each generator's expectation value fitted to an exponential decay in depth, and
  the decays turned into rates (``pauli_lindblad.py``).

The single-qubit slots (preparation, twirls, basis change) are rotations of the
device's basis with bound angles (``learning_circuits.py``), so each block of qubits
at each depth is one parameterised circuit and the bases and randomizations are its
parameter sets. The backend's own noise model acts on every gate. A device-like
backend's noise is local to each gate's qubits, so each gate of the layer (and each
idle twirled qubit) is a block simulated on its own qubits, and the blocks' results
are combined; any other backend simulates the layer's qubits together (at most
:data:`MAX_JOINT_QUBITS`).

The result is IBM's wire shape: ``{"data": [LayerError, ...], "metadata": {...}}``
(the official client decodes it into its ``NoiseLearnerResult``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Instruction

from qruntime.backends.compact import DeviceRunner, run_circuits
from qruntime.errors import InputValueError
from qruntime.layer_noise import LayerError, PauliLindbladError
from qruntime.programs.layers import (
    STRATEGIES,
    Layer,
    is_layer_gate,
    layer_circuit,
    layered_circuit,
)
from qruntime.programs.learning_circuits import (
    Block,
    block_template,
    generator_values,
    parity_means,
    slot_angles,
)
from qruntime.programs.pauli_lindblad import (
    fit_decays,
    measurement_bases,
    rates_from_fidelities,
    sparse_generators,
)

__all__ = ["METADATA", "LearningOptions", "learn_layer", "main", "ranked_layers", "validate"]

#: Qubits a layer may have when they must be simulated together (a custom noise model).
MAX_JOINT_QUBITS = 8
_MAX_DEPTH = 1024
_MAX_RANDOMIZATIONS = 4096
_MAX_SHOTS = 1_000_000
# Randomizations times single-qubit slots per basis and layer: 27 times IBM's defaults.
_MAX_SLOTS = 100_000

METADATA: dict[str, Any] = {
    "name": "noise-learner",
    "description": "Learns the Pauli-Lindblad noise of the layers of two-qubit gates of circuits.",
    "max_execution_time": 3600,
    "spec": {
        "backend_requirements": {"min_num_qubits": 2},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "circuits": {"description": "ISA circuits whose layers to learn.", "type": "array"},
                "options": {"description": "NoiseLearnerOptions, as a dict.", "type": "object"},
            },
            "required": ["circuits"],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "{data: [LayerError], metadata} (runtime-encoded).",
            "type": "object",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "None: the noise learner publishes no interim results.",
            "type": "null",
        },
    },
}


@dataclass(frozen=True)
class LearningOptions:
    """How layers are learned; IBM's defaults."""

    max_layers_to_learn: int | None = 4
    shots_per_randomization: int = 128
    num_randomizations: int = 32
    layer_pair_depths: tuple[int, ...] = (0, 1, 2, 4, 16, 32)
    twirling_strategy: str = "active-accum"

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None, *, path: str = "options") -> LearningOptions:
        """Check IBM's option names and values; unset (None) ones take the defaults."""
        given = {k: v for k, v in (options or {}).items() if v is not None}
        values: dict[str, Any] = {}
        if "max_layers_to_learn" in given:
            values["max_layers_to_learn"] = _integer(
                f"{path}.max_layers_to_learn", given["max_layers_to_learn"], 0, None
            )
        for name, high in (
            ("shots_per_randomization", _MAX_SHOTS),
            ("num_randomizations", _MAX_RANDOMIZATIONS),
        ):
            if name in given:
                values[name] = _integer(f"{path}.{name}", given[name], 1, high)
        if "layer_pair_depths" in given:
            depths = given["layer_pair_depths"]
            where = f"{path}.layer_pair_depths"
            if not isinstance(depths, list | tuple) or not depths:
                raise InputValueError(f"{where} must be a non-empty list of integers >= 0")
            checked = tuple(_integer(where, d, 0, _MAX_DEPTH) for d in depths)
            if len(set(checked)) < 2:
                raise InputValueError(f"{where} needs at least 2 different depths to fit decays")
            values["layer_pair_depths"] = tuple(sorted(set(checked)))
        if "twirling_strategy" in given:
            strategy = given["twirling_strategy"]
            if strategy not in STRATEGIES:
                raise InputValueError(
                    f"{path}.twirling_strategy must be one of {list(STRATEGIES)}, not {strategy!r}"
                )
            values["twirling_strategy"] = strategy
        learning = cls(**values)
        slots = learning.num_randomizations * sum(2 * d + 1 for d in learning.layer_pair_depths)
        if slots > _MAX_SLOTS:
            raise InputValueError(
                f"{path}: num_randomizations times the layers of all depths is {slots}; "
                f"qruntime runs at most {_MAX_SLOTS} per basis and layer (IBM's defaults: 3712)"
            )
        return learning


_KNOWN_OPTIONS = frozenset(
    {
        "max_layers_to_learn",
        "shots_per_randomization",
        "num_randomizations",
        "layer_pair_depths",
        "twirling_strategy",
        "experimental",
        "simulator",
        "support_qiskit",
        "max_execution_time",
        "environment",
    }
)
_SIMULATOR_OPTIONS = frozenset({"noise_model", "seed_simulator", "coupling_map", "basis_gates"})


def validate(inputs: dict[str, Any], *, num_qubits: int) -> None:
    """Check a noise-learner job's inputs at submission; raises ``InputValueError``."""
    _parse_inputs(inputs, num_qubits=num_qubits)


def main(backend: Any, user_messenger: Any, **kwargs: Any) -> dict[str, Any]:
    """Learn the noise of the circuits' most frequent layers on ``backend``."""
    del user_messenger  # no interim results
    started = time.perf_counter()
    circuits, options, simulator = _parse_inputs(
        kwargs, num_qubits=getattr(backend, "num_qubits", None)
    )
    seed = simulator.get("seed_simulator")
    rng = np.random.default_rng(seed)
    ranked, operations = ranked_layers(circuits, options.twirling_strategy, backend)
    chosen = (
        ranked if options.max_layers_to_learn is None else ranked[: options.max_layers_to_learn]
    )
    data = [
        learn_layer(
            backend,
            layer,
            operations,
            options,
            rng=rng,
            noise_model=simulator.get("noise_model"),
        )
        for layer in chosen
    ]
    metadata = {
        "backend": getattr(backend, "name", None),
        "input_options": {**asdict(options), "layer_pair_depths": list(options.layer_pair_depths)},
        "num_unique_layers": len(ranked),
        "timing": {"total_seconds": time.perf_counter() - started},
    }
    return {"data": data, "metadata": metadata}


def ranked_layers(
    circuits: Sequence[QuantumCircuit], strategy: str, backend: Any = None
) -> tuple[list[Layer], dict[str, Instruction]]:
    """The circuits' distinct layers, most frequent first (then most gates), and their gates.

    Raises ``InputValueError`` for a layer gate the backend does not support where it acts.
    """
    counts: Counter[Layer] = Counter()
    first_seen: dict[Layer, int] = {}
    operations: dict[str, Instruction] = {}
    target = getattr(backend, "target", None)
    for circuit in circuits:
        layered = layered_circuit(circuit, strategy)
        operations.update(layered.operations)
        for layer in layered.layers:
            counts[layer] += 1
            first_seen.setdefault(layer, len(first_seen))
    if target is not None:
        for layer in counts:
            for name, pair in layer.gates:
                if name in target.operation_names and not target.instruction_supported(name, pair):
                    raise InputValueError(
                        f"{name} on qubits {pair} is not an instruction of "
                        f"{getattr(backend, 'name', 'the backend')}: give ISA circuits"
                    )
    ranked = sorted(
        counts, key=lambda layer: (-counts[layer], -len(layer.gates), first_seen[layer])
    )
    return ranked, operations


def learn_layer(
    backend: Any,
    layer: Layer,
    operations: Mapping[str, Instruction],
    options: LearningOptions,
    *,
    rng: np.random.Generator,
    noise_model: Any = None,
) -> LayerError:
    """Run the learning circuits of ``layer`` on ``backend`` and fit its ``LayerError``."""
    qubits = list(layer.qubits)
    local = {q: i for i, q in enumerate(qubits)}
    edges = _edges(backend, layer)
    local_edges = [(local[a], local[b]) for a, b in edges]
    generators = sparse_generators(len(qubits), local_edges)
    bases = measurement_bases(len(qubits), local_edges)  # (B, n) Pauli codes
    blocks = _blocks(backend, layer, noise_model)
    depths = list(options.layer_pair_depths)
    count = options.num_randomizations

    width = max(qubits) + 1
    circuits: list[QuantumCircuit] = []
    binds: list[dict[Any, list[float]]] = []
    runs: list[tuple[int, int, np.ndarray[Any, Any]]] = []  # block, depth index, readout flips
    rows: list[np.ndarray[Any, Any]] = []  # per block: global basis -> its own basis row
    for block in blocks:
        # A block runs each of its distinct bases once: an idle qubit needs 3, not 9.
        own, inverse = np.unique(
            bases[:, [local[q] for q in block.qubits]], axis=0, return_inverse=True
        )
        rows.append(np.asarray(inverse).reshape(-1))
        for d_index, depth in enumerate(depths):
            k = len(block.qubits)
            twirls = rng.integers(0, 4, size=(len(own), count, 2 * depth, k))
            flips = rng.integers(0, 2, size=(len(own), count, k))
            circuit, parameters = block_template(block, depth, width, operations)
            angles = slot_angles(block, operations, twirls, flips, own)
            circuits.append(circuit)
            binds.append({p: angles[:, j].tolist() for j, p in enumerate(parameters)})
            runs.append((len(rows) - 1, d_index, flips.reshape(-1, k)))
    run_options: dict[str, Any] = {
        "shots": options.shots_per_randomization,
        "parameter_binds": binds,
        "seed_simulator": int(rng.integers(0, 2**31 - 1)),
    }
    if noise_model is not None:
        run_options["noise_model"] = noise_model
    if isinstance(backend, DeviceRunner) or hasattr(getattr(backend, "options", None), "method"):
        # Thousands of small Aer experiments: one per thread pays, unlike threads in one.
        run_options["max_parallel_threads"] = os.cpu_count() or 1
        run_options["max_parallel_experiments"] = 0
    result = run_circuits(backend, circuits, **run_options)
    if not result.success:
        raise RuntimeError(f"the backend {getattr(backend, 'name', '')} failed: {result.status}")

    experiments = iter(result.results)
    # parities[(block, depth)]: rows (own basis, randomization), M[i, j] the mean of
    # (-1)^(bit_i + bit_j) and M[i, i] that of (-1)^bit_i, readout twirl undone.
    parities: dict[tuple[int, int], np.ndarray[Any, Any]] = {}
    for b_index, d_index, flips in runs:
        k = flips.shape[1]
        table = np.stack([parity_means(next(experiments).data.counts, k) for _ in flips])
        sign = 1 - 2 * flips
        singles = np.einsum("rii->ri", table) * sign
        table *= sign[:, :, None] * sign[:, None, :]
        table[:, np.arange(k), np.arange(k)] = singles
        parities[(b_index, d_index)] = table

    values, variances = generator_values(
        generators, bases, blocks, rows, local, parities, len(depths), count
    )
    fidelities, _ = fit_decays(depths, values, variances)
    rates = rates_from_fidelities(generators, fidelities)
    return LayerError(
        layer_circuit(layer, dict(operations)), qubits, PauliLindbladError(generators, rates)
    )


# --- inputs -------------------------------------------------------------------------------


def _parse_inputs(
    inputs: Mapping[str, Any], *, num_qubits: int | None
) -> tuple[list[QuantumCircuit], LearningOptions, dict[str, Any]]:
    if "schema_version" in inputs or "instructions" in inputs:
        raise InputValueError(
            "qruntime serves the noise-learner program of NoiseLearner (V2), not NoiseLearnerV3"
        )
    circuits = inputs.get("circuits")
    if not isinstance(circuits, list | tuple) or not circuits:
        raise InputValueError("circuits must be a non-empty list of ISA circuits")
    for i, circuit in enumerate(circuits):
        if not isinstance(circuit, QuantumCircuit):
            raise InputValueError(f"circuits[{i}] is not a QuantumCircuit")
        if num_qubits is not None and circuit.num_qubits > num_qubits:
            raise InputValueError(
                f"circuits[{i}] has {circuit.num_qubits} qubits; the backend has {num_qubits}"
            )
    options = inputs.get("options") or {}
    if not isinstance(options, Mapping):
        raise InputValueError("options must be a dict of NoiseLearnerOptions")
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise InputValueError(
            f"unknown noise learner options {unknown}; known: {sorted(_KNOWN_OPTIONS)}"
        )
    simulator = dict(options.get("simulator") or {})
    unknown = sorted(set(simulator) - _SIMULATOR_OPTIONS)
    if unknown:
        raise InputValueError(f"unknown options.simulator keys {unknown}")
    seed = simulator.get("seed_simulator")
    if seed is not None:
        _integer("options.simulator.seed_simulator", seed, 0, None)
    return list(circuits), LearningOptions.parse(options), simulator


def _integer(path: str, value: Any, low: int, high: int | None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise InputValueError(f"{path} must be an integer {span}, not {value!r}")
    return int(value)


# --- learning circuits --------------------------------------------------------------------


def _edges(backend: Any, layer: Layer) -> list[tuple[int, int]]:
    """Coupled pairs among the layer's qubits: the backend's couplings and the layer's gates."""
    inside = set(layer.qubits)
    pairs = {tuple(sorted(pair)) for _, pair in layer.gates}
    target = getattr(backend, "target", None)
    if target is not None:
        for name in target.operation_names:
            entries = target[name]
            for qargs in entries or {}:
                if (
                    qargs is not None
                    and len(qargs) == 2
                    and set(qargs) <= inside
                    and is_layer_gate(target.operation_from_name(name))
                ):
                    pairs.add(tuple(sorted(qargs)))
    return sorted((int(a), int(b)) for a, b in pairs)


def _blocks(backend: Any, layer: Layer, noise_model: Any) -> list[Block]:
    """Each gate's qubits and each idle qubit apart, where the noise is local to gates."""
    if noise_model is None and (isinstance(backend, DeviceRunner) or _is_ideal(backend)):
        blocks = [Block(pair, ((name, (0, 1)),)) for name, pair in layer.gates]
        busy = layer.gate_qubits
        blocks += [Block((q,), ()) for q in layer.qubits if q not in busy]
        return blocks
    if len(layer.qubits) > MAX_JOINT_QUBITS:
        raise InputValueError(
            f"a layer on {len(layer.qubits)} qubits with a noise model of your own must be "
            f"simulated whole: qruntime learns such layers on at most {MAX_JOINT_QUBITS} "
            "qubits (try twirling_strategy 'active')"
        )
    position = {q: i for i, q in enumerate(layer.qubits)}
    gates = tuple((name, (position[a], position[b])) for name, (a, b) in layer.gates)
    return [Block(layer.qubits, gates)]


def _is_ideal(backend: Any) -> bool:
    options = getattr(backend, "options", None)
    return options is not None and getattr(options, "noise_model", "absent") is None
