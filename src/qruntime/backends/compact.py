"""Noisy simulation of device-like backends on only the qubits a circuit touches.

Aer serialises the whole noise model on every ``run()``: a Bell circuit on a 27-qubit
device costs over half a second although simulating it takes about a millisecond. Here
a circuit already transpiled for the device is cut down to the physical qubits it uses,
renumbered ``0..k-1``, and run on a simulator whose noise model covers only those ``k``
qubits. Its errors are those Aer's public ``NoiseModel.from_backend`` derives from the
device's ``Target`` restricted to those qubits, so every gate, readout and relaxation
error is the one the full model has for them. Such simulators are cached per backend
and qubit set; each gate error of a device is computed once per process, when a first
qubit set needs it (the full model of a 133-qubit device takes 5 s to build, a
5-qubit circuit needs a few dozen of its errors).

Usage::

    result = run_compact(entry, transpile(circuits, entry.target))   # a qiskit Result
    backend = DeviceRunner(entry)              # a BackendV2 for runtime programs
    backend.run(transpile(circuit, backend), shots=4000).result()
"""

from __future__ import annotations

import functools
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit.converters import circuit_to_dag, dag_to_circuit
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import PassManager, Target, generate_preset_pass_manager

from qruntime.backends.catalogue import BackendEntry, BackendSpec
from qruntime.backends.channels import kraus_error
from qruntime.backends.simulator import DeviceBackend, build_simulator
from qruntime.errors import InputValueError

if TYPE_CHECKING:
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, QuantumError

__all__ = [
    "CompletedJob",
    "DeviceRunner",
    "clear_compact_cache",
    "compact_circuit",
    "compact_simulator",
    "compact_target",
    "known_gate_errors",
    "run_circuits",
    "run_compact",
]

# Operations that do nothing to a qubit no other operation touches: such a qubit
# starts in |0> and is never read, so it can be left out of the simulation.
_PASSIVE = frozenset({"barrier", "delay"})
_CACHE_SIZE = 256
# Up to this many qubits a compact simulator runs on one thread (see _build_compact).
_SINGLE_THREAD_QUBITS = 10

_lock = threading.Lock()
_simulators: OrderedDict[tuple[BackendSpec, tuple[int, ...]], AerSimulator] = OrderedDict()
_pass_managers: dict[BackendSpec, PassManager] = {}
_entries: dict[BackendSpec, BackendEntry] = {}
_device_errors: dict[BackendSpec, _GateErrors] = {}


# --------------------------------------------------------------------------- circuits


def compact_circuit(
    circuit: QuantumCircuit, qubits: Sequence[int] | None = None
) -> tuple[QuantumCircuit, tuple[int, ...]]:
    """``circuit`` on ``len(qubits)`` qubits, and the qubits of ``circuit`` it keeps, in order.

    Qubit ``qubits[i]`` becomes qubit ``i``; classical bits, registers, name, metadata
    and global phase are unchanged, so counts keys read the same. By default ``qubits``
    are those some operation other than a barrier or a delay acts on; barriers are
    narrowed to them and delays on the other qubits dropped. Given ``qubits`` must
    include those (they are sorted; extra ones stay as idle qubits).
    """
    active = _active_qubits(circuit)
    if qubits is None:
        # A circuit that acts on no qubit still needs one for Aer to run it.
        kept = tuple(sorted(active)) or ((0,) if circuit.num_qubits else ())
    else:
        kept = tuple(sorted({int(q) for q in qubits}))
        if any(not 0 <= q < circuit.num_qubits for q in kept):
            raise InputValueError(
                f"qubits {kept} are not all qubits of a {circuit.num_qubits}-qubit circuit"
            )
        missing = sorted(active - set(kept))
        if missing:
            raise InputValueError(f"qubits {kept} leave out qubits {missing} that the circuit uses")
    if len(kept) == circuit.num_qubits:
        return circuit, kept

    keep = set(kept)
    source = circuit
    if any(
        inst.operation.name in _PASSIVE and not keep.issuperset(_indices(circuit, inst.qubits))
        for inst in circuit.data
    ):
        source = circuit.copy_empty_like()
        for inst in circuit.data:
            name = inst.operation.name
            if name in _PASSIVE:
                inside = [q for q in inst.qubits if circuit.find_bit(q).index in keep]
                if not inside:
                    continue
                if name == "barrier" and len(inside) < len(inst.qubits):
                    source.barrier(*inside, label=inst.operation.label)
                    continue
            source.append(inst.operation, inst.qubits, inst.clbits, copy=False)
    dag = circuit_to_dag(source, copy_operations=False)
    dag.remove_qubits(*[bit for i, bit in enumerate(dag.qubits) if i not in keep])
    return dag_to_circuit(dag, copy_operations=False), kept


