"""A device's noise, Pauli-twirled, on Aer's stabilizer method: wide Clifford circuits.

A noisy statevector of 100 qubits cannot be held, but a stabilizer tableau of 100
qubits is a few kilobytes, and Aer samples Pauli errors on it shot by shot. The
device's gate errors (depolarizing composed with thermal relaxation, as
``NoiseModel.from_backend`` makes them) are not Pauli channels: relaxation is
amplitude damping. Their Pauli twirl is: averaging a channel ``E`` over conjugation by
every Pauli ``P`` keeps only the diagonal of its Pauli transfer matrix, the Pauli
channel with probabilities ``p_P = sum_i |Tr(P K_i)|**2 / d**2`` for Kraus operators
``K_i`` of ``E`` on ``d = 2**n`` levels. That is what a device running Pauli-twirled
circuits shows on average, and it keeps each error's fidelity. Readout errors are
classical and stay as they are. The relaxation of ``delay`` instructions is left out
(it would need the twirl of a relaxation per duration).

Usage::

    simulator = pauli_simulator(entry, qubits)      # cached per device and qubit set
    simulator.run(compact_circuit(circuit)[0], shots=100).result()
"""

from __future__ import annotations

import itertools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qruntime.backends.catalogue import BackendEntry, BackendSpec
from qruntime.backends.channels import error_kraus_operators
from qruntime.errors import InputValueError

if TYPE_CHECKING:
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import QuantumError

__all__ = ["NOISE_LABEL", "clear_pauli_cache", "pauli_simulator", "pauli_twirl"]

#: What result metadata calls this approximation of the device's noise.
NOISE_LABEL = "pauli-twirled"

# Pauli probabilities below this are dropped (rounding of the Kraus operators).
_TOLERANCE = 1e-12
_CACHE_SIZE = 64

_lock = threading.Lock()
_simulators: OrderedDict[tuple[BackendSpec, tuple[int, ...]], AerSimulator] = OrderedDict()
# The twirl of each device error object, by its id (the errors live as long as the process).
_twirled: dict[int, tuple[Any, QuantumError | None]] = {}
_PAULI_1Q = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def pauli_probabilities(kraus: Sequence[np.ndarray[Any, Any]]) -> dict[str, float]:
    """The Pauli channel of the twirl of the channel with these Kraus operators.

    Labels are Qiskit's (the rightmost letter acts on qubit 0), as the Kraus matrices'
    ordering is. Probabilities sum to the channel's trace preservation (1).
    """
    dim = kraus[0].shape[0]
    n = dim.bit_length() - 1
    stacked = np.stack(list(kraus))  # (k, d, d)
    out: dict[str, float] = {}
    for letters in itertools.product("IXYZ", repeat=n):
        label = "".join(letters)
        matrix = _PAULI_1Q[label[0]]
        for letter in label[1:]:
            matrix = np.kron(matrix, _PAULI_1Q[letter])
        # Tr(P K_i) for every i at once: sum over the elementwise product with P^T.
        traces = np.einsum("ij,kji->k", matrix, stacked)
        probability = float(np.sum(np.abs(traces) ** 2)) / dim**2
        if probability > _TOLERANCE:
            out[label] = probability
    return out


def pauli_twirl(error: QuantumError) -> QuantumError | None:
    """``error`` as the Pauli error of its twirl; None when that is the identity."""
    from qiskit_aer.noise import pauli_error

    probabilities = pauli_probabilities(error_kraus_operators(error))
    identity = "I" * error.num_qubits
    if set(probabilities) <= {identity}:
        return None
    total = sum(probabilities.values())
    return pauli_error([(label, p / total) for label, p in sorted(probabilities.items())])


def pauli_simulator(entry: BackendEntry, qubits: Sequence[int]) -> AerSimulator:
    """A stabilizer simulator of ``entry``'s physical ``qubits`` with Pauli-twirled noise.

    Its qubit ``i`` is physical qubit ``qubits[i]`` (as in ``compact_simulator``): the
    twirled errors of the device's gates among ``qubits``, and their readout errors.
    Cached per device and qubit set (the 64 most recently used per process).
    """
    if entry.spec.kind != "device":
        raise InputValueError(f"{entry.name} has no device noise to twirl")
    key = (entry.spec, tuple(int(q) for q in qubits))
    with _lock:
        simulator = _simulators.get(key)
        if simulator is not None:
            _simulators.move_to_end(key)
            return simulator
    simulator = _build(entry, key[1])
    with _lock:
        simulator = _simulators.setdefault(key, simulator)
        _simulators.move_to_end(key)
        while len(_simulators) > _CACHE_SIZE:
            _simulators.popitem(last=False)
    return simulator


def clear_pauli_cache() -> None:
    """Forget every Pauli-twirled simulator and error built in this process."""
    with _lock:
        _simulators.clear()
        _twirled.clear()


def _build(entry: BackendEntry, qubits: tuple[int, ...]) -> AerSimulator:
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    # Our own module's internals: the device's errors, each computed once per process.
    from qruntime.backends.compact import _gate_errors, _without_gate_properties, compact_target
    from qruntime.backends.simulator import DeviceBackend

    target = compact_target(entry.target, qubits)
    index = {q: i for i, q in enumerate(qubits)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="qiskit_aer")
        # Readout errors and basis gates only: no gate errors, no relaxation of delays.
        noise = NoiseModel.from_backend(
            DeviceBackend(_without_gate_properties(target), name=entry.name),
            gate_error=False,
            thermal_relaxation=False,
        )
    for name, qargs, error in _gate_errors(entry).local_errors(qubits):
        if error is None:
            continue
        twirled = _twirl_once(error)
        if twirled is not None:
            noise.add_quantum_error(twirled, name, [index[q] for q in qargs])
    simulator = AerSimulator(method="stabilizer", noise_model=noise)
    simulator.name = entry.name
    return simulator


def _twirl_once(error: QuantumError) -> QuantumError | None:
    with _lock:
        known = _twirled.get(id(error))
    if known is not None and known[0] is error:
        return known[1]
    twirled = pauli_twirl(error)
    with _lock:
        _twirled[id(error)] = (error, twirled)  # holding error keeps its id unique
    return twirled
