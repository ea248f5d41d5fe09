"""Circuits for ``program.py``: a helper module of the folder program."""

from qiskit import QuantumCircuit


def bernstein_vazirani(secret: str) -> QuantumCircuit:
    """One query to the oracle of ``x -> secret . x (mod 2)`` reveals ``secret``."""
    n = len(secret)
    circuit = QuantumCircuit(n + 1, n)
    circuit.x(n)
    circuit.h(range(n + 1))
    # Qiskit orders bits right to left: bit i of the secret string is qubit n - 1 - i.
    for qubit, bit in enumerate(reversed(secret)):
        if bit == "1":
            circuit.cx(qubit, n)
    circuit.h(range(n))
    circuit.measure(range(n), range(n))
    return circuit
