"""Which simulation runs a circuit on a noisy device, chosen per circuit by its shape.

Simulated whole with the device's noise, an X gate on each of 27 qubits is a 27-qubit
statevector per shot: minutes and gigabytes for what is 27 one-qubit problems. So each
circuit (after transpilation, on the device's qubits) gets the first of these that fits:

1. ``automatic``: its largest part (qubits joined by multi-qubit gates or a shared
   classical bit) has at most :data:`EXACT_QUBITS` qubits and so does the whole circuit:
   Aer's own choice (density matrix or statevector) with the device's noise, as before.
2. ``separable``: every part has at most :data:`EXACT_QUBITS` qubits: each part runs on
   its own simulator (``separable.py``) and the bits of each shot are put side by side.
   Exact, since the device's errors act on the qubits of one operation only.
3. ``stabilizer``: a Clifford circuit (``rz``, ``rx``, ``ry`` at multiples of pi/2
   count): Aer's stabilizer method with the device's noise Pauli-twirled
   (``backends/pauli_noise.py``); hundreds of qubits.
4. ``matrix_product_state``: a circuit whose entanglement across every cut of the qubit
   line is bounded by at most :data:`MPS_BOND_BITS` bits (2**bits bond dimension),
   counting the two-qubit gates that cross it: the device's noise Pauli-twirled too
   (Aer 0.18's matrix product states stall on some draws of the device's Kraus noise).
5. ``statevector``: up to :func:`max_dense_qubits` qubits (a quarter of this machine's
   memory) and :data:`MAX_WORK` amplitude updates: the device's noise, shot by shot.

Anything else is refused with the reason, at submission (:func:`check_simulable`) when
the untranspiled circuit already shows it, else when the job runs. Each PUB's metadata
says what ran: ``{"method": ..., "noise": "device" | "pauli-twirled", "qubits": k}``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression

from qruntime.backends.compact import DeviceRunner, compact_circuit, compact_simulator
from qruntime.backends.pauli_noise import NOISE_LABEL, pauli_simulator
from qruntime.errors import InputValueError
from qruntime.programs.separable import independent_parts, sample_bits

__all__ = [
    "EXACT_QUBITS",
    "MAX_WORK",
    "MPS_BOND_BITS",
    "Simulation",
    "check_simulable",
    "choose_simulation",
    "describe_simulation",
    "is_clifford",
    "max_dense_qubits",
    "sample_chosen",
]

#: Parts up to this many qubits run with the device's noise on Aer's own method choice.
EXACT_QUBITS = 10
#: Matrix product states are used up to a bond dimension of 2**MPS_BOND_BITS.
MPS_BOND_BITS = 6
#: Shots x operations x 2**qubits above which a noisy statevector run is refused.
MAX_WORK = 2e12
# More than this is never simulated as a statevector, whatever the memory.
_DENSE_CAP = 30

_BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
_HALF_PI = math.pi / 2
_CLIFFORD = frozenset(
    {"id", "x", "y", "z", "h", "s", "sdg", "sx", "sxdg", "cx", "cy", "cz", "swap", "ecr"}
)
_ROTATIONS = frozenset({"rz", "p", "u1", "rx", "ry"})
_STRUCTURE = frozenset({"measure", "reset", "barrier", "delay"})
# Two-qubit gates of operator Schmidt rank 2 (one bit of bond across a cut); others: 2.
_RANK_TWO = frozenset({"cx", "cy", "cz", "ecr", "rzz", "rzx", "cp", "crx", "cry", "crz", "cs"})
# A Clifford rotation by k * pi/2, as gates Aer's stabilizer method has (applied in order).
_AS_CLIFFORD = {
    "rz": ((), ("s",), ("z",), ("sdg",)),
    "p": ((), ("s",), ("z",), ("sdg",)),
    "u1": ((), ("s",), ("z",), ("sdg",)),
    "rx": ((), ("sx",), ("x",), ("sxdg",)),
    "ry": ((), ("z", "h"), ("y",), ("h", "z")),
}


@dataclass(frozen=True)
class Simulation:
    """What simulates one circuit: the method, the noise it carries, the qubits it holds."""

    method: str
    noise: str
    qubits: int

    def as_metadata(self) -> dict[str, Any]:
        return {"method": self.method, "noise": self.noise, "qubits": self.qubits}


def max_dense_qubits() -> int:
    """The widest statevector (16 bytes per amplitude) that fits in a quarter of memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        memory = 16 * 2**30
    return min(_DENSE_CAP, int(math.log2(max(memory, 2**10) / 4 / 16)))


