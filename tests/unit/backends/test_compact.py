"""Compact runs: a device circuit simulated on only the qubits it touches, with their noise."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Mapping

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Clbit, Parameter
from qiskit.quantum_info import SuperOp
from qiskit.result import Result
from qiskit_aer import AerSimulator

from qruntime.backends import (
    BackendEntry,
    Catalogue,
    DeviceRunner,
    build_simulator,
    clear_compact_cache,
    compact_circuit,
    compact_simulator,
    compact_target,
    load_catalogue,
    run_circuits,
    run_compact,
)
from qruntime.backends import compact as compact_module
from qruntime.backends.compact import known_gate_errors
from qruntime.errors import InputValueError

SHOTS = 8000


@pytest.fixture(scope="module")
def catalogue() -> Iterator[Catalogue]:
    yield load_catalogue()
    clear_compact_cache()


@pytest.fixture(scope="module")
def fake_27q(catalogue: Catalogue) -> BackendEntry:
    return catalogue.get("fake_27q")


@pytest.fixture(scope="module")
def fake_5q(catalogue: Catalogue) -> BackendEntry:
    return catalogue.get("fake_5q")


def _probabilities(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: value / total for key, value in counts.items()}


def _tvd(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _ghz3_on_device(entry: BackendEntry) -> QuantumCircuit:
    """A GHZ-3 transpiled onto physical qubits 12, 13 and 14 of the 27-qubit device."""
    circuit = QuantumCircuit(3, 3, name="ghz3")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure([0, 1, 2], [0, 1, 2])
    return transpile(circuit, target=entry.target, initial_layout=[12, 13, 14], seed_transpiler=1)


def _routed_ghz4(entry: BackendEntry) -> QuantumCircuit:
    """A GHZ-4 whose star of CNOTs needs routing on heavy hex: the transpiler picks the qubits."""
    circuit = QuantumCircuit(4, 4, name="ghz4")
    circuit.h(0)
    for target in (1, 2, 3):
        circuit.cx(0, target)
    circuit.measure(range(4), range(4))
    return transpile(circuit, target=entry.target, seed_transpiler=5, optimization_level=1)


def _measure_one(qubit: int, *, flip: bool, width: int = 27) -> QuantumCircuit:
    circuit = QuantumCircuit(width, 1, name=f"q{qubit}-{int(flip)}")
    if flip:
        circuit.x(qubit)
    circuit.measure(qubit, 0)
    return circuit


# --------------------------------------------------------------------------- circuits


def test_compact_circuit_keeps_only_touched_qubits_renumbered_in_order() -> None:
    circuit = QuantumCircuit(27, 3, name="ghz", metadata={"id": 7}, global_phase=0.25)
    circuit.h(14)
    circuit.cx(14, 12)
    circuit.cx(12, 13)
    circuit.barrier()  # on all 27 qubits
    circuit.delay(100, 3)  # on a qubit nothing else touches
    circuit.measure([12, 13, 14], [0, 1, 2])

    small, qubits = compact_circuit(circuit)

    assert qubits == (12, 13, 14)
    assert small.num_qubits == 3
    assert (small.name, small.metadata, small.global_phase) == ("ghz", {"id": 7}, 0.25)
    assert small.cregs == circuit.cregs
    ops = [
        (inst.operation.name, tuple(small.find_bit(q).index for q in inst.qubits))
        for inst in small.data
    ]
    assert ops[:4] == [("h", (2,)), ("cx", (2, 0)), ("cx", (0, 1)), ("barrier", (0, 1, 2))]
    assert "delay" not in [name for name, _ in ops]
    measured = [
        (small.find_bit(i.qubits[0]).index, small.find_bit(i.clbits[0]).index)
        for i in small.data
        if i.operation.name == "measure"
    ]
    assert measured == [(0, 0), (1, 1), (2, 2)]


def test_compact_circuit_with_given_qubits_keeps_the_extra_ones_idle() -> None:
    circuit = _measure_one(5, flip=True, width=10)
    small, qubits = compact_circuit(circuit, (7, 5, 2))
    assert qubits == (2, 5, 7)
    assert small.num_qubits == 3
    assert [small.find_bit(q).index for q in small.data[0].qubits] == [1]


def test_compact_circuit_refuses_qubits_that_leave_out_used_ones() -> None:
    circuit = QuantumCircuit(5, 2)
    circuit.cx(1, 3)
    with pytest.raises(InputValueError, match=r"leave out qubits \[3\]"):
        compact_circuit(circuit, (1, 2))
    with pytest.raises(InputValueError, match="not all qubits"):
        compact_circuit(circuit, (1, 3, 9))


def test_compact_circuit_keeps_control_flow_and_loose_clbit_order() -> None:
    loose = Clbit()
    register = ClassicalRegister(1, "c")
    circuit = QuantumCircuit(QuantumRegister(8, "q"), [loose], register)
    circuit.x(6)
    circuit.measure(6, loose)
    with circuit.if_test((loose, 1)):
        circuit.x(2)
    circuit.measure(2, register[0])

    small, qubits = compact_circuit(circuit)

    assert qubits == (2, 6)
    assert small.clbits == circuit.clbits
    result = AerSimulator().run(small, shots=50, seed_simulator=1).result()
    assert result.data(0)["counts"] == {"0x3": 50}  # both bits set: the if ran


def test_circuit_acting_on_no_qubit_still_gets_one() -> None:
    small, qubits = compact_circuit(QuantumCircuit(27, 1))
    assert (qubits, small.num_qubits) == ((0,), 1)


# --------------------------------------------------------------------------- noise


def test_compact_target_keeps_the_errors_of_kept_qubits_and_their_couplings(
    fake_27q: BackendEntry,
) -> None:
    full = fake_27q.target
    sliced = compact_target(full, (12, 13, 14))
    assert sliced.num_qubits == 3
    assert sliced.dt == full.dt
    assert sliced["cx"][(0, 1)] is full["cx"][(12, 13)]
    assert sliced["cx"][(2, 1)] is full["cx"][(14, 13)]
    assert set(sliced["cx"]) == {(0, 1), (1, 0), (1, 2), (2, 1)}  # 12-15 etc. are gone
    assert sliced["measure"][(1,)] is full["measure"][(13,)]
    assert sliced.qubit_properties[2].t1 == full.qubit_properties[14].t1
    assert sliced.qubit_properties[2].t2 == full.qubit_properties[14].t2
    assert "if_else" in sliced.operation_names


def test_compact_noise_model_has_the_full_models_errors_for_its_qubits(
    fake_5q: BackendEntry,
) -> None:
    full = build_simulator(fake_5q).options.noise_model
    qubits = (1, 3)
    compact = compact_simulator(fake_5q, qubits).options.noise_model

    # Readout errors are the full model's own, renumbered.
    full_dict, compact_dict = full.to_dict(), compact.to_dict()
    full_readout = {
        repr(e["gate_qubits"]): repr(e["probabilities"])
        for e in full_dict["errors"]
        if e["type"] == "roerror"
    }
    compact_readout = [e for e in compact_dict["errors"] if e["type"] == "roerror"]
    assert len(compact_readout) == 2
    for error in compact_readout:
        physical = [tuple(qubits[q] for q in qargs) for qargs in error["gate_qubits"]]
        assert full_readout[repr(physical)] == repr(error["probabilities"])

    # Gate errors are merged into one Kraus channel each: the same channel as the full
    # model's (compared as superoperators). Aer's private table is read on purpose.
    gate_errors = [
        (name, qargs, error)
        for name, by_qubits in compact._local_quantum_errors.items()
        for qargs, error in by_qubits.items()
    ]
    # 1 and 3 are coupled: both cx directions; id, sx, x and reset per qubit.
    assert sorted({name for name, _, _ in gate_errors}) == ["cx", "id", "reset", "sx", "x"]
    assert len(gate_errors) == 2 + 2 * 4
    for name, qargs, error in gate_errors:
        physical = tuple(qubits[q] for q in qargs)
        expected = full._local_quantum_errors[name][physical]
        assert SuperOp(error) == SuperOp(expected), (name, physical)
        assert [[i.operation.name for i in c.data] for c in error.circuits] == [["kraus"]]


def test_readout_errors_match_the_devices_asymmetric_flip_rates(fake_27q: BackendEntry) -> None:
    circuits = [_measure_one(20, flip=False), _measure_one(20, flip=True)]
    result = run_compact(fake_27q, circuits, shots=SHOTS, seed_simulator=3)
    readout = fake_27q.target["measure"][(20,)]
    ones_from_zero = result.get_counts(0).get("1", 0) / SHOTS
    zeros_from_one = result.get_counts(1).get("0", 0) / SHOTS
    assert ones_from_zero == pytest.approx(readout.prob_meas1_prep0, abs=0.006)
    # The x gate's own error adds a little to the readout flip.
    assert zeros_from_one == pytest.approx(readout.prob_meas0_prep1, abs=0.008)
    assert zeros_from_one > ones_from_zero


def test_delay_relaxes_an_excited_qubit_and_leaves_the_cached_model_intact(
    fake_27q: BackendEntry,
) -> None:
    t1 = fake_27q.target.qubit_properties[9].t1
    waiting = _measure_one(9, flip=True)
    waiting.data.insert(1, waiting.data[0].replace(operation=_delay_seconds(t1)))
    simulator = compact_simulator(fake_27q, (9,))
    serialized = simulator.options.noise_model.to_dict(serializable=True)

    result = run_compact(
        fake_27q, [_measure_one(9, flip=True), waiting], shots=SHOTS, seed_simulator=4
    )

    decayed = result.get_counts(1).get("0", 0) / SHOTS
    prompt = result.get_counts(0).get("0", 0) / SHOTS
    assert decayed - prompt == pytest.approx(1 - math.exp(-1), abs=0.04)
    # Aer adds the delay's error to a copy: the cached model and its serialised form stay.
    assert simulator.options.noise_model.to_dict(serializable=True) is serialized


def _delay_seconds(duration: float) -> object:
    from qiskit.circuit import Delay

    return Delay(duration, unit="s")


def test_ghz_on_physical_qubits_matches_the_full_noisy_simulator(
    fake_27q: BackendEntry,
) -> None:
    circuits = [_ghz3_on_device(fake_27q), _routed_ghz4(fake_27q)]
    assert compact_circuit(circuits[0])[1] == (12, 13, 14)
    full = build_simulator(fake_27q).run(circuits, shots=SHOTS, seed_simulator=11).result()
    compact = run_compact(fake_27q, circuits, shots=SHOTS, seed_simulator=12)

    for i, width in enumerate((3, 4)):
        full_p = _probabilities(full.get_counts(i))
        compact_p = _probabilities(compact.get_counts(i))
        assert _tvd(full_p, compact_p) < 0.03
        ideal = {"0" * width: 0.5, "1" * width: 0.5}
        # Noise is really there: a few percent of the shots land outside the GHZ pair.
        assert _tvd(compact_p, ideal) > 0.03


def _gates_among(entry: BackendEntry, qubits: set[int]) -> set[tuple[str, tuple[int, ...]]]:
    """The calibrated gates (not measurements) ``entry`` has among ``qubits``."""
    target = entry.target
    return {
        (name, qargs)
        for name in target.operation_names
        if name != "measure"
        for qargs, props in (target[name] or {}).items()
        if qargs is not None and props is not None and set(qargs) <= qubits
    }


@pytest.mark.skipif(
    importlib.util.find_spec("qiskit_ibm_runtime") is None, reason="needs qiskit-ibm-runtime"
)
def test_a_large_devices_gate_errors_are_computed_once_per_process(catalogue: Catalogue) -> None:
    torino = catalogue.get("fake_torino")
    assert torino.target.num_qubits == 133
    ghz = QuantumCircuit(5)
    ghz.h(0)
    for i in range(4):
        ghz.cx(i, i + 1)
    ghz.measure_all()
    isa = transpile(ghz, target=torino.target, seed_transpiler=3, optimization_level=1)
    counts = run_compact(torino, isa, shots=2000, seed_simulator=1).get_counts()
    # Only the 5 touched qubits were simulated, with their errors and no others'.
    touched = compact_circuit(isa)[1]
    assert len(touched) == 5
    assert (torino.spec, touched) in compact_module._simulators
    assert known_gate_errors(torino) == len(_gates_among(torino, set(touched)))
    ends = counts.get("00000", 0) + counts.get("11111", 0)
    assert 0.5 * 2000 < ends < 0.99 * 2000  # GHZ, with the device's noise

    # A neighbouring qubit set computes only the errors it adds; a set already covered,
    # none.
    neighbour = next(
        b
        for a, b in torino.target.build_coupling_map().get_edges()
        if a in touched and b not in touched
    )
    shifted = tuple(sorted({*touched[1:], neighbour}))
    compact_simulator(torino, shifted)
    known = _gates_among(torino, set(touched)) | _gates_among(torino, set(shifted))
    assert known_gate_errors(torino) == len(known)
    compact_simulator(torino, shifted)
    assert known_gate_errors(torino) == len(known)
    union = set(touched) | set(shifted)  # adds only the couplings between the two sets
    compact_simulator(torino, tuple(sorted(union)))
    assert known_gate_errors(torino) == len(_gates_among(torino, union))


# --------------------------------------------------------------------------- running


def test_compact_simulator_is_cached_per_backend_and_qubits(fake_27q: BackendEntry) -> None:
    first = compact_simulator(fake_27q, (3, 5))
    assert compact_simulator(fake_27q, (3, 5)) is first
    assert compact_simulator(fake_27q, (5, 3)) is not first
    assert first.name == "fake_27q"


def test_compact_simulator_cache_is_bounded(
    fake_5q: BackendEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_compact_cache()
    monkeypatch.setattr(compact_module, "_CACHE_SIZE", 2)
    oldest = compact_simulator(fake_5q, (0,))
    compact_simulator(fake_5q, (1,))
    compact_simulator(fake_5q, (2,))
    assert compact_simulator(fake_5q, (0,)) is not oldest


def test_compact_simulator_refuses_bad_qubits_and_ideal_backends(catalogue: Catalogue) -> None:
    with pytest.raises(InputValueError, match="distinct qubits"):
        compact_simulator(catalogue.get("fake_5q"), (1, 5))
    with pytest.raises(InputValueError, match="ideal simulator"):
        compact_simulator(catalogue.get("aer_simulator"), (0,))


def test_results_come_back_in_input_order_with_their_headers(fake_27q: BackendEntry) -> None:
    circuits = [
        _measure_one(20, flip=True),
        _measure_one(3, flip=False),
        _measure_one(20, flip=False),
    ]
    circuits[1].metadata = {"tag": "middle"}
    result = run_compact(fake_27q, circuits, shots=400, seed_simulator=1)

    assert isinstance(result, Result)
    assert result.success
    assert result.backend_name == "fake_27q"
    assert [r.header["name"] for r in result.results] == ["q20-1", "q3-0", "q20-0"]
    assert result.results[1].header["metadata"] == {"tag": "middle"}
    assert all(r.header["n_qubits"] == 27 for r in result.results)
    assert [max(result.get_counts(i), key=result.get_counts(i).get) for i in range(3)] == [
        "1",
        "0",
        "0",
    ]


def test_parameter_binds_give_one_experiment_per_value_in_order(fake_27q: BackendEntry) -> None:
    theta = Parameter("θ")
    rotated = QuantumCircuit(27, 1, name="rotated")
    rotated.rx(theta, 7)
    rotated.measure(7, 0)
    rotated = transpile(rotated, target=fake_27q.target, optimization_level=0)
    plain = _measure_one(2, flip=True)

    result = run_compact(
        fake_27q,
        [rotated, plain],
        shots=500,
        seed_simulator=2,
        parameter_binds=[{theta: [0.0, math.pi]}, {}],
    )

    assert [r.header["name"] for r in result.results] == ["rotated", "rotated", "q2-1"]
    assert result.get_counts(0).get("0", 0) > 450
    assert result.get_counts(1).get("1", 0) > 450
    assert result.get_counts(2).get("1", 0) > 450


def test_memory_and_seed_behave_as_on_aer(fake_27q: BackendEntry) -> None:
    circuit = _ghz3_on_device(fake_27q)
    first = run_compact(fake_27q, circuit, shots=64, seed_simulator=9, memory=True)
    again = run_compact(fake_27q, circuit, shots=64, seed_simulator=9, memory=True)
    assert first.get_memory(0) == again.get_memory(0)
    assert len(first.get_memory(0)) == 64
    assert all(len(m) == 3 for m in first.get_memory(0))


def test_aer_entry_runs_on_the_ideal_simulator(catalogue: Catalogue) -> None:
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    counts = run_compact(
        catalogue.get("aer_simulator"), bell, shots=300, seed_simulator=1
    ).get_counts()
    assert set(counts) == {"00", "11"}


def test_device_runner_is_a_backend_that_transpile_and_run_accept(fake_27q: BackendEntry) -> None:
    runner = DeviceRunner(fake_27q)
    assert (runner.name, runner.num_qubits) == ("fake_27q", 27)
    bell = QuantumCircuit(2, 2, name="bell")
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])

    isa = transpile(bell, runner, seed_transpiler=3)
    job = runner.run(isa, shots=2000, seed_simulator=3)
    counts = job.result().get_counts()
    assert (counts.get("00", 0) + counts.get("11", 0)) / 2000 > 0.85
    assert job.status().name == "DONE"
    # A circuit outside the device's gates is transpiled first, as a user would expect.
    raw = runner.run(bell, shots=500, seed_simulator=3).result()
    assert raw.results[0].header["name"] == "bell"
    assert (raw.get_counts().get("00", 0) + raw.get_counts().get("11", 0)) / 500 > 0.85


def test_run_circuits_goes_compact_for_our_simulators_only(fake_5q: BackendEntry) -> None:
    # Reads a private cache of our own simulator module: this fails if that cache changes.
    simulator = build_simulator(fake_5q)
    entry = compact_module._entry_of_simulator(simulator)
    assert entry is not None
    assert entry.spec == fake_5q.spec
    assert compact_module._entry_of_simulator(AerSimulator()) is None

    result = run_circuits(
        simulator, _measure_one(4, flip=True, width=5), shots=100, seed_simulator=1
    )
    assert result.backend_name == "fake_5q"
    assert result.results[0].header["n_qubits"] == 5
    other = run_circuits(AerSimulator(), _measure_one(1, flip=True, width=2), shots=10)
    assert other.get_counts() == {"1": 10}


def test_circuit_runner_with_mitigation_runs_on_a_device_runner(fake_27q: BackendEntry) -> None:
    from qruntime.programs import circuit_runner
    from qruntime.programs.mitigation import clear_calibration_cache

    ghz = QuantumCircuit(3, 3, name="ghz3")
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    ghz.measure([0, 1, 2], [0, 1, 2])
    clear_calibration_cache("fake_27q")
    try:
        output = circuit_runner.main(
            DeviceRunner(fake_27q),
            None,
            circuits=ghz,
            shots=4000,
            initial_layout=[12, 13, 14],
            seed_transpiler=1,
            seed_simulator=5,
            measurement_error_mitigation=True,
        )
    finally:
        clear_calibration_cache("fake_27q")
    (experiment,) = output["results"]
    assert output["backend_name"] == "fake_27q"
    assert experiment["header"]["final_measurement_mapping"] == {12: 0, 13: 1, 14: 2}
    quasi = experiment["data"]["quasiprobabilities"]
    assert sum(quasi.values()) == pytest.approx(1.0)
    raw = _probabilities(experiment["data"]["counts"])
    # Mitigation moves weight back onto the two GHZ outcomes.
    assert quasi["0x0"] + quasi["0x7"] > raw["0x0"] + raw["0x7"]


def test_run_compact_refuses_no_circuits_and_a_foreign_noise_model(fake_5q: BackendEntry) -> None:
    with pytest.raises(InputValueError, match="no circuits"):
        run_compact(fake_5q, [])
    with pytest.raises(InputValueError, match="own noise model"):
        run_compact(fake_5q, _measure_one(0, flip=True, width=5), noise_model=None)