def _indices(circuit: QuantumCircuit, bits: Sequence[Any]) -> list[int]:
    return [circuit.find_bit(bit).index for bit in bits]


def _active_qubits(circuit: QuantumCircuit) -> set[int]:
    # A control-flow op lists every qubit its blocks use, so the top level suffices.
    active: set[int] = set()
    for inst in circuit.data:
        if inst.operation.name not in _PASSIVE:
            active.update(_indices(circuit, inst.qubits))
    return active


# --------------------------------------------------------------------------- simulators


def compact_target(target: Target, qubits: Sequence[int]) -> Target:
    """``target`` restricted to ``qubits``, renumbered ``0..k-1`` in the order given.

    Instruction properties (errors, durations, readout asymmetry) and qubit properties
    (T1, T2, frequency) are the full target's own objects, shared, not copied.
    """
    index = {q: i for i, q in enumerate(qubits)}
    sliced = _empty_like(target, qubits)
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        entries = target[name]
        if not entries or None in entries:
            # Global (e.g. control flow, or every gate of an ideal simulator).
            sliced.add_instruction(operation, name=name)
            continue
        properties = {
            tuple(index[q] for q in qargs): props
            for qargs, props in entries.items()
            if qargs is not None and all(q in index for q in qargs)
        }
        if properties:
            sliced.add_instruction(operation, properties, name=name)
    return sliced


def compact_simulator(entry: BackendEntry, qubits: Sequence[int]) -> AerSimulator:
    """A noisy simulator of ``entry``'s physical ``qubits`` only, cached in this process.

    Its qubit ``i`` is physical qubit ``qubits[i]``, with that qubit's errors and the
    errors of the couplings among ``qubits``. The same object is returned while it is
    in the cache (the 256 most recently used qubit sets per process).
    """
    if entry.spec.kind != "device":
        raise InputValueError(f"{entry.name} is an ideal simulator: use build_simulator(entry)")
    key = (entry.spec, tuple(int(q) for q in qubits))
    width = entry.target.num_qubits
    if len(set(key[1])) != len(key[1]) or any(not 0 <= q < width for q in key[1]):
        raise InputValueError(
            f"qubits {key[1]} must be distinct qubits of {entry.name} (0..{width - 1})"
        )
    with _lock:
        simulator = _simulators.get(key)
        if simulator is not None:
            _simulators.move_to_end(key)
            return simulator
    # Built outside the lock: other qubit sets need not wait; a duplicate build is harmless.
    simulator = _build_compact(entry, key[1])
    with _lock:
        simulator = _simulators.setdefault(key, simulator)
        _simulators.move_to_end(key)
        while len(_simulators) > _CACHE_SIZE:
            _simulators.popitem(last=False)
    return simulator


def _build_compact(entry: BackendEntry, qubits: tuple[int, ...]) -> AerSimulator:
    from qiskit_aer import AerSimulator

    target = compact_target(entry.target, qubits)
    device = DeviceBackend(target, name=entry.name, description=entry.spec.description)
    noise = _gate_errors(entry).noise_model(qubits, target)
    noise.__class__ = _serialized_once_class()
    options: dict[str, Any] = {"noise_model": noise, "method": entry.spec.method}
    if len(qubits) <= _SINGLE_THREAD_QUBITS:
        # OpenMP threads cost more than they save on a few qubits: on 2 busy cores a
        # 2-qubit noisy sampling took 7 ms with them and 0.1 ms without.
        options["max_parallel_threads"] = 1
    simulator = AerSimulator.from_backend(device, **options)
    simulator.name = entry.name
    return simulator


