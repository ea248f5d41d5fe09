"""A runtime program in one file: prepare a GHZ state and measure it.

Upload it with its metadata (``ghz_program.json``) and run it, as
``upload_program.py`` does::

    program_id = service.upload_program(
        data="examples/ghz_program.py", metadata="examples/ghz_program.json"
    )
    job = service.run(program_id, {"num_qubits": 3}, options={"backend": "aer_simulator"})

The server calls ``main`` with the job's backend (a Qiskit backend whose ``run`` takes
circuits), a ``user_messenger`` whose ``publish`` sends interim results to the client,
and the job's inputs as keyword arguments, checked against the metadata's ``spec``.
What ``main`` returns (JSON, or anything ``RuntimeEncoder`` encodes) is the job's result.
"""

from qiskit import QuantumCircuit, transpile


def ghz(num_qubits):
    """An n-qubit GHZ circuit, measured."""
    circuit = QuantumCircuit(num_qubits)
    circuit.h(0)
    for qubit in range(1, num_qubits):
        circuit.cx(qubit - 1, qubit)
    circuit.measure_all()
    return circuit


def main(backend, user_messenger, num_qubits=3, shots=1000, repeats=1):
    circuit = transpile(ghz(num_qubits), backend, seed_transpiler=7)
    total = {}
    for repeat in range(repeats):
        counts = backend.run(circuit, shots=shots).result().get_counts()
        for bits, count in counts.items():
            total[bits] = total.get(bits, 0) + count
        user_messenger.publish({"repeat": repeat, "counts": counts})
    ideal = total.get("0" * num_qubits, 0) + total.get("1" * num_qubits, 0)
    return {"counts": total, "ghz_fraction": ideal / (shots * repeats)}
