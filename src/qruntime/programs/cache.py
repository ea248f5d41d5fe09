"""Content-keyed caches of a worker process, and the per-job counters that report on them.

A worker keeps what later jobs can reuse: transpiled circuits (keyed by a hash of
the circuit's QPY bytes, the backend's name and the pass manager's options), what
programs derive from a circuit before running it (see :func:`cached_preparation`),
pass managers, simulators with their noise models, readout calibrations. A session's
worker lives as long as the session, so its second identical job neither
transpiles nor builds a noise model.

The worker calls :func:`begin_job` before each job and :func:`end_job` after it;
``end_job`` returns what that job hit and built. :func:`clear_all` empties every
cache of the process (a server with its caches switched off calls it before
each job).

Usage::

    key = (circuit_key(circuit), options_key)   # circuit_key None: do not cache
    store_transpiled(key, backend, transpiled)
    load_transpiled(key, backend)               # the same circuit, or None
    content = circuit_key(circuit)              # None: built each time, never cached
    cached_preparation(                         # built once, then shared: never change it
        "unmeasured", content, lambda: circuit.remove_final_measurements(inplace=False)
    )
"""

from __future__ import annotations

import hashlib
import io
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from qiskit import QuantumCircuit, qpy
from qiskit.converters import circuit_to_dag, dag_to_circuit

from qruntime._lru import LRUCache
from qruntime.encoding import DecodedCircuits

