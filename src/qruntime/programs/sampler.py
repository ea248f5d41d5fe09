"""The built-in ``sampler`` program: Qiskit's V2 Sampler, run on the job's backend.

Each PUB's circuit is fitted to the backend (left alone when already ISA,
otherwise transpiled with a cached preset pass manager, or taken from the
content-keyed cache of transpiled circuits), optionally gets
dynamical decoupling and Pauli twirling, and runs as one backend call with
Aer's ``parameter_binds`` for all its parameter sets. The result is a qiskit
``PrimitiveResult`` of ``SamplerPubResult``: one ``BitArray`` per classical
register, in shot order, shaped like the PUB.

The execution helpers here (:func:`prepare_circuit`, :func:`run_batch`,
:func:`twirl_plan`, :func:`twirl_measurements`) are shared with the estimator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Delay, pauli_twirl_2q_gates
from qiskit.circuit.library import XGate
from qiskit.primitives.containers import (
    BitArray,
    DataBin,
    PrimitiveResult,
    SamplerPub,
    SamplerPubResult,
)
from qiskit.transpiler import PassManager, Target
from qiskit.transpiler.passes import (
    ALAPScheduleAnalysis,
    ASAPScheduleAnalysis,
    PadDynamicalDecoupling,
)

from qruntime.errors import InputValueError
from qruntime.primitives.options import PrimitiveOptions, TwirlingOptions
from qruntime.primitives.pubs import check_width, parse_inputs, validate_inputs
from qruntime.programs.cache import cached_preparation, decoded_key
from qruntime.programs.circuit_runner import cached_transpile, few_qubit_run_options
from qruntime.programs.ideal_sampling import probability_plan, sample_shots
from qruntime.programs.method_choice import check_simulable, describe_simulation, sample_chosen
from qruntime.programs.mitigation import final_measurement_mapping

__all__ = [
    "METADATA",
    "RunPlan",
    "decouple_idle_windows",
    "flat_values",
    "is_isa",
    "main",
    "next_seed",
    "prepare_circuit",
    "run_batch",
    "seed_stream",
    "twirl_gates",
    "twirl_measurements",
    "twirl_plan",
    "validate",
]

_BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

METADATA: dict[str, Any] = {
    "name": "sampler",
    "description": "Qiskit's V2 Sampler primitive: samples the measured bits of circuits.",
    "max_execution_time": 3600,
    "spec": {
        "backend_requirements": {"min_num_qubits": 1},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "pubs": {
                    "description": "Sampler PUBs: [circuit, parameter_values, shots] each.",
                    "type": "array",
                },
                "options": {"description": "SamplerOptions, as a dict.", "type": "object"},
                "version": {"description": "Primitive version: 2.", "type": "integer"},
                "support_qiskit": {"description": "Ignored: always true.", "type": "boolean"},
            },
            "required": ["pubs"],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "A PrimitiveResult of SamplerPubResult (runtime-encoded).",
            "type": "object",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "None: the sampler publishes no interim results.",
            "type": "null",
        },
    },
}

# IBM's "auto" twirling: at least 64 shots per randomization, at most 32 randomizations.
_MIN_SHOTS_PER_RANDOMIZATION = 64
_AUTO_RANDOMIZATIONS = 32


def validate(inputs: dict[str, Any], *, num_qubits: int, backend_kind: str | None = None) -> None:
    """Check a sampler job's inputs at submission; raises ``InputValueError``.

    On a noisy device (``backend_kind="device"``) circuits no simulation method can run
    here are refused (``method_choice.check_simulable``).
    """
    validate_inputs("sampler", inputs, num_qubits=num_qubits)
    if backend_kind == "device":
        check_simulable(parse_inputs("sampler", inputs).pubs)


def main(backend: Any, user_messenger: Any, **kwargs: Any) -> PrimitiveResult[SamplerPubResult]:
    """Run sampler PUBs on ``backend`` and return their bits."""
    del user_messenger  # no interim results
    started = time.perf_counter()
    parsed = parse_inputs("sampler", kwargs)
    options = parsed.options
    check_width(parsed.pubs, num_qubits=_width(backend))
    seeds = seed_stream(options.seed_simulator)
    rng = np.random.default_rng(options.seed_simulator)
    results = []
    for pub in parsed.pubs:
        assert isinstance(pub, SamplerPub)
        results.append(_run_pub(pub, backend, options, seeds, rng))
    metadata = {
        "version": 2,
        "options": options.to_dict(),
        "timing": {"total_seconds": time.perf_counter() - started},
    }
    return PrimitiveResult(results, metadata=metadata)


def _run_pub(
    pub: SamplerPub,
    backend: Any,
    options: PrimitiveOptions,
    seeds: np.random.Generator | None,
    rng: np.random.Generator,
) -> SamplerPubResult:
    shots = int(pub.shots if pub.shots is not None else options.default_shots or 1)
    content = decoded_key(pub.circuit)
    circuit = prepare_circuit(pub.circuit, backend, options, content=content)
    if circuit is not pub.circuit:
        content = None  # transpiled or padded here: keyed by what was sent, not what runs
    twirling = options.twirling
    plan = twirl_plan(shots, twirling)
    variants = [circuit]
    if twirling.enable_gates:
        variants = twirl_gates(circuit, plan.num_randomizations, backend, rng)
    elif plan.num_randomizations > 1:
        variants = [circuit] * plan.num_randomizations
    flips: list[_BoolArray] = [np.zeros(circuit.num_clbits, dtype=bool)] * len(variants)
    if twirling.enable_measure:
        pairs = [twirl_measurements(v, rng) for v in variants]
        variants = [p[0] for p in pairs]
        flips = [p[1] for p in pairs]

    values = flat_values(pub.parameter_values.as_array(circuit.parameters), pub.shape)
    seed = next_seed(seeds)
    # Untwirled on an ideal simulator: shots drawn from the exact probabilities, when the
    # circuit's measurements all come last (see qruntime.programs.ideal_sampling).
    ideal = None
    if len(variants) == 1 and not twirling.enable_measure:
        ideal = probability_plan(circuit, backend, options, bindings=len(values), content=content)
    if ideal is not None:
        draws = rng if seed is None else np.random.default_rng(seed)
        samples = [
            sample_shots(ideal, backend, values, shots=plan.total_shots, rng=draws, content=content)
        ]
    else:
        samples = run_batch(
            backend,
            variants,
            values,
            shots=plan.shots_per_randomization,
            options=options,
            seed=seed,
            memory=True,
        )
    # samples[v][b]: (shots, clbits) of variant v at binding b; undo flips, join variants.
    per_binding = []
    for b in range(len(values)):
        joined = np.concatenate([samples[v][b] ^ flips[v] for v in range(len(variants))])
        per_binding.append(joined[: plan.total_shots])
    total = per_binding[0].shape[0] if per_binding else 0

    fields: dict[str, BitArray] = {}
    for register in pub.circuit.cregs:
        columns = [pub.circuit.find_bit(bit).index for bit in register]
        arrays = [
            BitArray.from_bool_array(bits[:, columns], order="little") for bits in per_binding
        ]
        stacked = np.stack([a.array for a in arrays]) if arrays else np.zeros((0, total, 0))
        fields[register.name] = BitArray(
            stacked.reshape(*pub.shape, total, stacked.shape[-1]), len(register)
        )
    metadata = {
        "shots": total,
        "circuit_metadata": dict(pub.circuit.metadata or {}),
        "num_randomizations": len(variants),
        "simulation": "sampled" if ideal is None else "probabilities",
    }
    simulator = describe_simulation(backend, circuit)
    if simulator is not None:
        metadata["simulator"] = simulator
    return SamplerPubResult(DataBin(shape=pub.shape, **fields), metadata=metadata)


# --- helpers shared with the estimator ----------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """How the shots of one circuit are split over twirling randomizations."""

    num_randomizations: int
    shots_per_randomization: int
    total_shots: int


def twirl_plan(shots: int, twirling: TwirlingOptions) -> RunPlan:
    """IBM's rule for ``"auto"`` randomizations and shots; one plain run when not twirling."""
    if not (twirling.enable_gates or twirling.enable_measure):
        return RunPlan(1, shots, shots)
    count, per = twirling.num_randomizations, twirling.shots_per_randomization
    if count is None and per is None:
        per = max(_MIN_SHOTS_PER_RANDOMIZATION, math.ceil(shots / _AUTO_RANDOMIZATIONS))
        count = math.ceil(shots / per)
    elif count is None:
        assert per is not None
        count = math.ceil(shots / per)
    elif per is None:
        per = math.ceil(shots / count)
    else:
        # Both given: their product is what runs (IBM lets it override default shots).
        return RunPlan(count, per, count * per)
    return RunPlan(count, per, shots)


