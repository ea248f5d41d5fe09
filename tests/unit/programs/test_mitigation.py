"""Readout-error mitigation: calibration on real Aer backends, and the inversion maths."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qruntime.errors import InputValueError
from qruntime.programs.mitigation import (
    ReadoutCalibration,
    cached_readout_calibration,
    calibrate_readout,
    final_measurement_mapping,
    outcome_to_int,
    quasiprobabilities_to_hex,
)

# Unequal errors per qubit, so a swapped qubit or bit would show.
MATRICES = {
    0: np.array([[0.95, 0.10], [0.05, 0.90]]),
    1: np.array([[0.90, 0.20], [0.10, 0.80]]),
    2: np.array([[0.97, 0.04], [0.03, 0.96]]),
}


def _read_through(
    ideal: dict[int, float], mapping: dict[int, int], num_bits: int
) -> dict[int, float]:
    """Exact outcome frequencies of ``ideal`` read through MATRICES on the mapped bits."""
    mapped = sum(1 << clbit for clbit in mapping.values())
    noisy: dict[int, float] = {}
    for outcome in range(2**num_bits):
        total = 0.0
        for prepared, probability in ideal.items():
            if (outcome ^ prepared) & ~mapped:
                continue  # unmapped bits are read without error
            weight = probability
            for qubit, clbit in mapping.items():
                weight *= MATRICES[qubit][(outcome >> clbit) & 1, (prepared >> clbit) & 1]
            total += weight
        if total:
            noisy[outcome] = total
    return noisy


def test_mitigation_exactly_undoes_known_assignment_matrices() -> None:
    calibration = ReadoutCalibration("fake", MATRICES)
    ideal = {0b000: 0.5, 0b111: 0.5}
    mapping = {0: 0, 1: 1, 2: 2}
    quasi = calibration.mitigate(_read_through(ideal, mapping, 3), mapping)
    for outcome in range(8):
        assert quasi.get(outcome, 0.0) == pytest.approx(ideal.get(outcome, 0.0), abs=1e-12)


def test_mitigation_follows_the_physical_qubit_to_clbit_mapping() -> None:
    calibration = ReadoutCalibration("fake", MATRICES)
    ideal = {0b01: 0.7, 0b10: 0.3}
    # Physical qubit 2 is read into bit 0 and qubit 0 into bit 1.
    mapping = {2: 0, 0: 1}
    quasi = calibration.mitigate(_read_through(ideal, mapping, 2), mapping)
    assert quasi[0b01] == pytest.approx(0.7)
    assert quasi[0b10] == pytest.approx(0.3)
    # The same counts mitigated with the mapping swapped give another answer.
    swapped = calibration.mitigate(_read_through(ideal, mapping, 2), {2: 1, 0: 0})
    assert swapped[0b01] != pytest.approx(0.7, abs=1e-3)


def test_bits_without_final_measurement_pass_through_unmitigated() -> None:
    calibration = ReadoutCalibration("fake", MATRICES)
    ideal = {0b100: 0.4, 0b011: 0.6}
    mapping = {0: 0, 1: 1}  # bit 2 was a mid-circuit measurement
    quasi = calibration.mitigate(_read_through(ideal, mapping, 3), mapping)
    assert quasi[0b100] == pytest.approx(0.4)
    assert quasi[0b011] == pytest.approx(0.6)
    assert sum(quasi.values()) == pytest.approx(1.0)


def test_mitigation_accepts_hex_bitstring_and_int_keys_alike() -> None:
    calibration = ReadoutCalibration("fake", MATRICES)
    mapping = {0: 0, 1: 1}
    by_int = calibration.mitigate({0: 60, 3: 40}, mapping)
    assert calibration.mitigate({"0x0": 60, "0x3": 40}, mapping) == by_int
    assert calibration.mitigate({"00": 60, "11": 40}, mapping) == by_int


def test_many_mitigated_bits_are_solved_on_the_observed_outcomes() -> None:
    width = 14  # over the dense limit
    matrix = np.array([[0.98, 0.03], [0.02, 0.97]])
    calibration = ReadoutCalibration("fake", dict.fromkeys(range(width), matrix))
    all_ones = 2**width - 1
    counts = {0: 4700, all_ones: 4700}
    for bit in range(width):  # single bit flips around each peak
        counts[1 << bit] = 20
        counts[all_ones ^ (1 << bit)] = 30
    quasi = calibration.mitigate(counts, {q: q for q in range(width)})
    assert sum(quasi.values()) == pytest.approx(1.0)
    assert quasi[0] + quasi[all_ones] > 4700 * 2 / sum(counts.values())


def test_mitigating_an_uncalibrated_qubit_is_refused() -> None:
    calibration = ReadoutCalibration("fake", MATRICES)
    with pytest.raises(InputValueError, match=r"qubits \[4\]"):
        calibration.mitigate({0: 1}, {4: 0})


def test_calibration_recovers_the_backends_readout_errors(
    readout_noisy_backend: AerSimulator, readout_errors: list[tuple[float, float]]
) -> None:
    calibration = calibrate_readout(readout_noisy_backend, [0, 3, 4], seed_simulator=5)
    assert calibration.qubits == (0, 3, 4)
    for qubit in calibration.qubits:
        p10, p01 = readout_errors[qubit]
        matrix = calibration.assignment_matrix(qubit)
        assert matrix[1, 0] == pytest.approx(p10, abs=0.01)
        assert matrix[0, 1] == pytest.approx(p01, abs=0.01)
        assert matrix.sum(axis=0) == pytest.approx([1.0, 1.0])


def test_ideal_backend_calibrates_to_the_identity(ideal_backend: AerSimulator) -> None:
    calibration = calibrate_readout(ideal_backend, [0, 1], shots=256)
    for qubit in (0, 1):
        assert calibration.assignment_matrix(qubit) == pytest.approx(np.eye(2))
        assert calibration.readout_error(qubit) == 0.0


def test_calibrating_a_qubit_off_the_backend_is_refused(
    readout_noisy_backend: AerSimulator,
) -> None:
    with pytest.raises(InputValueError, match=r"qubits \[5\]"):
        calibrate_readout(readout_noisy_backend, [0, 5])


def test_cached_calibration_is_reused_and_extended_per_qubit(
    readout_noisy_backend: AerSimulator,
) -> None:
    first = cached_readout_calibration(readout_noisy_backend, [0, 1], seed_simulator=1)
    # Another seed would give other estimates: equal matrices mean no new calibration.
    again = cached_readout_calibration(readout_noisy_backend, [1, 0, 2], seed_simulator=2)
    for qubit in (0, 1):
        assert np.array_equal(first.assignment_matrix(qubit), again.assignment_matrix(qubit))
    fresh = calibrate_readout(readout_noisy_backend, [0], seed_simulator=2)
    assert not np.array_equal(fresh.assignment_matrix(0), first.assignment_matrix(0))
    assert again.qubits == (0, 1, 2)


def test_final_measurement_mapping_leaves_out_mid_circuit_measurements() -> None:
    circuit = QuantumCircuit(4, 4)
    circuit.h(0)
    circuit.measure(0, 3)  # mid-circuit: qubit 0 is used again below
    circuit.cx(0, 1)
    circuit.barrier()
    circuit.measure(1, 0)
    circuit.measure(2, 1)
    circuit.measure(0, 2)
    assert final_measurement_mapping(circuit) == {0: 2, 1: 0, 2: 1}


def test_final_measurement_mapping_leaves_out_a_bit_measured_twice() -> None:
    circuit = QuantumCircuit(2, 1)
    circuit.measure(0, 0)
    circuit.measure(1, 0)  # overwrites bit 0: only qubit 1's value survives
    assert final_measurement_mapping(circuit) == {1: 0}


@pytest.mark.parametrize(
    ("key", "value"), [(5, 5), ("0x5", 5), ("101", 5), ("1 01", 5), ("0b101", 5)]
)
def test_outcomes_are_read_from_every_key_format(key: object, value: int) -> None:
    assert outcome_to_int(key) == value


def test_an_unreadable_outcome_is_refused() -> None:
    with pytest.raises(InputValueError, match="not an outcome"):
        outcome_to_int("0xzz")


def test_quasiprobabilities_get_sorted_hex_keys() -> None:
    assert quasiprobabilities_to_hex({3: 0.25, 0: 0.75}) == {"0x0": 0.75, "0x3": 0.25}
