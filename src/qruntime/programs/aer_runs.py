"""Parameterised circuits converted to Aer's native form once, run with new values each job.

``AerSimulator.run`` converts its circuits to Aer's own circuit objects on every call
(``assemble_circuits``: about 0.55 ms for a 4-qubit ansatz with seven saved Paulis,
where the simulation itself takes about 0.1 ms), then hands the work to a thread and
builds a qiskit ``Result``. A session's loop sends the same circuit with new
parameter values each time, so the worker keeps the converted circuit (by content, in
``cache.cached_preparation``) and per job converts only the values: 1.4 ms -> 0.25 ms
per call measured on that ansatz.

Only parameterised circuits are kept: Aer then runs a copy of the kept circuit per
parameter set and leaves the kept one as it was; a circuit without parameters would
itself be run, and Aer may rewrite a circuit it runs. Only an ideal simulator
(``AerSimulator`` without a noise model or a device target) qualifies: then the
conversion depends on the circuit alone, never on the backend's options.

A circuit that is not kept (the sampler's, drawn from its probabilities) runs the same
steps once with :func:`run_once`: that saves the thread hop and the ``Result``.

Aer has no public call for this: :class:`AssembledCircuit` calls the steps of
``AerBackend._execute_circuits_job`` in its order, and finds where the parameters sit
in the converted circuit once, as ``AerBackend._convert_circuit_binds`` does on each
run. :func:`assemble` returns None when an Aer version lacks one of those steps, and
the caller uses ``backend.run`` (tests check that both give the same values).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterExpression

__all__ = ["AssembledCircuit", "assemble", "run_once"]

# Aer's own steps that the kept circuits are run with.
_BACKEND_STEPS = ("_compile", "_execute_circuits", "options")


class AssembledCircuit:
    """``circuit`` converted for ``backend`` once; :meth:`run` binds values and runs it."""

    def __init__(self, backend: Any, circuit: QuantumCircuit) -> None:
        from qiskit_aer.backends.aer_compiler import assemble_circuits

        compiled, noise_model = backend._compile([circuit])
        if noise_model is not None:  # the circuit carried noise: not an ideal run
            raise ValueError("the circuit carries quantum errors")
        aer_circuits, index_maps = assemble_circuits(compiled)
        for number, aer_circuit in enumerate(aer_circuits):
            aer_circuit.circ_id = number
        self._backend = backend
        self._compiled = compiled
        self._aer_circuits = aer_circuits
        self._slots = _parameter_slots(compiled[0], index_maps[0] if index_maps else None)
        # What the LRU cache of prepared circuits counts (see cache._weight).
        self.cache_weight = len(circuit.data) + 1

    def run(
        self, columns: Mapping[Parameter, Sequence[float]], run_options: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The saved data of each parameter set, in order: ``columns`` holds each parameter's
        values (one per set), ``run_options`` are ``backend.run``'s keyword options."""
        from qiskit_aer.backends.aer_compiler import generate_aer_config

        options = dict(run_options)
        # Aer seeds each converted circuit once: without a seed given (here or on the
        # backend), draw one per run as backend.run's fresh conversion would.
        if (
            options.get("seed_simulator") is None
            and getattr(self._backend.options, "seed_simulator", None) is None
        ):
            options["seed_simulator"] = random.getrandbits(31)
        options["parameterizations"] = [self._parameterization(columns)]
        config = generate_aer_config(self._compiled, self._backend.options, **options)
        output = self._backend._execute_circuits(self._aer_circuits, None, config)
        if not isinstance(output, dict) or not output.get("success", False):
            status = output.get("status") if isinstance(output, dict) else output
            raise RuntimeError(f"the backend {self._backend.name} failed: {status}")
        return [result["data"] for result in output["results"]]

    def _parameterization(self, columns: Mapping[Parameter, Sequence[float]]) -> list[list[Any]]:
        """Aer's table of the values of each parameterised slot, one value per set."""
        count = len(next(iter(columns.values()))) if columns else 0
        table: list[list[Any]] = []
        for position, value in self._slots:
            if isinstance(value, Parameter):
                table.append([position, list(columns[value])])
            else:  # an expression of parameters: evaluated per set, as Aer does
                names = value.parameters
                table.append(
                    [
                        position,
                        [
                            float(value.bind({p: columns[p][i] for p in names}))
                            for i in range(count)
                        ],
                    ]
                )
        return table


