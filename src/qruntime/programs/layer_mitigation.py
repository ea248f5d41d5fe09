"""PEA and PEC for the built-in ``estimator``: learned layer noise, amplified or cancelled.

Both start from a Pauli-Lindblad model of each layer of two-qubit gates: the
``layer_noise_model`` the job gives, or one learned on the job's backend with the
noise learner (``noise_learner.learn_layer``, cached in the worker by layer, learning
options and seed, so a session learns each layer once). Layers the model lacks are
left alone, as IBM's service leaves them.

Each twirling randomization of a circuit then gets Pauli errors drawn from the model
right after each of its layers (``pauli_lindblad.sample_flips``):

- PEA (``zne.amplifier = "pea"``) at noise factor ``g`` adds ``(g - 1)`` times each
  rate: the circuit runs with its noise amplified ``g`` times, without longer circuits;
  zero-noise extrapolation then works on those values.
- PEC adds ``(noise_gain - 1)`` times each rate, a negative amount: the inverse
  channel as a quasi-probability. Each randomization's values are weighted by
  ``gamma`` times its sign; ``gamma ** 2`` (the sampling overhead) multiplies the shots.
  ``noise_gain`` "auto" is 0 (everything cancelled) unless the overhead would pass
  ``pec.max_overhead``; then it is the least gain that keeps to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from qruntime.errors import InputValueError
from qruntime.layer_noise import LayerError, NoiseLearnerResult
from qruntime.primitives.options import PrimitiveOptions
from qruntime.programs.cache import cached_preparation
from qruntime.programs.layers import Layer, LayeredCircuit, layered_circuit
from qruntime.programs.noise_learner import LearningOptions, learn_layer, ranked_layers
from qruntime.programs.pauli_lindblad import sample_flips
from qruntime.programs.sampler import RunPlan, twirl_gates
from qruntime.programs.zne import translate_to_target

__all__ = [
    "LayerMitigation",
    "LayerNoise",
    "Randomizer",
    "layer_noise_for",
    "plan_layer_mitigation",
    "uses_layer_noise",
]

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]
#: ``(circuit, count) -> (randomized circuits, weight of each)``, as ``_estimate`` calls it.
Randomizer = Callable[[QuantumCircuit, int], tuple[list[QuantumCircuit], _FloatArray]]
# Shots per randomization when twirling is "auto": the injected errors vary between
# randomizations, so many small ones estimate their mean better than a few large ones.
_SHOTS_PER_RANDOMIZATION = 32
# PEC's sampling overhead (the factor on the shots) that qruntime runs at most.
_MAX_OVERHEAD = 1e6
_Gates = tuple[tuple[str, tuple[int, int]], ...]


def uses_layer_noise(options: PrimitiveOptions) -> bool:
    """Whether the job's options ask for PEA or PEC."""
    resilience = options.resilience
    pea = resilience.zne_mitigation and resilience.zne.amplifier == "pea"
    return bool(resilience.pec_mitigation or pea)


@dataclass(frozen=True)
class _Model:
    """One layer's channel on physical qubits: Pauli codes per generator, and rates."""

    qubits: tuple[int, ...]
    codes: np.ndarray[Any, np.dtype[np.int64]]  # (generators, qubits), x + 2 z
    rates: _FloatArray