def is_clifford(circuit: QuantumCircuit) -> bool:
    """Whether every operation is a Clifford gate (rotations by multiples of pi/2 count)."""
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        if name in _CLIFFORD or name in _STRUCTURE:
            continue
        if name not in _ROTATIONS or _quarter_turns(operation.params[0]) is None:
            return False
    return True


def bond_bits(circuit: QuantumCircuit, qubits: Sequence[int]) -> int:
    """An upper bound on log2 of the bond dimension a matrix product state of ``circuit``
    needs, its qubits in the order of ``qubits``: the two-qubit gates crossing each cut."""
    position = {q: i for i, q in enumerate(qubits)}
    crossings = np.zeros(max(len(qubits) - 1, 0), dtype=np.int64)
    for instruction in circuit.data:
        if len(instruction.qubits) < 2 or instruction.operation.name in ("barrier", "measure"):
            continue
        places = sorted(position[circuit.find_bit(q).index] for q in instruction.qubits)
        weight = 1 if instruction.operation.name in _RANK_TWO else 2 * (len(places) - 1)
        crossings[places[0] : places[-1]] += weight
    if not len(crossings):
        return 0
    sides = np.minimum(np.arange(1, len(qubits)), np.arange(len(qubits) - 1, 0, -1))
    return int(np.max(np.minimum(crossings, sides)))


def choose_simulation(circuit: QuantumCircuit, *, shots: int = 1) -> Simulation:
    """The simulation of ``circuit`` with a device's noise (see the module docstring).

    Raises ``InputValueError`` with the reason when no method can run it here.
    """
    active = sorted(_active_qubits(circuit))
    width = len(active)
    parts = independent_parts(circuit)
    largest = max((len(p) for p in parts), default=0) if parts is not None else width
    if width <= EXACT_QUBITS:
        return Simulation("automatic", "device", width)
    if largest <= EXACT_QUBITS:
        return Simulation("separable", "device", width)
    if is_clifford(circuit):
        return Simulation("stabilizer", NOISE_LABEL, width)
    bits = bond_bits(circuit, active)
    if bits <= MPS_BOND_BITS:
        return Simulation("matrix_product_state", NOISE_LABEL, width)
    dense = max_dense_qubits()
    work = float(max(shots, 1)) * max(len(circuit.data), 1) * 2.0**largest
    if largest <= dense and work <= MAX_WORK:
        return Simulation("statevector", "device", width)
    raise InputValueError(
        f"the circuit entangles {largest} qubits with non-Clifford gates (up to {bits} bits "
        f"of entanglement across a cut): too much for a matrix product state (at most "
        f"{MPS_BOND_BITS}), and a noisy statevector of {largest} qubits for {shots} shots "
        f"is beyond this server (at most {dense} qubits and {MAX_WORK:.0e} amplitude "
        "updates); use fewer qubits, Clifford gates, or less entanglement"
    )


def check_simulable(pubs: Sequence[Any]) -> None:
    """Refuse, before a job queues, PUBs whose circuit no method could simulate noisily."""
    for index, pub in enumerate(pubs):
        shots = getattr(pub, "shots", None) or 1
        precision = getattr(pub, "precision", None)
        if precision:
            shots = math.ceil(1 / precision**2)
        try:
            choose_simulation(pub.circuit, shots=int(shots))
        except InputValueError as exc:
            raise InputValueError(f"pubs[{index}]: {exc}") from None


def describe_simulation(backend: Any, circuit: QuantumCircuit) -> dict[str, Any] | None:
    """What simulates ``circuit`` on ``backend``, for a PUB's metadata (None: not known)."""
    if isinstance(backend, DeviceRunner) and backend.entry.spec.kind == "device":
        try:
            return choose_simulation(circuit).as_metadata()
        except InputValueError:
            return None
    options = getattr(backend, "options", None)
    method = getattr(options, "method", None)
    if method is None:
        return None
    noisy = getattr(options, "noise_model", None) is not None
    return {"method": method, "noise": "custom" if noisy else "none", "qubits": circuit.num_qubits}


def sample_chosen(
    backend: Any,
    circuits: Sequence[QuantumCircuit],
    values: np.ndarray[Any, Any],
    *,
    shots: int,
    seed: int | None,
    memory: bool,
) -> list[list[Any]] | None:
    """``sampler.run_batch``'s result, each circuit on its chosen simulation.

    None when ``backend`` is not a noisy device or every circuit is small enough for
    the ordinary run. ``out[c][b]`` is a bool array (shots, clbits) with ``memory``,
    else a counts dict (int outcome -> count), of circuit ``c`` at row ``b`` of values.
    """
    if not isinstance(backend, DeviceRunner) or backend.entry.spec.kind != "device":
        return None
    if all(len(_active_qubits(c)) <= EXACT_QUBITS for c in circuits):
        return None
    rng = np.random.default_rng(seed)
    out: list[list[Any]] = []
    for circuit in circuits:
        rows = _sample_circuit(backend, circuit, values, shots=shots, rng=rng)
        out.append([r if memory else _counts(r) for r in rows])
    return out


