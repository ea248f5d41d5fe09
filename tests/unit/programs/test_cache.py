"""The content-keyed caches of a worker and their per-job counters, on real Qiskit and Aer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit_aer import AerSimulator

from qruntime.backends import build_simulator, compact_simulator, load_catalogue
from qruntime.encoding import dumps, loads
from qruntime.programs import cache
from qruntime.programs.circuit_runner import cached_transpile


def ghz(n: int = 3) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    cache.begin_job(clear=True)
    yield
    cache.begin_job(clear=True)


def test_lru_drops_the_least_recently_used_entry_beyond_max_entries() -> None:
    lru: cache.LRUCache[str, int] = cache.LRUCache(max_entries=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the least recently used
    lru.put("c", 3)
    assert "b" not in lru
    assert (lru.get("a"), lru.get("c"), len(lru)) == (1, 3, 2)


def test_lru_keeps_its_total_weight_within_max_weight() -> None:
    lru: cache.LRUCache[str, str] = cache.LRUCache(max_entries=100, max_weight=10, weigh=len)
    lru.put("a", "xxxx")
    lru.put("b", "yyyy")
    lru.put("c", "zzzz")
    assert "a" not in lru
    assert lru.weight == 8
    lru.put("huge", "w" * 11)
    assert "huge" not in lru
    assert lru.weight == 8


def test_equal_circuits_built_separately_have_one_key_whatever_their_names() -> None:
    first, second = ghz(), ghz()
    second.name = "another name"
    second.metadata = {"experiment": 7}
    assert first.name != second.name
    assert cache.circuit_key(first) == cache.circuit_key(second)


def test_a_different_circuit_or_parameter_has_another_key() -> None:
    changed = ghz()
    changed.x(0)
    assert cache.circuit_key(changed) != cache.circuit_key(ghz())
    # Parameters are told apart by their UUIDs: a namesake must not share a transpilation.
    a, b = QuantumCircuit(1), QuantumCircuit(1)
    a.rx(Parameter("t"), 0)
    b.rx(Parameter("t"), 0)
    assert cache.circuit_key(a) != cache.circuit_key(b)


def test_second_equal_circuit_is_not_transpiled_again_and_keeps_its_own_name() -> None:
    backend = AerSimulator()
    first = cached_transpile([ghz()], backend, optimization_level=3, seed_transpiler=1)[0]
    assert cache.counters()["transpile_misses"] == 1
    assert cache.counters()["pass_manager_builds"] == 1
    again = ghz()
    again.name = "mine"
    again.metadata = {"tag": 1}
    second = cached_transpile([again], backend, optimization_level=3, seed_transpiler=1)[0]
    counts = cache.counters()
    assert (counts["transpile_hits"], counts["transpile_misses"]) == (1, 1)
    assert counts["pass_manager_builds"] == 1
    assert second.name == "mine"
    assert second.metadata == {"tag": 1}
    assert second == first
    second.x(0)  # what a caller changes is its own copy
    third = cached_transpile([ghz()], backend, optimization_level=3, seed_transpiler=1)[0]
    assert third == first


def test_other_options_or_another_backend_of_the_same_name_miss() -> None:
    backend, namesake = AerSimulator(), AerSimulator()
    assert backend.name == namesake.name
    cached_transpile([ghz()], backend, optimization_level=1)
    cached_transpile([ghz()], backend, optimization_level=2)
    cached_transpile([ghz()], namesake, optimization_level=1)
    assert cache.counters()["transpile_hits"] == 0
    assert cache.counters()["transpile_misses"] == 3


def test_end_job_counts_the_simulators_the_backends_built_and_begin_job_resets() -> None:
    entry = load_catalogue().get("fake_5q")
    cache.begin_job()
    compact_simulator(entry, (0, 1))
    compact_simulator(entry, (0, 1))
    compact_simulator(entry, (1, 2))
    assert cache.end_job()["simulator_builds"] == 2
    cache.begin_job()
    compact_simulator(entry, (0, 1))
    assert cache.end_job() == dict.fromkeys(cache.COUNTER_NAMES, 0)


def test_clear_all_empties_transpiled_circuits_and_simulators() -> None:
    backend = AerSimulator()
    entry = load_catalogue().get("fake_5q")
    cached_transpile([ghz()], backend)
    compact_simulator(entry, (0, 1))
    cache.begin_job(clear=True)
    assert len(cache.TRANSPILED) == 0
    cached_transpile([ghz()], backend)
    compact_simulator(entry, (0, 1))
    counts = cache.end_job()
    assert counts["transpile_misses"] == 1
    assert counts["pass_manager_builds"] == 1
    assert counts["simulator_builds"] == 1


def test_begin_job_without_keep_transpiled_forgets_other_users_circuits() -> None:
    backend = AerSimulator()
    cached_transpile([ghz()], backend)
    loads(dumps(ghz()), circuits=cache.DECODED)
    assert len(cache.DECODED) > 0
    cache.begin_job(keep_transpiled=False)
    assert len(cache.DECODED) == 0  # decoded job inputs are another user's data too
    cached_transpile([ghz()], backend)
    counts = cache.end_job()
    assert (counts["transpile_hits"], counts["transpile_misses"]) == (0, 1)
    assert counts["pass_manager_builds"] == 0  # pass managers hold no user data: kept


def test_a_laid_out_circuit_keeps_one_key_and_its_transpilation_is_reused() -> None:
    """QPY writes a layout's registers in varying order; the key must not follow it."""
    backend = build_simulator(load_catalogue().get("fake_5q"))
    (isa,) = cached_transpile([ghz()], backend, optimization_level=1, seed_transpiler=3)
    assert isa.layout is not None
    assert len({cache.circuit_key(isa) for _ in range(20)}) == 1
    other = isa.copy()
    other.x(0)
    assert cache.circuit_key(other) != cache.circuit_key(isa)
    cache.begin_job()
    for _ in range(5):
        cached_transpile([isa], backend, optimization_level=1, seed_transpiler=3)
    counts = cache.end_job()
    assert (counts["transpile_misses"], counts["transpile_hits"]) == (1, 4)


def test_a_decoded_circuit_is_keyed_once_per_encoded_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = dumps({"circuit": ghz(3)})
    computed: list[QuantumCircuit] = []
    real_key = cache.circuit_key

    def counting_key(circuit: QuantumCircuit) -> object:
        computed.append(circuit)
        return real_key(circuit)

    monkeypatch.setattr(cache, "circuit_key", counting_key)
    keys = []
    for _ in range(3):  # three jobs whose inputs hold the same circuit
        cache.begin_job()
        circuit = loads(text, circuits=cache.DECODED)["circuit"]
        keys.append(cache.decoded_key(circuit))
    assert len(computed) == 1
    assert keys[0] == keys[1] == keys[2] == real_key(ghz(3))


def test_only_circuits_the_current_job_decoded_are_keyed_by_their_text() -> None:
    text = dumps({"circuit": ghz(3)})
    cache.begin_job()
    circuit = loads(text, circuits=cache.DECODED)["circuit"]
    assert cache.DECODED.text_of(circuit) is not None
    changed = circuit.copy()
    changed.x(0)  # a copy is not what was decoded: keyed by its own content
    assert cache.decoded_key(changed) == cache.circuit_key(changed) != cache.decoded_key(circuit)
    cache.begin_job()  # the next job: circuits handed to the last one are theirs to change
    assert cache.DECODED.text_of(circuit) is None
    circuit.x(1)
    assert cache.decoded_key(circuit) == cache.circuit_key(circuit)