class _GateErrors:
    """A device's gate errors, each computed once per process, on first need.

    An error is what ``NoiseModel.from_backend`` makes for that gate on those qubits (a
    depolarizing error composed with thermal relaxation), merged into one Kraus channel
    (Aer re-processes every error on each ``run()``). It depends only on the gate's and
    its qubits' properties, so it is the same in every qubit set that holds them.
    """

    def __init__(self, name: str, target: Target) -> None:
        self.name = name
        self.target = target
        self.errors: dict[tuple[str, tuple[int, ...]], QuantumError | None] = {}
        self._lock = threading.Lock()

    def local_errors(
        self, qubits: tuple[int, ...]
    ) -> list[tuple[str, tuple[int, ...], QuantumError | None]]:
        """(gate, physical qubits, error) of every gate among ``qubits``, computed once."""
        index = set(qubits)
        wanted = [
            (name, qargs)
            for name in self.target.operation_names
            if name != "measure"
            for qargs, props in (self.target[name] or {}).items()
            if qargs is not None and props is not None and all(q in index for q in qargs)
        ]
        with self._lock:
            missing = [key for key in wanted if key not in self.errors]
            if missing:
                self._compute(missing)
            return [(name, qargs, self.errors[(name, qargs)]) for name, qargs in wanted]

    def noise_model(self, qubits: tuple[int, ...], compact: Target) -> NoiseModel:
        """The noise model of ``compact``, the device's target restricted to ``qubits``."""
        from qiskit_aer.noise import NoiseModel

        index = {q: i for i, q in enumerate(qubits)}
        errors = self.local_errors(qubits)
        # Readout errors, basis gates and the relaxation of delays, which are cheap, come
        # from Aer itself, on the target without its gate properties.
        noise = NoiseModel.from_backend(
            DeviceBackend(_without_gate_properties(compact), name=self.name)
        )
        for name, qargs, error in errors:
            if error is not None:
                noise.add_quantum_error(error, name, [index[q] for q in qargs])
        return noise

    def _compute(self, keys: list[tuple[str, tuple[int, ...]]]) -> None:
        from qiskit_aer.noise.device import basic_device_gate_errors

        qubits = sorted({q for _, qargs in keys for q in qargs})
        index = {q: i for i, q in enumerate(qubits)}
        part = _empty_like(self.target, qubits)
        by_name: dict[str, dict[tuple[int, ...], Any]] = {}
        for name, qargs in keys:
            by_name.setdefault(name, {})[tuple(index[q] for q in qargs)] = self.target[name][qargs]
        for name, properties in by_name.items():
            part.add_instruction(self.target.operation_from_name(name), properties, name=name)
        for key in keys:
            self.errors[key] = None  # no error: an ideal or virtual gate
        with warnings.catch_warnings():
            # As NoiseModel.from_backend does: Aer's own deprecations inside.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="qiskit_aer")
            found = basic_device_gate_errors(target=part)
        checked = _checked_error_class()
        for name, local, error in found:
            merged = kraus_error(error)
            # Aer asks each error whether it is ideal whenever it is added to a model (3 ms
            # for a Kraus channel); Aer's device model only makes errors that are not.
            merged.__class__ = checked
            self.errors[(name, tuple(qubits[i] for i in local))] = merged


def _gate_errors(entry: BackendEntry) -> _GateErrors:
    with _lock:
        errors = _device_errors.get(entry.spec)
        if errors is None:
            errors = _device_errors[entry.spec] = _GateErrors(entry.name, entry.target)
        return errors


def known_gate_errors(entry: BackendEntry) -> int:
    """How many of ``entry``'s gate errors this process has computed so far (diagnostics)."""
    with _lock:
        errors = _device_errors.get(entry.spec)
    return 0 if errors is None else len(errors.errors)


