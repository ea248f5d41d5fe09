"""PUB coercion: a loop's observables are converted once, by content."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp

from qruntime.errors import InputValueError
from qruntime.primitives.pubs import coerce_estimator_pubs


def _circuit() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.ry(Parameter("a"), 0)
    circuit.cx(0, 1)
    return circuit


def _observables(pubs: list) -> object:
    (pub,) = coerce_estimator_pubs(pubs, default_precision=0.01)
    return pub.observables


def test_the_same_observables_are_converted_once_by_content() -> None:
    circuit = _circuit()
    first = _observables([(circuit, SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5)]), [0.1])])
    again = _observables([(circuit, SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5)]), [0.2])])
    assert again is first  # another object of the same content
    other = _observables([(circuit, SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.25)]), [0.1])])
    assert other is not first
    assert other.tolist() == {"ZZ": 1.0, "XI": 0.25}
    wire = _observables([(circuit, {"ZZ": 1.0, "XI": 0.5}, [0.3])])
    assert _observables([(circuit, {"ZZ": 1.0, "XI": 0.5}, [0.4])]) is wire
    assert wire.tolist() == first.tolist()


def test_observables_with_parameters_are_not_kept_and_bad_ones_still_refused() -> None:
    circuit = _circuit()
    theta = Parameter("t")
    symbolic = SparsePauliOp(["ZZ"], coeffs=np.array([theta], dtype=object))
    with pytest.raises(InputValueError, match=r"pubs\[0\]"):
        coerce_estimator_pubs([(circuit, symbolic, [0.1])], default_precision=0.01)
    wide = SparsePauliOp.from_list([("ZZZ", 1.0)])  # three qubits on a two-qubit circuit
    for _ in range(2):  # refused each time, kept or not
        with pytest.raises(InputValueError, match=r"pubs\[0\]"):
            coerce_estimator_pubs([(circuit, wide, [0.1])], default_precision=0.01)
    with pytest.raises(InputValueError, match=r"pubs\[0\]"):
        coerce_estimator_pubs([(circuit, {"ZZ": 1j}, [0.1])], default_precision=0.01)