def is_isa(circuit: QuantumCircuit, target: Target | None) -> bool:
    """Whether every instruction of ``circuit`` is supported by ``target`` on its qubits."""
    if target is None:
        return True
    if circuit.num_qubits > target.num_qubits:
        return False
    for instruction in circuit.data:
        name = instruction.operation.name
        if name == "barrier":
            continue
        qargs = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        if not target.instruction_supported(name, qargs):
            return False
    return True


def prepare_circuit(
    circuit: QuantumCircuit,
    backend: Any,
    options: PrimitiveOptions,
    *,
    decouple: bool = True,
    content: Hashable | None = None,
) -> QuantumCircuit:
    """``circuit`` fitted to ``backend``: ISA circuits unchanged, others transpiled.

    With ``decouple`` and dynamical decoupling enabled, idle windows of
    device-like backends (those whose target knows gate durations) are padded.
    ``content`` is the circuit's ``circuit_key`` when the caller has it: then whether
    the circuit is ISA for this backend is kept, not checked again by the next job.
    """
    target = getattr(backend, "target", None)
    prepared = circuit
    isa = cached_preparation(
        "primitives.is_isa", content, lambda: is_isa(circuit, target), backend=backend
    )
    if not isa:
        # Cached by content: a session's repeated circuits are transpiled once.
        (prepared,) = cached_transpile(
            [circuit],
            backend,
            optimization_level=options.optimization_level,
            qubits_initially_zero=options.execution.init_qubits,
        )
    if decouple and options.dynamical_decoupling.enable:
        prepared = decouple_idle_windows(prepared, target, options)
    return prepared


