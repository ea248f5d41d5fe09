"""RemoteBackend: the server's backends rebuilt on the client from their JSON."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from qiskit import QuantumCircuit, transpile

from qruntime.backends import load_catalogue
from qruntime.client._backend import RemoteBackend
from qruntime.errors import QRuntimeError


def remote(name: str, **kwargs: Any) -> RemoteBackend:
    entry = load_catalogue().get(name)
    return RemoteBackend(entry.configuration(), entry.properties(), **kwargs)


def ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for q in range(1, n):
        circuit.cx(0, q)
    circuit.rx(0.3, n - 1)
    circuit.measure_all()
    return circuit


@pytest.mark.parametrize(("name", "width"), [("fake_5q", 4), ("fake_27q", 6)])
def test_transpiled_circuit_is_valid_for_the_device_target(name: str, width: int) -> None:
    backend = remote(name)
    assert backend.name == name
    circuit = transpile(ghz(width), backend, seed_transpiler=1)
    edges = set(backend.coupling_map.get_edges())
    for instruction in circuit.data:
        qargs = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        op = instruction.operation.name
        if op == "barrier":
            continue
        assert backend.target.instruction_supported(op, qargs), (op, qargs)
        if len(qargs) == 2:
            assert qargs in edges


def test_aer_simulator_backend_has_no_coupling_constraint() -> None:
    backend = remote("aer_simulator")
    assert backend.coupling_map is None
    circuit = QuantumCircuit(8)
    circuit.cx(0, 7)
    circuit.measure_all()
    compiled = transpile(circuit, backend, optimization_level=0)
    assert compiled.count_ops().get("swap", 0) == 0
    assert compiled.count_ops()["cx"] == 1


def test_backend_exposes_limits_documents_and_options() -> None:
    backend = remote("fake_27q")
    assert backend.num_qubits == 27
    assert backend.max_circuits == 300
    assert backend.options.shots == 1024
    assert backend.simulator is False
    configuration = backend.configuration()
    configuration["n_qubits"] = 0
    assert backend.configuration()["n_qubits"] == 27
    properties = backend.properties()
    assert properties is not None
    assert len(properties["qubits"]) == 27
    assert remote("aer_simulator").properties() is None


def test_run_without_a_runner_points_to_the_programs() -> None:
    with pytest.raises(QRuntimeError, match="circuit-runner"):
        remote("fake_5q").run(ghz(2))


def test_run_hands_circuits_and_options_to_the_runner() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def runner(circuits: Any, **options: Any) -> str:
        calls.append((circuits, options))
        return "job-1"

    circuit = ghz(2)
    assert remote("aer_simulator", runner=runner).run(circuit, shots=10) == "job-1"
    assert calls == [(circuit, {"shots": 10})]


def test_client_backend_does_not_import_qiskit_ibm_runtime() -> None:
    code = (
        "import sys\n"
        "from qruntime.client._backend import RemoteBackend\n"
        "assert 'qiskit_ibm_runtime' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