def _parameter_slots(
    circuit: QuantumCircuit, index_map: Sequence[int] | None
) -> list[tuple[tuple[int, int], ParameterExpression]]:
    """Where ``circuit``'s parameters sit in its Aer form: (instruction, argument) and what.

    As ``AerBackend._convert_circuit_binds`` finds them, once instead of on every run;
    the global phase has Aer's own position.
    """
    from qiskit_aer.backends.controller_wrappers import AerConfig

    slots: list[tuple[tuple[int, int], ParameterExpression]] = []
    phase = circuit.global_phase
    if isinstance(phase, ParameterExpression) and phase.parameters:
        slots.append(((AerConfig.GLOBAL_PHASE_POS, -1), phase))
    for index, instruction in enumerate(circuit.data):
        operation = instruction.operation
        if not operation.is_parameterized():
            continue
        for argument, value in enumerate(operation.params):
            if isinstance(value, ParameterExpression) and value.parameters:
                position = index_map[index] if index_map else index
                slots.append(((position, argument), value))
    return slots


def assemble(backend: Any, circuit: QuantumCircuit) -> AssembledCircuit | None:
    """``circuit`` kept in Aer's form for ``backend``; None where that does not apply.

    None for a circuit without parameters, a backend that is not an ideal Aer
    simulator, or an Aer without the steps this relies on: run with ``backend.run``.
    """
    if not circuit.parameters or not _ideal_aer(backend):
        return None
    try:
        return AssembledCircuit(backend, circuit)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def run_once(
    backend: Any, circuit: QuantumCircuit, run_options: Mapping[str, Any]
) -> list[dict[str, Any]] | None:
    """The saved data of ``circuit`` run once on ``backend``, as ``backend.run`` gives it.

    For a circuit that is not kept: the same steps as :class:`AssembledCircuit`, on this
    thread (``backend.run`` hands each run to a thread of its own and builds a qiskit
    ``Result``). None where that does not apply (a circuit with parameters, a backend
    that is not an ideal Aer simulator, an Aer without these steps): use ``backend.run``.
    """
    if circuit.parameters or not _ideal_aer(backend):
        return None
    try:
        from qiskit_aer.backends.aer_compiler import assemble_circuits, generate_aer_config

        compiled, noise_model = backend._compile([circuit])
        if noise_model is not None:  # the circuit carried noise: not an ideal run
            return None
        aer_circuits, _ = assemble_circuits(compiled)
        for number, aer_circuit in enumerate(aer_circuits):
            aer_circuit.circ_id = number
        config = generate_aer_config(compiled, backend.options, **run_options)
        output = backend._execute_circuits(aer_circuits, None, config)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    if not isinstance(output, dict) or not output.get("success", False):
        status = output.get("status") if isinstance(output, dict) else output
        raise RuntimeError(f"the backend {backend.name} failed: {status}")
    return [result["data"] for result in output["results"]]


def _ideal_aer(backend: Any) -> bool:
    try:
        from qiskit_aer import AerSimulator
    except ImportError:
        return False
    if not isinstance(backend, AerSimulator) or not all(
        hasattr(backend, step) for step in _BACKEND_STEPS
    ):
        return False
    # A simulator built from a device converts circuits to the device's basis gates.
    if getattr(backend, "_target", None) is not None:
        return False
    return getattr(backend.options, "noise_model", None) is None