def _empty_like(target: Target, qubits: Sequence[int]) -> Target:
    """A target with ``target``'s timing and the properties of ``qubits``, no instructions."""
    all_properties = target.qubit_properties
    return Target(
        description=target.description,
        num_qubits=len(qubits),
        dt=target.dt,
        granularity=target.granularity,
        min_length=target.min_length,
        pulse_alignment=target.pulse_alignment,
        acquire_alignment=target.acquire_alignment,
        qubit_properties=[all_properties[q] for q in qubits] if all_properties else None,
    )


def _without_gate_properties(target: Target) -> Target:
    """``target`` with only its measurements' properties (and its qubits')."""
    bare = _empty_like(target, range(target.num_qubits))
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        entries = target[name]
        if not entries or None in entries:
            bare.add_instruction(operation, name=name)
        elif name == "measure":
            bare.add_instruction(operation, dict(entries), name=name)
        else:
            bare.add_instruction(operation, dict.fromkeys(entries), name=name)
    return bare


@functools.cache
def _checked_error_class() -> type[QuantumError]:
    """A ``QuantumError`` already known not to be ideal."""
    from qiskit_aer.noise import QuantumError

    class CheckedQuantumError(QuantumError):  # type: ignore[misc]
        def ideal(self) -> bool:
            return False

    return CheckedQuantumError


@functools.cache
def _serialized_once_class() -> type[NoiseModel]:
    """A ``NoiseModel`` that serialises itself once, not on every ``run()``.

    Aer calls ``to_dict(serializable=True)`` on each run, a JSON round trip that costs
    more than simulating a small circuit (about 7 ms for 2 qubits). The result is kept
    until the model changes: every mutator drops it, and so do copies and pickles (Aer
    deep-copies the model and adds errors to it when a circuit has delays). Should Aer
    stop calling ``to_dict`` per run, this only stops saving time.
    """
    from qiskit_aer.noise import NoiseModel

    class SerializedOnceNoiseModel(NoiseModel):  # type: ignore[misc]
        _serialized: dict[str, Any] | None = None

        def to_dict(self, serializable: bool = False) -> dict[str, Any]:
            if not serializable:
                return super().to_dict(serializable)  # type: ignore[no-any-return]
            if self._serialized is None:
                self._serialized = super().to_dict(True)
            return self._serialized

        def __getstate__(self) -> dict[str, Any]:
            state = dict(self.__dict__)
            state.pop("_serialized", None)
            return state

        def reset(self) -> None:
            self._serialized = None
            super().reset()

        def add_basis_gates(self, *args: Any, **kwargs: Any) -> None:
            self._serialized = None
            super().add_basis_gates(*args, **kwargs)

        def add_all_qubit_quantum_error(self, *args: Any, **kwargs: Any) -> None:
            self._serialized = None
            super().add_all_qubit_quantum_error(*args, **kwargs)

        def add_quantum_error(self, *args: Any, **kwargs: Any) -> None:
            self._serialized = None
            super().add_quantum_error(*args, **kwargs)

        def add_all_qubit_readout_error(self, *args: Any, **kwargs: Any) -> None:
            self._serialized = None
            super().add_all_qubit_readout_error(*args, **kwargs)

        def add_readout_error(self, *args: Any, **kwargs: Any) -> None:
            self._serialized = None
            super().add_readout_error(*args, **kwargs)

    return SerializedOnceNoiseModel


def clear_compact_cache() -> None:
    """Forget every compact simulator, gate error and pass manager built in this process."""
    with _lock:
        _simulators.clear()
        _pass_managers.clear()
        _entries.clear()
        _device_errors.clear()


# --------------------------------------------------------------------------- running