def decouple_idle_windows(
    circuit: QuantumCircuit, target: Target | None, options: PrimitiveOptions
) -> QuantumCircuit:
    """Insert dynamical decoupling sequences with qiskit's ``PadDynamicalDecoupling``.

    Backends without gate durations (ideal simulators) are left alone. Only the
    qubits the circuit uses get sequences, and the delays padded onto unused
    qubits are dropped again, so Aer can still leave those qubits out.
    """
    if target is None or target.dt is None or not _has_durations(target):
        return circuit
    settings = options.dynamical_decoupling
    active = _active_qubits(circuit)
    # XpXm and XY4 equal X X up to global phases and Z frames; the basis has only X.
    sequence = [XGate(), XGate()] if settings.sequence_type != "XY4" else [XGate()] * 4
    scheduler = (
        ALAPScheduleAnalysis(target=target)
        if settings.scheduling_method == "alap"
        else ASAPScheduleAnalysis(target=target)
    )
    manager = PassManager(
        [
            scheduler,
            PadDynamicalDecoupling(
                target=target,
                dd_sequence=sequence,
                qubits=sorted(active),
                skip_reset_qubits=settings.skip_reset_qubits,
                extra_slack_distribution=settings.extra_slack_distribution,
            ),
        ]
    )
    padded: QuantumCircuit = manager.run(circuit)
    return _drop_idle_delays(padded, active)


def twirl_measurements(
    circuit: QuantumCircuit, rng: np.random.Generator
) -> tuple[QuantumCircuit, _BoolArray]:
    """A copy of ``circuit`` with X before a random half of its final measurements.

    Returns the copy and the clbits whose values must be flipped back.
    """
    final = final_measurement_mapping(circuit)
    flip_qubits = {q for q in final if rng.random() < 0.5}
    flips = np.zeros(circuit.num_clbits, dtype=bool)
    for qubit in flip_qubits:
        flips[final[qubit]] = True
    twirled = circuit.copy_empty_like()
    pending = set(flip_qubits)
    # Walk backwards to find each flipped qubit's final measurement, then rebuild in order.
    final_index: dict[int, int] = {}
    for index in range(len(circuit.data) - 1, -1, -1):
        instruction = circuit.data[index]
        if instruction.operation.name == "measure":
            qubit = circuit.find_bit(instruction.qubits[0]).index
            if qubit in pending and qubit not in final_index:
                final_index[qubit] = index
    before = {i: q for q, i in final_index.items()}
    for index, instruction in enumerate(circuit.data):
        if index in before:
            twirled.x(before[index])
        twirled.append(instruction, copy=False)
    return twirled, flips