class LayerNoise:
    """The noise of a circuit's layers, and how to randomize the circuit with it."""

    def __init__(
        self, errors: Sequence[LayerError], *, strategy: str, backend: Any, learned: bool
    ) -> None:
        self.strategy = strategy
        self.learned = learned
        self._backend = backend
        self._models: dict[_Gates, list[_Model]] = {}
        for error in errors:
            if error.error is None:
                continue
            key = _gates_of(error)
            generators = error.error.generators
            codes = generators.x.astype(np.int64) + 2 * generators.z.astype(np.int64)
            model = _Model(tuple(error.qubits), codes, np.maximum(error.error.rates, 0.0))
            self._models.setdefault(key, []).append(model)
        self._layered: dict[int, tuple[QuantumCircuit, LayeredCircuit, list[_Model | None]]] = {}

    def total_rate(self, circuit: QuantumCircuit) -> float:
        """The sum of the rates of every mitigated layer of ``circuit``, each time it occurs."""
        _, _, models = self._layers(circuit)
        return float(sum(m.rates.sum() for m in models if m is not None))

    def report(self, circuit: QuantumCircuit) -> dict[str, Any]:
        """What a PUB's metadata says of the layers (IBM's ``resilience.layer_noise``)."""
        _, _, models = self._layers(circuit)
        unique: dict[int, _Model] = {id(m): m for m in models if m is not None}
        return {
            "noise_overhead": math.exp(4 * self.total_rate(circuit)),
            "total_mitigated_layers": sum(m is not None for m in models),
            "unique_mitigated_layers": len(unique),
            "unique_mitigated_layers_noise_overhead": [
                math.exp(4 * float(m.rates.sum())) for m in unique.values()
            ],
            "total_unmitigated_layers": sum(m is None for m in models),
            "learned": self.learned,
        }

    def randomizer(self, scale: float, rng: np.random.Generator) -> Randomizer:
        """Randomizations with ``scale`` times each layer's rates added (< 0: cancelled)."""

        def randomize(circuit: QuantumCircuit, count: int) -> tuple[list[QuantumCircuit], Any]:
            return self._randomize(circuit, count, scale, rng)

        return randomize

    def _layers(
        self, circuit: QuantumCircuit
    ) -> tuple[QuantumCircuit, LayeredCircuit, list[_Model | None]]:
        known = self._layered.get(id(circuit))
        if known is None or known[0] is not circuit:
            layered = layered_circuit(circuit, self.strategy)
            models = [self._match(layer.gates, layer.qubits) for layer in layered.layers]
            known = self._layered[id(circuit)] = (circuit, layered, models)
        return known

    def _match(self, gates: _Gates, qubits: tuple[int, ...]) -> _Model | None:
        candidates = self._models.get(tuple(sorted(gates)))
        if not candidates:
            return None
        return next((m for m in candidates if m.qubits == qubits), candidates[0])

    def _randomize(
        self, circuit: QuantumCircuit, count: int, scale: float, rng: np.random.Generator
    ) -> tuple[list[QuantumCircuit], _FloatArray]:
        _, layered, models = self._layers(circuit)
        present = [(k, m) for k, m in enumerate(models) if m is not None]
        amounts = np.concatenate([m.rates for _, m in present]) * scale if present else np.zeros(0)
        flips, gamma = sample_flips(amounts, rng, count)
        removed = flips[:, amounts < 0].sum(axis=1)
        weights = gamma * np.where(removed % 2 == 1, -1.0, 1.0)
        plain = [i for i in range(count) if not flips[i].any()]
        twirled = iter(twirl_gates(circuit, len(plain), self._backend, rng) if plain else [])
        target = getattr(self._backend, "target", None)
        variants: list[QuantumCircuit] = []
        for i in range(count):
            if not flips[i].any():
                variants.append(next(twirled))
                continue
            paulis: dict[int, dict[int, int]] = {}  # layer -> physical qubit -> Pauli code
            offset = 0
            for k, model in present:
                chosen = flips[i, offset : offset + len(model.rates)]
                offset += len(model.rates)
                if chosen.any():
                    product = np.bitwise_xor.reduce(model.codes[chosen], axis=0)
                    paulis[k] = {q: int(c) for q, c in zip(model.qubits, product, strict=True) if c}
            noisy = translate_to_target(_with_paulis(layered, paulis), target)
            variants.extend(twirl_gates(noisy, 1, self._backend, rng))
        return variants, weights


def layer_noise_for(
    circuit: QuantumCircuit, backend: Any, options: PrimitiveOptions, *, seed: int | None
) -> LayerNoise:
    """The layer noise PEA / PEC use for ``circuit``: given in the options, or learned."""
    strategy = options.twirling.strategy
    given = options.resilience.layer_noise_model
    if given is not None:
        errors = list(given.data if isinstance(given, NoiseLearnerResult) else given)
        _check_given(errors, circuit.num_qubits)
        return LayerNoise(errors, strategy=strategy, backend=backend, learned=False)
    learning = options.resilience.layer_noise_learning
    learn = LearningOptions(
        max_layers_to_learn=learning.max_layers_to_learn,
        shots_per_randomization=learning.shots_per_randomization,
        num_randomizations=learning.num_randomizations,
        layer_pair_depths=learning.layer_pair_depths,
        twirling_strategy=strategy,
    )
    ranked, operations = ranked_layers([circuit], strategy, backend)
    chosen = ranked[: learn.max_layers_to_learn]
    noise_model = options.simulator.get("noise_model")
    if noise_model is not None:
        # A noise model of the job's own: learned each time, never shared with other jobs.
        errors = [
            learn_layer(
                backend,
                layer,
                operations,
                learn,
                rng=np.random.default_rng(seed),
                noise_model=noise_model,
            )
            for layer in chosen
        ]
    else:

        def learned(layer: Layer) -> LayerError:
            return learn_layer(backend, layer, operations, learn, rng=np.random.default_rng(seed))

        errors = [
            cached_preparation(
                "noise_learner.layer",
                (layer, learn, seed),
                partial(learned, layer),
                backend=backend,
            )
            for layer in chosen
        ]
    return LayerNoise(errors, strategy=strategy, backend=backend, learned=True)


