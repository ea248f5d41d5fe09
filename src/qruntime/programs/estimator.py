"""The built-in ``estimator`` program: Qiskit's V2 Estimator, run on the job's backend.

For each PUB the circuit is fitted to the backend and the observables are laid
out on the physical qubits. Then one of two paths (``metadata["simulation"]``):

- ``"exact"`` (``exact_estimation.py``), on an ideal Aer simulator without
  zero-noise extrapolation: like Qiskit's ``StatevectorEstimator`` and Aer's
  ``EstimatorV2``, one Aer run per PUB saves the expectation value of every Pauli
  term at every parameter set, and
  Gaussian noise of the requested precision is added (``stds`` = precision; none at
  precision 0, which only in-process ``EstimatorPub`` objects can ask for).
  ``default_shots`` sets the precision to ``1 / sqrt(default_shots)``. Circuits with
  mid-circuit measurements, resets or control flow, and the extended stabilizer
  method, are sampled.
- ``"sampled"``, on noisy backends: the Pauli terms are grouped into
  qubit-wise-commuting sets; each set is measured in its basis with
  ``ceil(1 / precision**2)`` shots (or ``default_shots``) per parameter set, so
  mitigation works on real shot data.

What each PUB's circuit needs before it runs (measurements removed, expectation
values to save, measurement circuits) is kept by content in the worker's cache
(``cache.cached_preparation``): a session's repeated circuits are prepared once.

Resilience (IBM's levels): 0 none; 1 readout-error mitigation (calibrated
per backend and qubit by ``programs/mitigation.py``, measurements twirled so
the readout error is symmetric); 2 adds zero-noise extrapolation (``zne.py``:
the transpiled circuit is folded, not the original) with 2-qubit gates twirled.

Mitigated readout needs no quasi-distribution: with independent per-qubit
assignment matrices ``A_q``, a Pauli's mitigated value on one shot is the
product over its qubits of ``f_q(bit)``, where ``f_q(b) = sum_b' (-1)^b'
A_q^-1[b', b]``, so evs and stds come straight from the counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.primitives.containers import DataBin, EstimatorPub, PrimitiveResult, PubResult
from qiskit.quantum_info import PauliList

from qruntime.errors import InputValueError
from qruntime.primitives.options import PrimitiveOptions
from qruntime.primitives.pubs import check_width, parse_inputs, validate_inputs
from qruntime.programs.cache import cached_preparation, circuit_key, decoded_key
from qruntime.programs.exact_estimation import (
    computes_exactly,
    exact_expectation_values,
    is_noisy,
)
from qruntime.programs.layer_mitigation import (
    Randomizer,
    plan_layer_mitigation,
    uses_layer_noise,
)
from qruntime.programs.method_choice import check_simulable, describe_simulation
from qruntime.programs.mitigation import cached_readout_calibration
from qruntime.programs.sampler import (
    decouple_idle_windows,
    flat_values,
    next_seed,
    prepare_circuit,
    run_batch,
    twirl_gates,
    twirl_measurements,
    twirl_plan,
)
from qruntime.programs.zne import extrapolate, fold_circuit, translate_to_target

__all__ = ["METADATA", "main", "validate"]

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]

METADATA: dict[str, Any] = {
    "name": "estimator",
    "description": "Qiskit's V2 Estimator primitive: expectation values of observables.",
    "max_execution_time": 3600,
    "spec": {
        "backend_requirements": {"min_num_qubits": 1},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "pubs": {
                    "description": "Estimator PUBs: [circuit, observables, values, precision].",
                    "type": "array",
                },
                "options": {"description": "EstimatorOptions, as a dict.", "type": "object"},
                "version": {"description": "Primitive version: 2.", "type": "integer"},
                "support_qiskit": {"description": "Ignored: always true.", "type": "boolean"},
                "resilience_level": {
                    "description": "0 none, 1 readout mitigation, 2 readout + ZNE.",
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 2,
                },
            },
            "required": ["pubs"],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "A PrimitiveResult of PubResult (runtime-encoded).",
            "type": "object",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "None: the estimator publishes no interim results.",
            "type": "null",
        },
    },
}

_UNMITIGATED = np.array([1.0, -1.0])  # f(bit) of a plain Z measurement


def validate(inputs: dict[str, Any], *, num_qubits: int, backend_kind: str | None = None) -> None:
    """Check an estimator job's inputs at submission; raises ``InputValueError``.

    On a noisy device (``backend_kind="device"``) circuits no simulation method can run
    here are refused (``method_choice.check_simulable``).
    """
    validate_inputs("estimator", inputs, num_qubits=num_qubits)
    if backend_kind == "device":
        check_simulable(parse_inputs("estimator", inputs).pubs)


def main(backend: Any, user_messenger: Any, **kwargs: Any) -> PrimitiveResult[PubResult]:
    """Estimate the PUBs' expectation values on ``backend``."""
    del user_messenger  # no interim results
    started = time.perf_counter()
    parsed = parse_inputs("estimator", kwargs)
    options = parsed.options
    check_width(parsed.pubs, num_qubits=getattr(backend, "num_qubits", None))
    seed = options.seed_simulator
    context = _Context(
        backend=backend,
        options=options,
        seeds=None if seed is None else np.random.default_rng(seed),
        rng=np.random.default_rng(
            options.seed_estimator if options.seed_estimator is not None else seed
        ),
    )
    results = []
    for pub in parsed.pubs:
        assert isinstance(pub, EstimatorPub)
        results.append(_run_pub(pub, context))
    metadata = {
        "version": 2,
        "options": options.to_dict(),
        "timing": {"total_seconds": time.perf_counter() - started},
    }
    return PrimitiveResult(results, metadata=metadata)