def run_compact(
    entry: BackendEntry, circuits: QuantumCircuit | Sequence[QuantumCircuit], **run_options: Any
) -> Result:
    """Run circuits transpiled for ``entry`` and return one ``Result``, in input order.

    Circuits are grouped by the qubits they touch; each group runs in one Aer call on
    its compact simulator. Headers and metadata are each circuit's own (``n_qubits`` and
    ``qreg_sizes`` too). ``parameter_binds`` (one dict per circuit) works as in Aer: a
    circuit bound to ``n`` values gives ``n`` experiments in a row. An ideal (``aer``)
    entry runs everything on ``build_simulator(entry)``.
    """
    circuit_list = [circuits] if isinstance(circuits, QuantumCircuit) else list(circuits)
    if entry.spec.kind != "device":
        result: Result = build_simulator(entry).run(circuit_list, **run_options).result()
        return result
    if not circuit_list:
        raise InputValueError("no circuits to run: give at least one QuantumCircuit")
    if "noise_model" in run_options:
        raise InputValueError(
            f"{entry.name} simulates with its own noise model; for another one, run on an "
            "AerSimulator of your own"
        )
    binds = run_options.pop("parameter_binds", None)
    if binds is not None and (not isinstance(binds, Sequence) or len(binds) != len(circuit_list)):
        raise InputValueError(
            f"parameter_binds must be a list of {len(circuit_list)} dicts, one per circuit"
        )

    groups: dict[tuple[int, ...], list[int]] = {}
    compacted: list[QuantumCircuit] = []
    for i, circuit in enumerate(circuit_list):
        small, qubits = compact_circuit(circuit)
        compacted.append(small)
        groups.setdefault(qubits, []).append(i)

    experiments: list[list[Any]] = [[] for _ in circuit_list]
    parts: list[Result] = []
    for qubits, indices in groups.items():
        options = dict(run_options)
        seed = options.get("seed_simulator")
        if isinstance(seed, int) and not isinstance(seed, bool):
            # Each group's Aer job would otherwise start the same random stream.
            options["seed_simulator"] = seed + indices[0]
        if binds is not None:
            options["parameter_binds"] = [binds[i] for i in indices]
        simulator = compact_simulator(entry, qubits)
        part = simulator.run([compacted[i] for i in indices], **options).result()
        parts.append(part)
        counts = [_experiment_count(circuit_list[i], binds[i] if binds else None) for i in indices]
        if sum(counts) != len(part.results):
            raise RuntimeError(
                f"Aer returned {len(part.results)} experiments for {sum(counts)} expected"
            )
        position = 0
        for i, count in zip(indices, counts, strict=True):
            for experiment in part.results[position : position + count]:
                _restore_header(experiment, circuit_list[i])
                experiments[i].append(experiment)
            position += count
    return _combine(entry.name, parts, [e for block in experiments for e in block])


def run_circuits(
    backend: Any, circuits: QuantumCircuit | Sequence[QuantumCircuit], **run_options: Any
) -> Result:
    """``backend.run(circuits, **run_options).result()``, compactly where that is possible.

    A :class:`DeviceRunner` runs compactly by itself; the device simulator that
    ``build_simulator`` made for a catalogue entry is run with :func:`run_compact`; any
    other backend (one with a noise model of its own, say) runs as it is.
    """
    if not isinstance(backend, DeviceRunner):
        entry = _entry_of_simulator(backend)
        if entry is not None:
            return run_compact(entry, circuits, **run_options)
    result: Result = backend.run(circuits, **run_options).result()
    return result


def _entry_of_simulator(backend: Any) -> BackendEntry | None:
    """The device entry whose ``build_simulator`` simulator ``backend`` is, if any.

    Reads the private cache of ``qruntime.backends.simulator`` (our own module, not
    Aer's): only that cache knows which simulators carry a catalogue's noise model. If
    it changes shape this returns None and runs merely stop being compact; a test
    catches that.
    """
    from qruntime.backends import simulator as simulator_module

    cache = getattr(simulator_module, "_cache", None)
    lock = getattr(simulator_module, "_lock", None)
    if not isinstance(cache, dict) or lock is None:
        return None
    with lock:
        spec = next((s for s, sim in cache.items() if sim is backend), None)
    if not isinstance(spec, BackendSpec) or spec.kind != "device":
        return None
    with _lock:
        entry = _entries.get(spec)
    if entry is None:
        entry = BackendEntry(spec)
        with _lock:
            entry = _entries.setdefault(spec, entry)
    return entry


def _experiment_count(circuit: QuantumCircuit, bind: Mapping[Any, Any] | None) -> int:
    # Aer runs a parameterised circuit once per bound value, else once.
    if not bind or not circuit.parameters:
        return 1
    return len(next(iter(bind.values())))


