"""Backends users recognise: IBM device snapshots by name, and a lab's own BackendV2.

Real servers, real workers (sandboxed where the machine allows), real Aer.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, transpile
from tests import lab_backends

from qruntime import BackendNotFoundError
from qruntime.client._primitives import SamplerV2

needs_ibm_runtime = pytest.mark.skipif(
    importlib.util.find_spec("qiskit_ibm_runtime") is None, reason="needs qiskit-ibm-runtime"
)

# An uploaded program that uses its backend as any Qiskit program would.
PROGRAM = """
from qiskit import QuantumCircuit, transpile

def main(backend, user_messenger, **kwargs):
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure_all()
    isa = transpile(circuit, backend, seed_transpiler=1)
    counts = backend.run(isa, shots=1000, seed_simulator=2).result().get_counts()
    return {
        "backend": backend.name,
        "num_qubits": backend.num_qubits,
        "gates": sorted(isa.count_ops()),
        "counts": counts,
    }
"""


def ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


def assert_isa(circuit: QuantumCircuit, backend: object) -> None:
    target = backend.target  # type: ignore[attr-defined]
    for instruction in circuit.data:
        if instruction.operation.name == "barrier":
            continue
        qargs = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        assert target.instruction_supported(instruction.operation.name, qargs), instruction


def assert_noisy_ghz(counts: dict[str, int], width: int) -> None:
    """GHZ counts with a device's noise: mostly all-0 and all-1, not only those."""
    shots = sum(counts.values())
    ends = counts.get("0" * width, 0) + counts.get("1" * width, 0)
    assert ends > 0.6 * shots, counts  # not garbage
    assert ends < 0.995 * shots, counts  # not ideal
    assert min(counts.get("0" * width, 0), counts.get("1" * width, 0)) > 0.2 * shots, counts


@needs_ibm_runtime
def test_a_133_qubit_heron_snapshot_is_served_transpiled_to_and_sampled_with_its_noise(
    server,
) -> None:
    service = server.service()
    listed = {backend.name: backend for backend in service.backends()}
    assert {"fake_sherbrooke", "fake_torino", "fake_fez"} <= set(listed)
    assert listed["fake_torino"].num_qubits == 133
    assert listed["fake_torino"].simulator is False

    torino = service.backend("fake_torino")
    assert torino.num_qubits == 133
    assert "cz" in torino.target.operation_names
    assert torino.configuration()["processor_type"]["family"] == "Heron"
    isa = transpile(ghz(5), torino, seed_transpiler=1, optimization_level=1)
    assert_isa(isa, torino)

    result = SamplerV2(mode=torino).run([isa], shots=4000).result()
    assert_noisy_ghz(result[0].data.meas.get_counts(), 5)


def test_listing_the_backends_fetches_no_documents_until_one_is_used(server) -> None:
    service = server.service()
    requests: list[str] = []
    api = service._api
    original = api.get_json

    def counted(path: str, *args: object, **kwargs: object) -> object:
        requests.append(path)
        return original(path, *args, **kwargs)

    api.get_json = counted  # type: ignore[method-assign]
    backends = service.backends(simulator=False, min_num_qubits=27)
    assert requests == ["/backends"]
    assert {b.name for b in backends} >= {"fake_27q"}
    assert all(b.num_qubits >= 27 and not b.simulator for b in backends)
    fake_27q = next(b for b in backends if b.name == "fake_27q")
    assert fake_27q.target.num_qubits == 27  # now its documents are fetched, once
    assert requests[1:] == ["/backends/fake_27q/configuration", "/backends/fake_27q/properties"]
    assert service.backend("fake_27q") is fake_27q


def test_without_qiskit_ibm_runtime_the_server_starts_and_says_what_to_install(
    make_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The server runs in this process: a None in sys.modules hides the package from it.
    monkeypatch.setitem(sys.modules, "qiskit_ibm_runtime", None)
    with caplog.at_level(logging.WARNING, logger="qruntime.server"):
        service = make_server().service()
    assert {b.name for b in service.backends()} == {"aer_simulator", "fake_5q", "fake_27q"}
    with pytest.raises(BackendNotFoundError, match="pip install qiskit-ibm-runtime"):
        service.backend("fake_torino")
    assert any("fake_torino" in r.getMessage() for r in caplog.records)


@pytest.fixture
def lab_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``lab_backends`` importable here and by the workers (through ``PYTHONPATH``)."""
    folder = lab_backends.copy_to(tmp_path / "lab")
    monkeypatch.syspath_prepend(str(folder))
    paths = [str(folder), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    return folder


def lab_config(tmp_path: Path, factory: str = "lab_backends:line_backend") -> Path:
    path = tmp_path / "qruntime.toml"
    path.write_text(f'[backends.lab_line]\nkind = "provider"\nfactory = "{factory}"\n')
    return path


def test_a_labs_backend_is_served_listed_transpiled_to_and_run_by_sampler_and_program(
    make_server, lab_folder: Path, tmp_path: Path
) -> None:
    service = make_server(config_file=lab_config(tmp_path)).service()
    listed = {backend.name: backend for backend in service.backends()}
    assert listed["lab_line"].num_qubits == 5
    assert listed["lab_line"].simulator is False

    lab = service.backend("lab_line")
    assert set(lab.configuration()["basis_gates"]) == set(lab_backends.BASIS_GATES)
    assert lab.properties() is not None
    isa = transpile(ghz(3), lab, seed_transpiler=1)
    assert_isa(isa, lab)
    assert set(isa.count_ops()) <= {"cz", "rx", "ry", "measure", "barrier"}

    # The built-in sampler, in the pooled workers.
    result = SamplerV2(mode=lab).run([isa], shots=2000).result()
    assert_noisy_ghz(result[0].data.meas.get_counts(), 3)

    # An uploaded program, in the sandbox, through backend.run.
    program_id = service.upload_program(
        data=PROGRAM,
        metadata={
            "name": "lab-ghz",
            "description": "GHZ on a lab backend",
            "max_execution_time": 120,
        },
    )
    job = service.run(program_id, inputs={}, options={"backend": "lab_line"})
    output = job.result()
    assert output["backend"] == "lab_line"
    assert output["num_qubits"] == 5
    assert set(output["gates"]) <= {"cz", "rx", "ry", "measure", "barrier"}
    assert_noisy_ghz(output["counts"], 3)


def test_serve_refuses_a_failing_factory_in_one_line(lab_folder: Path, tmp_path: Path) -> None:
    config = lab_config(tmp_path, "lab_backends:broken_backend")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "qruntime.cli.main",
            "serve",
            "--config",
            str(config),
            "--db",
            f"sqlite:///{tmp_path / 'q.db'}",
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QRUNTIME_ADMIN_TOKEN": "qrt_admin_0123456789abcdef"},
    )
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "[backends.lab_line]" in lines[0]
    assert "factory 'lab_backends:broken_backend' failed: ConnectionError: " in lines[0]
    assert "control rack does not answer" in lines[0]