@dataclass
class _Context:
    backend: Any
    options: PrimitiveOptions
    seeds: np.random.Generator | None
    rng: np.random.Generator


@dataclass(frozen=True)
class _Group:
    """Qubit-wise commuting Paulis measured together: which qubits, in which basis."""

    qubits: list[int]
    bases: list[str]
    # For each Pauli of the group: its label and the positions (in ``qubits``) it acts on.
    members: list[tuple[str, list[int]]]


def _run_pub(pub: EstimatorPub, ctx: _Context) -> PubResult:
    options = ctx.options
    given = decoded_key(pub.circuit)  # None: nothing derived from it is cached
    prepared = prepare_circuit(pub.circuit, ctx.backend, options, decouple=False, content=given)
    observables = pub.observables
    # An observable already on the device's qubits (with an ISA circuit) is used as given.
    if prepared.layout is not None and observables.num_qubits != prepared.num_qubits:
        observables = observables.apply_layout(prepared.layout, prepared.num_qubits)
    key = given if prepared is pub.circuit else circuit_key(prepared)
    base = cached_preparation(
        "estimator.unmeasured", key, lambda: prepared.remove_final_measurements(inplace=False)
    )

    terms = [observables[index] for index in np.ndindex(observables.shape)]
    labels = sorted({label for term in terms for label in term if set(label) != {"I"}})
    precision = float(pub.precision if pub.precision is not None else options.default_precision)
    values = flat_values(pub.parameter_values.as_array(base.parameters), pub.parameter_values.shape)
    # Tables indexed (parameter set, observable) are broadcast to the PUB's shape by these.
    param_index = np.arange(len(values)).reshape(pub.parameter_values.shape)
    obs_index = np.arange(len(terms)).reshape(observables.shape)
    p_idx = np.broadcast_to(param_index, pub.shape)
    o_idx = np.broadcast_to(obs_index, pub.shape)
    metadata: dict[str, Any] = {
        "target_precision": precision,
        "shots": options.default_shots or (math.ceil(1 / precision**2) if precision > 0 else 0),
        "circuit_metadata": dict(pub.circuit.metadata or {}),
        "num_randomizations": 1,
    }
    if computes_exactly(ctx.backend, options, base):
        # IBM: default_shots, when set, overrides the precision.
        noise = 1 / math.sqrt(options.default_shots) if options.default_shots else precision
        content = _with_labels(key, labels)
        table = exact_expectation_values(base, content, terms, labels, values, ctx.backend)
        exact = table[p_idx, o_idx]
        if noise > 0:
            exact = ctx.rng.normal(exact, noise)
        stds = np.full(pub.shape, noise)
        metadata["simulation"] = "exact"
        data = DataBin(
            shape=pub.shape,
            evs=np.asarray(exact, dtype=float),
            stds=stds,
            ensemble_standard_error=stds.copy(),
        )
        return PubResult(data, metadata=metadata)
    if metadata["shots"] == 0:
        raise InputValueError(
            "precision 0 (exact values) needs an ideal simulator without zero-noise "
            f"extrapolation; {getattr(ctx.backend, 'name', 'this backend')} samples"
        )

    groups = cached_preparation("estimator.groups", tuple(labels), lambda: _group(labels))
    layer_mitigation = None
    if uses_layer_noise(options):  # PEA or PEC: the layers' noise, given or learned
        layer_mitigation = plan_layer_mitigation(
            base, ctx.backend, options, shots=metadata["shots"], seed=next_seed(ctx.seeds)
        )
        metadata["resilience"] = {"layer_noise": layer_mitigation.report}
    plan = (
        layer_mitigation.plan
        if layer_mitigation is not None
        else twirl_plan(metadata["shots"], options.twirling)
    )
    measured = sorted({q for g in groups for q in g.qubits})
    readout = _readout_functions(ctx, measured)
    target = getattr(ctx.backend, "target", None)

    zne = options.resilience.zne
    factors = zne.noise_factors if options.resilience.zne_mitigation else (1.0,)
    evs_f, vars_f, ens_f, reached = [], [], [], []
    for factor in factors:
        if zne.amplifier == "pea":
            folded, factor_reached = base, factor  # PEA amplifies in each randomization
        else:
            folded, factor_reached = fold_circuit(
                base,
                factor,
                amplifier=zne.amplifier,
                target=target,
                seed=int(ctx.rng.integers(0, 2**31 - 1)),
            )
        reached.append(factor_reached)
        if options.dynamical_decoupling.enable:
            folded = decouple_idle_windows(folded, target, options)
        if folded is base:  # neither folded nor decoupled: the same circuits every job
            circuits = cached_preparation(
                "estimator.measured",
                _with_labels(key, labels),
                lambda: _measurement_circuits(base, groups, target),
                backend=ctx.backend,
            )
        else:
            circuits = _measurement_circuits(folded, groups, target)
        randomize = layer_mitigation.randomizer(factor, ctx.rng) if layer_mitigation else None
        ev, var, ens = _estimate(circuits, groups, terms, values, plan, readout, ctx, randomize)
        evs_f.append(ev)
        vars_f.append(var)
        ens_f.append(ens)

    evs_nf = np.stack([t[p_idx, o_idx] for t in evs_f], axis=-1)
    stds_nf = np.sqrt(np.stack([t[p_idx, o_idx] for t in vars_f], axis=-1))
    ens_nf = np.sqrt(np.stack([t[p_idx, o_idx] for t in ens_f], axis=-1))

    metadata["shots"] = plan.total_shots
    metadata["num_randomizations"] = plan.num_randomizations
    metadata["simulation"] = "sampled"
    simulator = describe_simulation(ctx.backend, base)
    if simulator is not None:
        metadata["simulator"] = simulator
    fields: dict[str, Any]
    if not options.resilience.zne_mitigation:
        fields = {
            "evs": evs_nf[..., 0],
            "stds": stds_nf[..., 0],
            "ensemble_standard_error": ens_nf[..., 0],
        }
    else:
        norms = np.array([sum(abs(c) for c in term.values()) for term in terms])
        fit = extrapolate(
            reached,
            evs_nf,
            stds_nf,
            zne.extrapolator,
            evaluate_at=zne.extrapolated_noise_factors,
            bound=norms[o_idx],
        )
        # The ensemble error of the extrapolated value scales like its std.
        scale = np.divide(
            ens_nf.mean(axis=-1),
            stds_nf.mean(axis=-1),
            out=np.ones(pub.shape),
            where=stds_nf.mean(axis=-1) > 0,
        )
        fields = {
            "evs": fit.evs,
            "stds": fit.stds,
            "ensemble_standard_error": fit.stds * scale,
            "evs_noise_factors": evs_nf,
            "stds_noise_factors": stds_nf,
            "ensemble_stds_noise_factors": ens_nf,
            "evs_extrapolated": fit.evs_extrapolated,
            "stds_extrapolated": fit.stds_extrapolated,
        }
        metadata.setdefault("resilience", {})["zne"] = {
            "noise_factors": list(reached),
            "extrapolator": fit.chosen.tolist(),
            "extrapolated_noise_factors": list(zne.extrapolated_noise_factors or (0.0, *reached)),
        }
    return PubResult(DataBin(shape=pub.shape, **fields), metadata=metadata)


