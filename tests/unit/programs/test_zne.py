"""Noise amplification by folding, and extrapolation back to zero noise."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator
from qiskit.transpiler import generate_preset_pass_manager

from qruntime.backends import load_catalogue
from qruntime.errors import InputValueError
from qruntime.programs.zne import extrapolate, fold_circuit


def transpiled_ghz() -> tuple[QuantumCircuit, object]:
    target = load_catalogue().get("fake_5q").target
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.sx(2)
    manager = generate_preset_pass_manager(optimization_level=1, target=target, seed_transpiler=1)
    return manager.run(circuit), target


def two_qubit_gates(circuit: QuantumCircuit) -> int:
    return sum(1 for inst in circuit.data if len(inst.qubits) == 2)


def test_gate_folding_triples_two_qubit_gates_and_keeps_the_unitary() -> None:
    circuit, target = transpiled_ghz()
    folded, reached = fold_circuit(circuit, 3, target=target)
    assert reached == 3.0
    assert two_qubit_gates(folded) == 3 * two_qubit_gates(circuit)
    assert Operator(folded).equiv(Operator(circuit))


def test_fractional_factors_fold_some_gates_once_more() -> None:
    circuit, target = transpiled_ghz()
    folded, reached = fold_circuit(circuit, 2, target=target, seed=3)
    assert reached == 2.0  # 2 gates: one of them folded once
    assert two_qubit_gates(folded) == 4
    front, _ = fold_circuit(circuit, 2, amplifier="gate_folding_front", target=target)
    back, _ = fold_circuit(circuit, 2, amplifier="gate_folding_back", target=target)
    assert front != back
    assert Operator(front).equiv(Operator(circuit))
    assert Operator(back).equiv(Operator(circuit))


def test_global_folding_keeps_the_unitary_and_the_target_basis() -> None:
    circuit, target = transpiled_ghz()
    folded, reached = fold_circuit(circuit, 3, amplifier="global_folding", target=target)
    assert reached == 3.0
    assert len(folded.data) >= 3 * len(circuit.data)
    assert Operator(folded).equiv(Operator(circuit))
    # sx's inverse is not in the device's basis: it was translated, not left as sxdg.
    assert all(
        target.instruction_supported(
            i.operation.name, tuple(folded.find_bit(q).index for q in i.qubits)
        )
        for i in folded.data
    )


def test_factor_one_is_the_circuit_itself_and_below_one_is_refused() -> None:
    circuit, target = transpiled_ghz()
    assert fold_circuit(circuit, 1, target=target) == (circuit, 1.0)
    with pytest.raises(InputValueError):
        fold_circuit(circuit, 0.5, target=target)


def test_linear_extrapolation_is_exact_on_a_line_and_propagates_errors() -> None:
    factors = [1.0, 3.0, 5.0]
    values = np.array([[0.9, 0.7, 0.5]])
    stds = np.array([[0.01, 0.01, 0.01]])
    result = extrapolate(factors, values, stds, ["linear"])
    assert result.evs[0] == pytest.approx(1.0)
    # Least-squares weights of the zero-noise point: (13, 4, -5) / 12.
    assert result.stds[0] == pytest.approx(0.01 * np.sqrt(13**2 + 4**2 + 5**2) / 12)
    assert result.evs_extrapolated.shape == (1, 1, 4)
    assert result.evs_extrapolated[0, 0] == pytest.approx([1.0, 0.9, 0.7, 0.5])


def test_exponential_extrapolation_is_exact_on_a_decay() -> None:
    factors = [1.0, 2.0, 3.0]
    values = 0.8 * np.exp(-0.2 * np.array([factors]))
    result = extrapolate(factors, values, np.full((1, 3), 1e-3), ["exponential", "linear"])
    assert result.evs[0] == pytest.approx(0.8)
    assert result.chosen[0] == "exponential"


def test_a_failing_extrapolator_falls_back_to_the_next() -> None:
    factors = [1.0, 3.0, 5.0]
    values = np.array([[0.1, -0.05, -0.2]])  # mixed signs: no exponential fit
    result = extrapolate(factors, values, np.full((1, 3), 0.01), ["exponential", "linear"])
    assert result.chosen[0] == "linear"
    assert np.isnan(result.evs_extrapolated[0, 0]).all()
    assert result.evs[0] == pytest.approx(0.175)


def test_a_value_beyond_the_bound_is_not_accepted() -> None:
    factors = [1.0, 2.0, 3.0]
    values = np.array([[0.9, 0.5, 0.3]])
    result = extrapolate(
        factors, values, np.full((1, 3), 0.001), ["quadratic", "linear"], bound=1.0
    )
    assert result.chosen[0] == "linear"  # the parabola lands at 1.5, outside [-1, 1]


def test_polynomials_need_enough_factors() -> None:
    result = extrapolate(
        [1.0, 3.0], np.array([[0.9, 0.7]]), np.full((1, 2), 0.01), ["polynomial_degree_2"]
    )
    assert result.chosen[0] == "linear"
    assert result.evs[0] == pytest.approx(1.0)