# --- private ----------------------------------------------------------------------------------


def _sample_circuit(
    backend: DeviceRunner,
    circuit: QuantumCircuit,
    values: np.ndarray[Any, Any],
    *,
    shots: int,
    rng: np.random.Generator,
) -> list[_BoolArray]:
    count = len(values)
    if circuit.parameters:
        bound = [circuit.assign_parameters(row.tolist()) for row in values]
    else:
        bound = [circuit]
    choice = choose_simulation(bound[0], shots=shots)
    if choice.method == "stabilizer":
        # Values may make some rows non-Clifford: then all rows run on the next method.
        other = next((b for b in bound[1:] if not is_clifford(b)), None)
        if other is not None:
            choice = choose_simulation(other, shots=shots)
    if choice.method in ("automatic", "separable"):
        bits = sample_bits(backend, circuit, values, shots=shots, rng=rng)
        return [bits[b] for b in range(count)]
    compacts = [compact_circuit(b) for b in bound]
    qubits = compacts[0][1]
    options: dict[str, Any] = {"method": choice.method}
    if choice.method == "stabilizer":
        simulator = pauli_simulator(backend.entry, qubits)
        experiments = [_as_stabilizer_circuit(small) for small, _ in compacts]
    elif choice.method == "matrix_product_state":
        simulator = pauli_simulator(backend.entry, qubits)
        experiments = [small for small, _ in compacts]
    else:
        simulator = compact_simulator(backend.entry, qubits)
        experiments = [small for small, _ in compacts]
    # A circuit without parameters runs once with all the shots, dealt out per row.
    total = shots if circuit.parameters else shots * count
    result = simulator.run(
        experiments,
        shots=total,
        memory=True,
        seed_simulator=int(rng.integers(0, 2**31 - 1)),
        **options,
    ).result()
    if not result.success:
        raise RuntimeError(f"the {choice.method} simulation failed: {result.status}")
    drawn = [_memory_bits(r.data.memory, circuit.num_clbits) for r in result.results]
    if circuit.parameters:
        return drawn
    return [drawn[0][b * shots : (b + 1) * shots] for b in range(count)]


def _as_stabilizer_circuit(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with each Clifford rotation written as the named gates it equals."""
    if not any(i.operation.name in _AS_CLIFFORD for i in circuit.data):
        return circuit
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name not in _AS_CLIFFORD:
            out.append(instruction, copy=False)
            continue
        turns = _quarter_turns(operation.params[0])
        assert turns is not None  # is_clifford checked it
        for gate in _AS_CLIFFORD[operation.name][turns]:
            getattr(out, gate)(instruction.qubits[0])
    return out


def _quarter_turns(angle: Any) -> int | None:
    """``k mod 4`` for an angle of ``k * pi/2``; None for any other (or unbound) angle."""
    if isinstance(angle, ParameterExpression):
        if angle.parameters:
            return None
        angle = float(angle)
    turns = float(angle) / _HALF_PI
    nearest = round(turns)
    return int(nearest) % 4 if abs(turns - nearest) < 1e-9 else None


def _active_qubits(circuit: QuantumCircuit) -> set[int]:
    return {
        circuit.find_bit(q).index
        for instruction in circuit.data
        if instruction.operation.name not in ("barrier", "delay")
        for q in instruction.qubits
    }


def _memory_bits(memory: Sequence[str], num_clbits: int) -> _BoolArray:
    """Aer's hex memory as bools ``(shots, num_clbits)``, clbit 0 first."""
    table: dict[str, _BoolArray] = {}
    for text in set(memory):
        value = int(text, 16)
        table[text] = np.array([(value >> i) & 1 for i in range(num_clbits)], dtype=bool)
    if not memory:
        return np.zeros((0, num_clbits), dtype=bool)
    return np.stack([table[text] for text in memory])


def _counts(bits: _BoolArray) -> dict[int, int]:
    """Counts keyed by the integer whose bit ``i`` is clbit ``i``."""
    counts: dict[int, int] = {}
    if bits.shape[0] == 0:
        return counts
    rows, frequency = np.unique(bits, axis=0, return_counts=True)
    for row, number in zip(rows, frequency, strict=True):
        key = sum(1 << int(i) for i in np.flatnonzero(row))
        counts[key] = counts.get(key, 0) + int(number)
    return counts