def _group(labels: Sequence[str]) -> list[_Group]:
    if not labels:
        return []
    groups = []
    for paulis in PauliList(list(labels)).group_qubit_wise_commuting():
        members_labels = [p.to_label() for p in paulis]
        width = len(members_labels[0])
        # Label position -1-q is qubit q.
        bases = {
            q: label[width - 1 - q]
            for label in members_labels
            for q in range(width)
            if label[width - 1 - q] != "I"
        }
        qubits = sorted(bases)
        position = {q: j for j, q in enumerate(qubits)}
        members = [
            (label, [position[q] for q in range(width) if label[width - 1 - q] != "I"])
            for label in members_labels
        ]
        groups.append(_Group(qubits, [bases[q] for q in qubits], members))
    return groups


def _with_labels(key: Hashable | None, labels: list[str]) -> Hashable | None:
    """The cached content of a circuit with content ``key`` and these Paulis."""
    return None if key is None else (key, tuple(labels))


def _measurement_circuits(
    circuit: QuantumCircuit, groups: list[_Group], target: Any
) -> list[QuantumCircuit]:
    """One copy of ``circuit`` per group, measuring it in the group's basis."""
    # The circuit is already physical: translate the basis change, never re-transpile.
    return [translate_to_target(_measurement_circuit(circuit, group), target) for group in groups]