@dataclass(frozen=True)
class LayerMitigation:
    """PEA or PEC for one PUB: its run plan, its randomizers, what its metadata reports."""

    noise: LayerNoise
    plan: RunPlan
    pec_scale: float | None  # PEC: the amount of each rate added (-1: all cancelled)
    report: dict[str, Any]

    def randomizer(self, factor: float, rng: np.random.Generator) -> Randomizer:
        """PEC's randomizer, or PEA's at noise ``factor``."""
        scale = self.pec_scale if self.pec_scale is not None else factor - 1.0
        return self.noise.randomizer(scale, rng)


def plan_layer_mitigation(
    circuit: QuantumCircuit,
    backend: Any,
    options: PrimitiveOptions,
    *,
    shots: int,
    seed: int | None,
) -> LayerMitigation:
    """Get the layer noise of ``circuit`` (given or learned) and plan PEA or PEC with it."""
    noise = layer_noise_for(circuit, backend, options, seed=seed)
    report = noise.report(circuit)
    pec_scale = None
    overhead = 1.0
    if options.resilience.pec_mitigation:
        total = noise.total_rate(circuit)
        gain = _pec_gain(options, total)
        pec_scale = gain - 1.0
        exponent = 4 * max(0.0, -pec_scale) * total
        if exponent > math.log(_MAX_OVERHEAD):
            raise InputValueError(
                f"PEC of this PUB needs a sampling overhead of exp({exponent:.3g}); qruntime "
                f"runs at most {_MAX_OVERHEAD:g}: raise resilience.pec.noise_gain or set "
                "pec.max_overhead"
            )
        overhead = math.exp(exponent)
        report.update({"noise_gain": gain, "sampling_overhead": overhead})
    count, per = _shots_plan(shots, options, overhead)
    return LayerMitigation(noise, RunPlan(count, per, count * per), pec_scale, report)


def _check_given(errors: Sequence[LayerError], num_qubits: int) -> None:
    """Refuse a given model the circuit cannot use: qubits off the device, bad rates."""
    for index, error in enumerate(errors):
        where = f"options.resilience.layer_noise_model[{index}]"
        qubits = error.qubits
        if len(set(qubits)) != len(qubits) or any(not 0 <= q < num_qubits for q in qubits):
            raise InputValueError(
                f"{where} acts on qubits {qubits}: they must be distinct qubits of the "
                f"{num_qubits}-qubit circuits"
            )
        if error.error is not None and not np.all(np.isfinite(error.error.rates)):
            raise InputValueError(f"{where} has rates that are not finite numbers")


def _pec_gain(options: PrimitiveOptions, total_rate: float) -> float:
    """``noise_gain``, or for "auto" the least gain in [0, 1] within ``max_overhead``."""
    pec = options.resilience.pec
    if pec.noise_gain is not None:
        return float(pec.noise_gain)
    if pec.max_overhead is None or total_rate <= 0:
        return 0.0
    # The sampling overhead is gamma ** 2 = exp(4 (1 - gain) total_rate).
    return max(0.0, 1.0 - math.log(max(pec.max_overhead, 1.0)) / (4 * total_rate))


def _shots_plan(shots: int, options: PrimitiveOptions, overhead: float) -> tuple[int, int]:
    """``(randomizations, shots each)``: ``shots`` times the sampling overhead in all."""
    twirling = options.twirling
    total = math.ceil(shots * max(overhead, 1.0))
    count, per = twirling.num_randomizations, twirling.shots_per_randomization
    if count is not None and per is not None:
        return count, per
    if count is not None:
        return count, math.ceil(total / count)
    per = per or _SHOTS_PER_RANDOMIZATION
    return max(1, math.ceil(total / per)), per


def _gates_of(error: LayerError) -> _Gates:
    circuit = error.circuit
    gates = []
    for instruction in circuit.data:
        if len(instruction.qubits) == 2 and instruction.operation.name != "barrier":
            a, b = (error.qubits[circuit.find_bit(q).index] for q in instruction.qubits)
            gates.append((instruction.operation.name, (a, b)))
    return tuple(sorted(gates))


def _with_paulis(layered: LayeredCircuit, paulis: dict[int, dict[int, int]]) -> QuantumCircuit:
    """The circuit in stage order with the given Paulis right after their layers."""
    source = layered.circuit
    out = source.copy_empty_like()
    for index in layered.items():
        if index >= 0:
            out.append(source.data[index])
            continue
        for qubit, code in paulis.get(-1 - index, {}).items():
            if code & 2:  # a Z part (Z or Y)
                out.rz(math.pi, qubit)
            if code & 1:  # an X part (X or Y)
                out.x(qubit)
    return out
