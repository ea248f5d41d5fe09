"""Sampling a circuit in independent parts: qubits that never interact are simulated apart.

The executor's circuits come from the client's primitives: its estimator measures every
qubit of the device (the readout twirl and the TREX calibration), so a Bell pair on a
27-qubit device is a 27-qubit circuit. Simulated whole, with the device's noise, that is a
27-qubit statevector per shot; it did not finish in minutes. Yet 25 of those qubits only
take single-qubit gates and a measurement.

Qubits that no multi-qubit operation and no classical bit connects evolve
independently whenever the noise is local: each error acts only on the qubits of the
operation it follows (or of the qubit it reads out). That holds for a device-like
backend, whose noise model Aer builds from the device's gate and readout errors, and
for an ideal simulator. Then the joint distribution of the bits is the product of each
part's distribution, so sampling each part separately and putting the bits of one shot
side by side is exact, not an approximation. Any other backend (a simulator with a noise
model of its own, which may correlate qubits) runs the circuit whole.

Small parts are packed together, up to :data:`PACK_QUBITS` qubits per run: Aer's cost
per experiment dominates for one or two qubits, and on a few noisy qubits Aer evolves a
density matrix once and samples every shot from it. A part wider than that runs alone.
All parameter sets of a part run in one backend call with ``parameter_binds``.

Usage::

    bits = sample_bits(backend, circuit, rows, shots=128, rng=rng)   # (len(rows), 128, clbits)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp

from qruntime.backends.compact import DeviceRunner
from qruntime.programs.circuit_runner import few_qubit_run_options

__all__ = ["PACK_QUBITS", "independent_parts", "pack_parts", "restrict", "sample_bits"]

#: Parts are packed into runs of at most this many qubits (a part wider than this runs alone).
PACK_QUBITS = 4

# Operations that act on no qubit's state: they neither join nor activate qubits.
_PASSIVE = frozenset({"barrier", "delay"})

_BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def independent_parts(circuit: QuantumCircuit) -> list[tuple[int, ...]] | None:
    """The qubits of ``circuit`` in groups that evolve independently, or None.

    Two qubits are in one group when a multi-qubit operation acts on both (directly or
    through others), or when their measurements write the same classical bit. Qubits
    with only barriers and delays are in no group. None when classical data flows
    between operations (control flow, or an instruction other than a measurement that
    touches classical bits): then the circuit runs whole.
    """
    parent = list(range(circuit.num_qubits))

    def root(qubit: int) -> int:
        while parent[qubit] != qubit:
            parent[qubit] = parent[parent[qubit]]
            qubit = parent[qubit]
        return qubit

    writer: dict[int, int] = {}  # clbit -> a qubit measured into it
    active: set[int] = set()
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            return None
        if operation.name in _PASSIVE:
            continue
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if not qubits:
            return None  # a classical instruction, or one this split does not know
        if instruction.clbits and operation.name != "measure":
            return None
        active.update(qubits)
        for qubit in qubits[1:]:
            parent[root(qubit)] = root(qubits[0])
        for clbit in instruction.clbits:
            index = circuit.find_bit(clbit).index
            earlier = writer.setdefault(index, qubits[0])
            parent[root(earlier)] = root(qubits[0])
    groups: dict[int, list[int]] = {}
    for qubit in sorted(active):
        groups.setdefault(root(qubit), []).append(qubit)
    return sorted((tuple(g) for g in groups.values()), key=lambda g: g[0])


def pack_parts(parts: Sequence[tuple[int, ...]], width: int = PACK_QUBITS) -> list[tuple[int, ...]]:
    """``parts`` joined in order into runs of at most ``width`` qubits each.

    Taken in order, the same circuit structure always packs into the same qubit
    sets, whose simulators the backend keeps. A part wider than ``width`` stays alone.
    """
    runs: list[list[int]] = []
    current: list[int] = []
    for part in parts:
        if current and len(current) + len(part) > width:
            runs.append(current)
            current = []
        current.extend(part)
    if current:
        runs.append(current)
    return [tuple(sorted(run)) for run in runs]


def restrict(circuit: QuantumCircuit, qubits: Sequence[int]) -> QuantumCircuit:
    """``circuit`` with only the operations on ``qubits`` (barriers narrowed to them).

    Qubits, classical bits and registers are all kept, so the bits come back at their
    own positions; the other qubits are left idle for the simulator to drop. ``qubits``
    must be a union of :func:`independent_parts`, so no operation crosses its edge.
    """
    keep = {int(q) for q in qubits}
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        inside = [q for q in instruction.qubits if circuit.find_bit(q).index in keep]
        if not inside:
            continue
        if len(inside) < len(instruction.qubits):
            if instruction.operation.name != "barrier":
                raise ValueError(f"{instruction.operation.name} crosses the qubits {sorted(keep)}")
            out.barrier(*inside, label=instruction.operation.label)
            continue
        out.append(instruction, copy=False)
    return out


def sample_bits(
    backend: Any,
    circuit: QuantumCircuit,
    rows: np.ndarray[Any, Any],
    *,
    shots: int,
    rng: np.random.Generator | None = None,
) -> _BoolArray:
    """Bits ``(len(rows), shots, circuit.num_clbits)`` of ``circuit`` at each row of values.

    ``rows`` holds one value per parameter of ``circuit`` (in ``circuit.parameters``
    order) for each parameter set. With ``rng``, the simulator's seeds are drawn from it
    (a seeded ``rng`` repeats the bits); without, Aer seeds itself.
    """
    count = len(rows)
    bits = np.zeros((count, shots, circuit.num_clbits), dtype=bool)
    if count == 0 or circuit.num_clbits == 0:
        return bits
    parts = independent_parts(circuit) if _noise_is_local(backend) else None
    runs = pack_parts(parts) if parts is not None else None
    if runs is None or len(runs) <= 1:
        pieces = [circuit]
    else:
        pieces = [restrict(circuit, run) for run in runs]
    position = {parameter: j for j, parameter in enumerate(circuit.parameters)}
    swept = [p for p in pieces if p.num_parameters]
    fixed = [p for p in pieces if not p.num_parameters]
    if swept:
        binds = [
            {parameter: rows[:, position[parameter]].tolist() for parameter in piece.parameters}
            for piece in swept
        ]
        result = _run(backend, swept, shots=shots, rng=rng, parameter_binds=binds)
        for index, piece in enumerate(swept):
            columns = _written_clbits(piece)
            for b in range(count):
                memory = result.results[index * count + b].data.memory
                bits[b][:, columns] = _memory_bits(memory, piece.num_clbits)[:, columns]
    if fixed:
        # The same circuit at every parameter set: one run of all the shots, dealt out.
        result = _run(backend, fixed, shots=shots * count, rng=rng)
        for index, piece in enumerate(fixed):
            columns = _written_clbits(piece)
            drawn = _memory_bits(result.results[index].data.memory, piece.num_clbits)
            bits[:, :, columns] = drawn[:, columns].reshape(count, shots, len(columns))
    return bits


# --- private ----------------------------------------------------------------------------------


def _noise_is_local(backend: Any) -> bool:
    """Whether every error of ``backend`` acts only on the qubits of one operation."""
    if isinstance(backend, DeviceRunner):
        return True  # Aer's NoiseModel.from_backend of the device: gate and readout errors
    try:
        from qiskit_aer import AerSimulator
    except ImportError:  # pragma: no cover - Aer is a dependency
        return False
    return isinstance(backend, AerSimulator) and backend.options.noise_model is None


def _run(
    backend: Any,
    circuits: list[QuantumCircuit],
    *,
    shots: int,
    rng: np.random.Generator | None,
    **options: Any,
) -> Any:
    if rng is not None:
        # One seed per call: two calls with one seed would draw correlated noise.
        options["seed_simulator"] = int(rng.integers(0, 2**31 - 1))
    # An ideal Aer simulator runs small circuits faster on one thread (a device-like
    # backend's per-qubit-set simulators are set up that way already).
    options.update(few_qubit_run_options(backend, circuits, options))
    result = backend.run(circuits, shots=shots, memory=True, **options).result()
    if not result.success:
        raise RuntimeError(f"the backend {getattr(backend, 'name', '')} failed: {result.status}")
    return result


def _written_clbits(circuit: QuantumCircuit) -> list[int]:
    written = {
        circuit.find_bit(clbit).index
        for instruction in circuit.data
        if instruction.operation.name == "measure"
        for clbit in instruction.clbits
    }
    return sorted(written)


def _memory_bits(memory: Sequence[str], num_clbits: int) -> _BoolArray:
    """Aer's hex memory as bools ``(shots, num_clbits)``, clbit 0 first."""
    if num_clbits <= 63:
        ints = np.fromiter((int(h, 16) for h in memory), dtype=np.uint64, count=len(memory))
        shifts = np.arange(num_clbits, dtype=np.uint64)
        return ((ints[:, None] >> shifts) & np.uint64(1)).astype(bool)
    out = np.zeros((len(memory), num_clbits), dtype=bool)
    for shot, text in enumerate(memory):
        value = int(text, 16)
        for clbit in range(num_clbits):
            out[shot, clbit] = (value >> clbit) & 1
    return out