def _measurement_circuit(circuit: QuantumCircuit, group: _Group) -> QuantumCircuit:
    measured = circuit.copy()
    register = ClassicalRegister(len(group.qubits), "estimator_meas")
    measured.add_register(register)
    for qubit, basis in zip(group.qubits, group.bases, strict=True):
        if basis == "X":
            measured.h(qubit)
        elif basis == "Y":
            measured.sdg(qubit)
            measured.h(qubit)
    measured.measure(group.qubits, register)
    return measured


def _estimate(
    measurement_circuits: list[QuantumCircuit],
    groups: list[_Group],
    terms: list[dict[str, float]],
    values: np.ndarray[Any, Any],
    plan: Any,
    readout: dict[int, _FloatArray],
    ctx: _Context,
    randomize: Randomizer | None = None,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]:
    """Tables (parameter set, observable) of evs, variances and ensemble variances.

    ``measurement_circuits`` holds one circuit per group; they are never changed.
    ``randomize`` (PEA, PEC) makes the randomizations and weighs each one's values.
    """
    num_bindings, num_terms = len(values), len(terms)
    evs = np.zeros((num_bindings, num_terms))
    for o, term in enumerate(terms):
        evs[:, o] = sum(c.real for label, c in term.items() if set(label) == {"I"})
    variances = np.zeros_like(evs)
    ensemble = np.zeros_like(evs)
    if not groups:
        return evs, variances, ensemble
    options = ctx.options
    circuits: list[QuantumCircuit] = []
    flips: list[int] = []
    owners: list[int] = []
    run_weights: list[float] = []  # what each circuit's values count for (PEC: signed)
    for g, (group, measured) in enumerate(zip(groups, measurement_circuits, strict=True)):
        variants = [measured] * plan.num_randomizations
        scales = np.ones(plan.num_randomizations)
        if randomize is not None:
            variants, scales = randomize(measured, plan.num_randomizations)
        elif options.twirling.enable_gates:
            variants = twirl_gates(measured, plan.num_randomizations, ctx.backend, ctx.rng)
        run_weights.extend(float(w) for w in scales)
        offset = measured.num_clbits - len(group.qubits)
        for variant in variants:
            mask = 0
            if options.twirling.enable_measure:
                variant, flipped = twirl_measurements(variant, ctx.rng)
                mask = sum(1 << int(i) for i in np.flatnonzero(flipped))
            circuits.append(variant)
            flips.append(mask >> offset)
            owners.append(g)
    counts = run_batch(
        ctx.backend,
        circuits,
        values,
        shots=plan.shots_per_randomization,
        options=options,
        seed=next_seed(ctx.seeds),
        memory=False,
    )
    for g, group in enumerate(groups):
        functions = np.stack([readout.get(q, _UNMITIGATED) for q in group.qubits])
        coefficients = np.array(
            [[term.get(label, 0.0).real for label, _ in group.members] for term in terms]
        )
        offset = circuits[owners.index(g)].num_clbits - len(group.qubits)
        runs = [c for c, owner in enumerate(owners) if owner == g]
        for b in range(num_bindings):
            means, second = [], []
            total = 0
            for c in runs:
                outcomes = np.array(list(counts[c][b]), dtype=np.int64)
                weights = np.array(list(counts[c][b].values()), dtype=float)
                local = (outcomes >> offset) ^ flips[c]
                bits = (local[:, None] >> np.arange(len(group.qubits))) & 1
                factors = functions[np.arange(len(group.qubits)), bits]  # (outcomes, qubits)
                paulis = np.stack(
                    [np.prod(factors[:, pos], axis=1) for _, pos in group.members], axis=1
                )
                per_shot = paulis @ coefficients.T * run_weights[c]  # (outcomes, observables)
                shots = weights.sum()
                means.append(weights @ per_shot / shots)
                second.append(weights @ per_shot**2 / shots)
                total += shots
            mean_r = np.array(means)
            mean = mean_r.mean(axis=0)
            spread = np.array(second).mean(axis=0) - mean**2
            evs[b] += mean
            variances[b] += np.maximum(spread, 0.0) * total / max(total - 1, 1) / total
            if len(runs) > 1:
                ensemble[b] += mean_r.var(axis=0, ddof=1) / len(runs)
            else:
                ensemble[b] += np.maximum(spread, 0.0) / max(total - 1, 1)
    return evs, variances, ensemble


def _readout_functions(ctx: _Context, qubits: list[int]) -> dict[int, _FloatArray]:
    """``f_q`` per measured qubit: the mitigated value of reading 0 or 1 on it."""
    options = ctx.options
    if not (options.resilience.measure_mitigation and qubits and is_noisy(ctx.backend, options)):
        return {}
    calibration = cached_readout_calibration(
        ctx.backend, qubits, seed_simulator=next_seed(ctx.seeds)
    )
    functions: dict[int, _FloatArray] = {}
    for qubit in qubits:
        matrix = calibration.assignment_matrix(qubit)
        if options.twirling.enable_measure:
            # Twirled readout flips symmetrically: average the two error rates.
            error = (matrix[1, 0] + matrix[0, 1]) / 2
            matrix = np.array([[1 - error, error], [error, 1 - error]])
        try:
            inverse = np.linalg.inv(matrix)
        except np.linalg.LinAlgError:
            inverse = np.linalg.pinv(matrix)
        functions[qubit] = _UNMITIGATED @ inverse
    return functions