def _restore_header(experiment: Any, circuit: QuantumCircuit) -> None:
    header = experiment.header
    if isinstance(header, dict):
        header["n_qubits"] = circuit.num_qubits
        header["qreg_sizes"] = [[reg.name, reg.size] for reg in circuit.qregs]


def _combine(name: str, parts: list[Result], experiments: list[Any]) -> Result:
    first = parts[0]
    success = all(part.success for part in parts)
    statuses = {str(part.status) for part in parts}
    return Result(
        backend_name=name,
        backend_version=first.backend_version,
        job_id=first.job_id if len(parts) == 1 else str(uuid.uuid4()),
        qobj_id=getattr(first, "qobj_id", None),
        success=success,
        results=experiments,
        date=first.date,
        status=statuses.pop() if len(statuses) == 1 else "; ".join(sorted(statuses)),
        header=first.header,
        metadata=getattr(first, "metadata", None),
        time_taken=sum(float(getattr(part, "time_taken", 0.0) or 0.0) for part in parts),
    )


# --------------------------------------------------------------------------- BackendV2


class CompletedJob(JobV1):  # type: ignore[misc]
    """A job that ran when it was made: ``result()`` returns at once."""

    def __init__(self, backend: BackendV2, result: Result) -> None:
        super().__init__(backend, result.job_id)
        self._result = result

    def submit(self) -> None:
        raise RuntimeError("this job has already run")

    def result(self) -> Result:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE if self._result.success else JobStatus.ERROR


class DeviceRunner(BackendV2):  # type: ignore[misc]
    """A catalogue backend as a Qiskit ``BackendV2`` that runs circuits with :func:`run_compact`.

    ``transpile(circuits, runner)`` targets the device; ``runner.run(circuits, shots=...)``
    simulates only the qubits each circuit touches. Circuits that are not in the device's
    instruction set are transpiled first (optimization level 1), as a device would require.

    Usage::

        runner = DeviceRunner(catalogue.get("fake_27q"))
        counts = runner.run(transpile(bell, runner), shots=1000).result().get_counts()
    """

    def __init__(self, entry: BackendEntry) -> None:
        super().__init__(
            name=entry.name, description=entry.spec.description or None, backend_version="1.0.0"
        )
        self._entry = entry

    @property
    def entry(self) -> BackendEntry:
        return self._entry

    @property
    def target(self) -> Target:
        return self._entry.target

    @property
    def max_circuits(self) -> int | None:
        return self._entry.spec.max_experiments

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None, memory=False)

    def run(
        self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any
    ) -> CompletedJob:
        """Simulate ``run_input`` now; the returned job is already done."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        if self._entry.spec.kind == "device":
            circuits = [c if self._is_isa(c) else self._pass_manager().run(c) for c in circuits]
        run_options = {k: v for k, v in self.options.items() if v is not None}
        run_options.update(options)
        return CompletedJob(self, run_compact(self._entry, circuits, **run_options))

    def _is_isa(self, circuit: QuantumCircuit) -> bool:
        target = self.target
        if circuit.num_qubits > target.num_qubits:
            return False
        return _supported(circuit, target, list(range(circuit.num_qubits)))

    def _pass_manager(self) -> PassManager:
        spec = self._entry.spec
        with _lock:
            manager = _pass_managers.get(spec)
        if manager is None:
            manager = generate_preset_pass_manager(optimization_level=1, target=self.target)
            with _lock:
                manager = _pass_managers.setdefault(spec, manager)
        return manager


def _supported(circuit: QuantumCircuit, target: Target, physical: list[int]) -> bool:
    """Whether every instruction, inside control flow too, is in ``target`` where it acts."""
    for inst in circuit.data:
        operation = inst.operation
        qargs = tuple(physical[circuit.find_bit(q).index] for q in inst.qubits)
        if operation.name == "barrier":
            continue
        if not target.instruction_supported(operation.name, qargs):
            return False
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                if not _supported(block, target, list(qargs)):
                    return False
    return True