__all__ = [
    "COUNTER_NAMES",
    "DECODED",
    "PREPARED",
    "TRANSPILED",
    "LRUCache",
    "begin_job",
    "cached_preparation",
    "circuit_key",
    "clear_all",
    "clear_prepared",
    "clear_transpiled",
    "count",
    "counters",
    "decoded_key",
    "end_job",
    "load_transpiled",
    "store_transpiled",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

COUNTER_NAMES = (
    "transpile_hits",
    "transpile_misses",
    "simulator_builds",
    "pass_manager_builds",
    "preparation_hits",
    "preparation_misses",
)
# A transpiled circuit costs a few hundred bytes per instruction: at most about
# 100 MB of them per worker, and never more than this many circuits.
_TRANSPILED_ENTRIES = 512
_TRANSPILED_INSTRUCTIONS = 250_000
# Prepared circuits are about as heavy: the same bounds, counted over every circuit an
# entry holds (a list of measurement circuits weighs the sum of theirs).
_PREPARED_ENTRIES = 1024
_PREPARED_INSTRUCTIONS = 250_000


def _instructions(item: tuple[QuantumCircuit, Callable[[], Any]]) -> int:
    return len(item[0].data) + 1


# Values: the transpiled circuit and a weak reference to the backend it is for.
TRANSPILED: LRUCache[Hashable, tuple[QuantumCircuit, Callable[[], Any]]] = LRUCache(
    max_entries=_TRANSPILED_ENTRIES, max_weight=_TRANSPILED_INSTRUCTIONS, weigh=_instructions
)


def store_transpiled(key: Hashable, backend: Any, circuit: QuantumCircuit) -> None:
    """Keep ``circuit``, transpiled for ``backend``, under ``key`` (content and options)."""
    try:
        ref: Callable[[], Any] = weakref.ref(backend)
    except TypeError:  # not weakly referable: no way to tell it from a namesake later
        return
    TRANSPILED.put((key, id(backend)), (circuit, ref))


def load_transpiled(key: Hashable, backend: Any) -> QuantumCircuit | None:
    """What :func:`store_transpiled` kept under ``key`` for this very ``backend`` object.

    Backends are told apart by identity, not by name: two backends may share a
    name (tests do) and must never share transpiled circuits.
    """
    item = TRANSPILED.get((key, id(backend)))
    if item is None or item[1]() is not backend:
        return None
    return item[0]


def circuit_key(circuit: QuantumCircuit) -> Hashable | None:
    """A key of ``circuit``'s content: equal for equal circuits, name and metadata aside.

    Two circuits built separately with the same gates, registers, parameters (which
    QPY identifies by their UUIDs) and layout get the same key. QPY writes the
    registers of a layout in an order that can change from one call to the next, so a
    laid-out circuit (every transpiled one) is hashed without its layout, which is
    added as numbers: the physical qubit of each virtual one, how many were the
    input's, and the routing permutation. None when QPY cannot write the circuit:
    then it is simply not cached.
    """
    layout = circuit.layout
    if layout is None:
        return _qpy_hash(circuit)
    content = _qpy_hash(dag_to_circuit(circuit_to_dag(circuit)))  # without the layout
    if content is None:
        return None
    return (
        content,
        tuple(layout.initial_index_layout()),
        len(layout.initial_index_layout(filter_ancillas=True)),
        tuple(layout.routing_permutation()),
    )


def _qpy_hash(circuit: QuantumCircuit) -> str | None:
    """A sha256 of ``circuit``'s QPY bytes, leaving out its name and metadata."""
    # Names and metadata do not change how a circuit transpiles; callers put the
    # caller's own back on what the cache returns.
    bare = circuit.copy(name="circuit")
    bare.metadata = {}
    buffer = io.BytesIO()
    try:
        qpy.dump(bare, buffer)
    except Exception:  # QPY refuses some custom objects: not caching them is correct
        return None
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def clear_transpiled() -> None:
    """Forget every transpiled circuit (a worker does this when its user may change)."""
    TRANSPILED.clear()
    DECODED.clear()


class _JobDecodedCircuits(DecodedCircuits):
    """`DecodedCircuits` that also notes which circuit objects went into the current job's
    inputs, and the encoded text each was decoded from (see :func:`decoded_key`)."""

    def __init__(self, *, max_entries: int, max_instructions: int) -> None:
        super().__init__(max_entries=max_entries, max_instructions=max_instructions)
        # id of a circuit handed out -> a weak reference to it and its encoded text.
        self._handed: dict[int, tuple[weakref.ref[QuantumCircuit], str]] = {}
        # encoded text -> the circuit_key of what it decodes to (_UNKEYABLE: none).
        self.keys: LRUCache[str, Hashable] = LRUCache(max_entries=max_entries)

    def get(self, text: str) -> QuantumCircuit | None:
        circuit = super().get(text)
        if circuit is not None:
            self._handed[id(circuit)] = (weakref.ref(circuit), text)
        return circuit

    def put(self, text: str, circuit: QuantumCircuit) -> None:
        super().put(text, circuit)
        self._handed[id(circuit)] = (weakref.ref(circuit), text)

    def text_of(self, circuit: QuantumCircuit) -> str | None:
        """The encoded text ``circuit`` was decoded from in this job, if it was."""
        item = self._handed.get(id(circuit))
        return item[1] if item is not None and item[0]() is circuit else None

    def forget_handed(self) -> None:
        self._handed.clear()

    def clear(self) -> None:
        super().clear()
        self._handed.clear()
        self.keys.clear()


_UNKEYABLE = object()  # a text whose circuit QPY cannot write: circuit_key gave None

# The job inputs' circuits as decoded (by their encoded text): a session's loop sends the
# same circuit with every job. Forgotten with the transpiled circuits.
DECODED = _JobDecodedCircuits(max_entries=128, max_instructions=100_000)


def decoded_key(circuit: QuantumCircuit) -> Hashable | None:
    """:func:`circuit_key` of a circuit as the current job's inputs decoded it.

    The key of each encoded text is computed once (a loop sends the same circuit with
    every job); a circuit that did not come from this job's inputs is keyed by
    :func:`circuit_key`. Call it before changing the circuit: a circuit changed since
    it was decoded would get the key of what was decoded.
    """
    text = DECODED.text_of(circuit)
    if text is None:
        return circuit_key(circuit)
    key = DECODED.keys.get(text)
    if key is None:
        computed = circuit_key(circuit)
        DECODED.keys.put(text, _UNKEYABLE if computed is None else computed)
        return computed
    return None if key is _UNKEYABLE else key


def _preparation_weight(item: tuple[Any, Callable[[], Any] | None]) -> int:
    return _weight(item[0])


def _weight(value: Any) -> int:
    """Instructions of the circuits in ``value`` (lists and tuples looked into), at least 1.

    Other values count 1, or their ``cache_weight`` when they have one.
    """
    if isinstance(value, QuantumCircuit):
        return len(value.data) + 1
    if isinstance(value, list | tuple):
        return 1 + sum(_weight(item) for item in value)
    weight = getattr(value, "cache_weight", None)  # an object that knows its size
    return weight if isinstance(weight, int) and weight > 0 else 1


# Values: what was built and, for a backend-specific entry, a weak reference to the backend.
PREPARED: LRUCache[Hashable, tuple[Any, Callable[[], Any] | None]] = LRUCache(
    max_entries=_PREPARED_ENTRIES,
    max_weight=_PREPARED_INSTRUCTIONS,
    weigh=_preparation_weight,
)


def cached_preparation(
    step: str, content: Hashable | None, build: Callable[[], V], *, backend: Any = None
) -> V:
    """``build()``, or what it returned before for the same ``step`` and ``content``.

    For what a program derives from a circuit before running it (final measurements
    removed, measurement bases appended...): ``step`` names the program and the step,
    ``content`` is everything the result depends on (a circuit by
    :func:`circuit_key`, observables by their labels). A None ``content`` (a
    circuit QPY cannot write) builds and keeps nothing. Given ``backend``, the entry
    serves that very backend object only, as in :func:`load_transpiled`.

    The value is shared with every later job that asks: nobody may change it, so
    copy a cached circuit before adding to it. Each lookup counts a preparation hit
    or miss of the current job.
    """
    if content is None:
        return build()
    key: Hashable = (step, content)
    owner: Callable[[], Any] | None = None
    if backend is not None:
        try:
            owner = weakref.ref(backend)
        except TypeError:  # not weakly referable: no way to tell it from a namesake later
            return build()
        key = (step, content, id(backend))
    item = PREPARED.get(key)
    if item is not None and (item[1] is None or item[1]() is backend):
        count("preparation_hits")
        value: V = item[0]
        return value
    count("preparation_misses")
    value = build()
    PREPARED.put(key, (value, owner))
    return value


def clear_prepared() -> None:
    """Forget every cached preparation (with the transpiled circuits, for the same reason)."""
    PREPARED.clear()


# --------------------------------------------------------------------------- counters

_counter_lock = threading.Lock()
_counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
# Identities of simulators and pass managers that the backends package had cached when
# the job began; what is new at its end was built by the job.
_seen_at_start: set[int] = set()


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the current job's counter ``name`` (one of ``COUNTER_NAMES``)."""
    if name not in _counters:
        raise ValueError(f"unknown cache counter {name!r}; known: {COUNTER_NAMES}")
    with _counter_lock:
        _counters[name] += n


def counters() -> dict[str, int]:
    """A copy of the current job's counters so far."""
    with _counter_lock:
        return dict(_counters)


def begin_job(*, clear: bool = False, keep_transpiled: bool = True) -> None:
    """Zero the counters for a new job; ``clear`` empties every cache first.

    ``keep_transpiled=False`` forgets the transpiled and prepared circuits only: a
    worker shared by several users must not let one learn from a cache hit what
    another ran.
    """
    if clear:
        clear_all()
    elif not keep_transpiled:
        clear_transpiled()
        clear_prepared()
    DECODED.forget_handed()  # circuits handed to earlier jobs are theirs to change
    with _counter_lock:
        for name in COUNTER_NAMES:
            _counters[name] = 0
    _seen_at_start.clear()
    _seen_at_start.update(id(obj) for obj in _backend_cached_objects())
    _translator_builds()  # only builds from here on are this job's


def end_job() -> dict[str, int]:
    """The counters of the job that just ended, with what the backends built added."""
    built_simulators = sum(1 for o in _backend_simulators() if id(o) not in _seen_at_start)
    built_managers = sum(1 for o in _backend_pass_managers() if id(o) not in _seen_at_start)
    built_managers += _translator_builds()
    with _counter_lock:
        _counters["simulator_builds"] += built_simulators
        _counters["pass_manager_builds"] += built_managers
        return dict(_counters)


def clear_all() -> None:
    """Empty every cache of this process: circuits, pass managers, simulators, calibrations."""
    global _translator_misses
    clear_transpiled()
    clear_prepared()
    # Only modules already loaded can hold anything; importing the others would be
    # wasted work (and may fail in a sandbox that can no longer read them).
    runner = sys.modules.get("qruntime.programs.circuit_runner")
    if runner is not None:
        runner.clear_pass_manager_cache()
    mitigation = sys.modules.get("qruntime.programs.mitigation")
    if mitigation is not None:
        mitigation.clear_calibration_cache()
    for name, function in (
        ("qruntime.backends.compact", "clear_compact_cache"),
        ("qruntime.backends.simulator", "clear_simulator_cache"),
    ):
        module = sys.modules.get(name)
        if module is not None:
            getattr(module, function)()
    translator = _zne_translator()
    if translator is not None:
        translator.cache_clear()
    _translator_misses = 0


# ------------------------------------------------------------- what the backends build
#
# The backends package caches its simulators and pass managers in private dicts of its
# own modules and counts nothing, so builds are found by identity: an object in those
# caches at a job's end that was not there at its start. Should their shape change,
# these find nothing and the counters merely under-report (a test watches for that).


def _values_of(module_name: str, attribute: str) -> list[Any]:
    module = sys.modules.get(module_name)
    cache = getattr(module, attribute, None)
    lock = getattr(module, "_lock", None)
    if not isinstance(cache, dict) or lock is None:
        return []
    with lock:
        return list(cache.values())


def _backend_simulators() -> Iterable[Any]:
    yield from _values_of("qruntime.backends.compact", "_simulators")
    yield from _values_of("qruntime.backends.simulator", "_cache")


def _backend_pass_managers() -> Iterable[Any]:
    yield from _values_of("qruntime.backends.compact", "_pass_managers")


def _backend_cached_objects() -> Iterable[Any]:
    yield from _backend_simulators()
    yield from _backend_pass_managers()


_translator_misses = 0


def _zne_translator() -> Any:
    zne = sys.modules.get("qruntime.programs.zne")
    translator = getattr(zne, "_translator", None)
    return translator if hasattr(translator, "cache_info") else None


def _translator_builds() -> int:
    """ZNE's basis translators built since the last call (an ``lru_cache``'s misses)."""
    global _translator_misses
    translator = _zne_translator()
    if translator is None:
        return 0
    misses = int(translator.cache_info().misses)
    built, _translator_misses = max(0, misses - _translator_misses), misses
    return built
