"""The built-in ``hello-world`` program: a few small circuits, one interim result each.

Each iteration runs an entangling circuit with a seeded random rotation (the
angles differ between iterations, and are the same in every job) and publishes
``{"iteration": i, "counts": {...}}``; the final result is a message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from qruntime.errors import InputValueError
from qruntime.programs.circuit_runner import cached_pass_manager

__all__ = ["FINAL_MESSAGE", "METADATA", "main"]

FINAL_MESSAGE = "All done!"
_SHOTS = 1024
_SEED = 2021

METADATA: dict[str, Any] = {
    "name": "hello-world",
    "description": "A sample runtime program: runs small circuits and publishes their counts.",
    "max_execution_time": 300,
    "spec": {
        "backend_requirements": {"min_num_qubits": 2},
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "iterations": {
                    "description": "How many iterations to run; each publishes one interim result.",
                    "type": "integer",
                    "minimum": 0,
                    "default": 1,
                },
            },
            "required": [],
        },
        "return_values": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "A final message once every iteration has run.",
            "type": "string",
        },
        "interim_results": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "The counts of one iteration.",
            "type": "object",
            "properties": {
                "iteration": {"description": "Iteration number, from 0.", "type": "integer"},
                "counts": {
                    "description": "Counts of the iteration's circuit, by bit string.",
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                },
            },
            "required": ["iteration", "counts"],
        },
    },
}


def main(backend: Any, user_messenger: Any, iterations: int = 1, **kwargs: Any) -> str:
    """Run ``iterations`` small circuits on ``backend``, publishing each one's counts."""
    if kwargs:
        raise InputValueError(f"unknown parameter(s) for hello-world: {', '.join(sorted(kwargs))}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise InputValueError(f"iterations must be an integer >= 0, not {iterations!r}")
    # The same options as circuit-runner's defaults, so both share one cached manager.
    manager = cached_pass_manager(backend, optimization_level=1, qubits_initially_zero=True)
    rng = np.random.default_rng(_SEED)
    for iteration in range(iterations):
        circuit = _circuit(float(rng.uniform(0, np.pi)), iteration)
        result = backend.run(manager.run(circuit), shots=_SHOTS).result()
        user_messenger.publish({"iteration": iteration, "counts": result.get_counts()})
    return FINAL_MESSAGE


def _circuit(angle: float, iteration: int) -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2, name=f"hello_world_{iteration}")
    circuit.ry(angle, 0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit
