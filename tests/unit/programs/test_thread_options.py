"""Small circuits run on one Aer thread: OpenMP costs more than it saves on a few qubits."""

from __future__ import annotations

from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qruntime.backends import DeviceRunner, load_catalogue
from qruntime.programs.circuit_runner import few_qubit_run_options


def _ghz(width: int, *, total: int | None = None) -> QuantumCircuit:
    circuit = QuantumCircuit(total or width, width)
    circuit.h(0)
    for i in range(width - 1):
        circuit.cx(i, i + 1)
    circuit.barrier()  # on every qubit: does not make idle qubits count
    circuit.measure(range(width), range(width))
    return circuit


def test_small_circuits_on_aer_get_one_thread_counting_active_qubits_only() -> None:
    simulator = AerSimulator()
    assert few_qubit_run_options(simulator, [_ghz(3, total=20)], {}) == {"max_parallel_threads": 1}
    result = simulator.run(_ghz(3), shots=100, max_parallel_threads=1).result()
    assert set(result.get_counts()) <= {"000", "111"}


def test_wide_circuits_and_chosen_thread_counts_are_left_alone() -> None:
    assert few_qubit_run_options(AerSimulator(), [_ghz(3), _ghz(11)], {}) == {}
    assert few_qubit_run_options(AerSimulator(max_parallel_threads=2), [_ghz(3)], {}) == {}
    assert few_qubit_run_options(AerSimulator(), [_ghz(3)], {"max_parallel_threads": 2}) == {}


def test_backends_without_the_option_get_none() -> None:
    # DeviceRunner picks threads per compact simulator itself.
    runner = DeviceRunner(load_catalogue().get("fake_5q"))
    assert few_qubit_run_options(runner, [_ghz(3, total=5)], {}) == {}