def run_batch(
    backend: Any,
    circuits: Sequence[QuantumCircuit],
    values: np.ndarray[Any, Any],
    *,
    shots: int,
    options: PrimitiveOptions,
    seed: int | None,
    memory: bool,
) -> list[list[Any]]:
    """Run ``circuits`` (all with the same parameters) at every row of ``values``.

    Returns ``out[c][b]``: a bool array (shots, clbits) with ``memory``, else
    the counts dict (int outcome -> count) of circuit ``c`` at binding ``b``.
    """
    # Wide circuits on a noisy device: each on the simulation method that fits it.
    chosen = sample_chosen(backend, circuits, values, shots=shots, seed=seed, memory=memory)
    if chosen is not None:
        return chosen
    num_bindings = len(values)
    parameters = list(circuits[0].parameters) if circuits else []
    run_options: dict[str, Any] = {"shots": shots, "memory": memory}
    if seed is not None:
        run_options["seed_simulator"] = seed
    if _has_option(backend, "init_qubits"):
        run_options["init_qubits"] = options.execution.init_qubits
    noise_model = options.simulator.get("noise_model")
    if noise_model is not None and _has_option(backend, "noise_model"):
        run_options["noise_model"] = noise_model
    run_options.update(few_qubit_run_options(backend, circuits, run_options))
    if parameters:
        columns = {p: values[:, j].tolist() for j, p in enumerate(parameters)}
        run_options["parameter_binds"] = [columns] * len(circuits)
        experiments = list(circuits)
    else:
        # No parameters: each binding is the same circuit, run once per binding.
        experiments = [c for c in circuits for _ in range(num_bindings)]
    result = backend.run(experiments, **run_options).result()
    if not result.success:
        raise RuntimeError(f"the backend {getattr(backend, 'name', '')} failed: {result.status}")
    out: list[list[Any]] = []
    for c, circuit in enumerate(circuits):
        row: list[Any] = []
        for b in range(num_bindings):
            data = result.results[c * num_bindings + b].data
            if memory:
                row.append(_memory_bits(data.memory, circuit.num_clbits))
            else:
                row.append({int(k, 16): int(v) for k, v in data.counts.items()})
        out.append(row)
    return out


# --- private ------------------------------------------------------------------------------


def _width(backend: Any) -> int | None:
    width = getattr(backend, "num_qubits", None)
    return int(width) if width is not None else None


def _has_option(backend: Any, name: str) -> bool:
    return hasattr(backend, "options") and hasattr(backend.options, name)


def seed_stream(seed: int | None) -> np.random.Generator | None:
    return None if seed is None else np.random.default_rng(seed)


def next_seed(seeds: np.random.Generator | None) -> int | None:
    """A fresh seed per backend call: reusing one seed would correlate their noise."""
    return None if seeds is None else int(seeds.integers(0, 2**31 - 1))


def flat_values(array: np.ndarray[Any, Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Parameter values as rows (one per binding), ``shape`` flattened in C order."""
    count = math.prod(shape)
    return np.asarray(array, dtype=float).reshape(count, -1)


def twirl_gates(
    circuit: QuantumCircuit, count: int, backend: Any, rng: np.random.Generator
) -> list[QuantumCircuit]:
    target = getattr(backend, "target", None)
    seed = int(rng.integers(0, 2**31 - 1))
    try:
        twirled = pauli_twirl_2q_gates(circuit, seed=seed, num_twirls=count, target=target)
    except Exception as exc:  # qiskit raises TranspilerError for gates it cannot twirl
        raise InputValueError(f"cannot twirl the gates of {circuit.name!r}: {exc}") from exc
    return list(twirled) if isinstance(twirled, list) else [twirled]


def _memory_bits(memory: Sequence[str], num_clbits: int) -> _BoolArray:
    if num_clbits <= 63:
        # Each distinct outcome parsed once: a few outcomes repeat over many shots.
        table = {h: int(h, 16) for h in set(memory)}
        ints = np.array([table[h] for h in memory], dtype=np.uint64)
        shifts = np.arange(num_clbits, dtype=np.uint64)
        return ((ints[:, None] >> shifts) & np.uint64(1)).astype(bool)
    rows = [format(int(h, 16), f"0{num_clbits}b")[::-1] for h in memory]
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool).reshape(
        len(memory), num_clbits
    )


def _has_durations(target: Target) -> bool:
    for name in target.operation_names:
        properties: Mapping[Any, Any] | None = target.get(name)
        for props in (properties or {}).values():
            if props is not None and props.duration:
                return True
    return False


def _active_qubits(circuit: QuantumCircuit) -> set[int]:
    active: set[int] = set()
    for instruction in circuit.data:
        if instruction.operation.name in ("barrier", "delay"):
            continue
        active.update(circuit.find_bit(q).index for q in instruction.qubits)
    return active


def _drop_idle_delays(circuit: QuantumCircuit, active: set[int]) -> QuantumCircuit:
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        if isinstance(instruction.operation, Delay) and not all(
            circuit.find_bit(q).index in active for q in instruction.qubits
        ):
            continue
        out.append(instruction)
    return out
