"""The backend catalogue through the REST API and the client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from qiskit import QuantumCircuit, transpile

from qruntime import BackendNotFoundError


def ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def test_backends_lists_the_built_in_catalogue(server) -> None:
    service = server.service()
    names = {b.name for b in service.backends()}
    assert {"aer_simulator", "fake_5q", "fake_27q"} <= names
    devices = service.backends(simulator=False)
    assert {b.name for b in devices} >= {"fake_5q", "fake_27q"}
    assert all(b.num_qubits >= 27 for b in service.backends(min_num_qubits=27))


@pytest.mark.parametrize("name", ["fake_5q", "fake_27q"])
def test_transpile_against_a_device_backend_respects_its_target(server, name: str) -> None:
    backend = server.service().backend(name)
    circuit = transpile(ghz(5), backend, seed_transpiler=1)
    target = backend.target
    for instruction in circuit.data:
        qargs = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        if instruction.operation.name == "barrier":
            continue
        assert target.instruction_supported(instruction.operation.name, qargs), (
            instruction.operation.name,
            qargs,
        )


def test_device_backend_has_realistic_noise_in_its_target(server) -> None:
    backend = server.service().backend("fake_27q")
    assert backend.num_qubits == 27
    cx_errors = [p.error for p in backend.target["cx"].values() if p is not None]
    readout = [p.error for p in backend.target["measure"].values() if p is not None]
    assert len(cx_errors) == 2 * 28 or len(cx_errors) == 28
    assert 1e-3 < sum(cx_errors) / len(cx_errors) < 5e-2
    assert 1e-3 < sum(readout) / len(readout) < 1e-1


def test_unknown_backend_is_a_named_error(server) -> None:
    with pytest.raises(BackendNotFoundError, match="no_such_backend"):
        server.service().backend("no_such_backend")


def test_status_configuration_and_properties_have_ibm_shapes(server, request) -> None:
    http = httpx.Client(base_url=server.url)
    request.addfinalizer(http.close)
    token = http.post("/users/loginWithToken", json={"apiToken": server.admin_token}).json()["id"]
    headers = {"Authorization": f"Bearer {token}"}

    assert "fake_5q" in http.get("/backends", headers=headers).json()["devices"]
    status = http.get("/backends/fake_5q/status", headers=headers).json()
    assert status["backend_name"] == "fake_5q"
    assert status["operational"] is True
    assert status["pending_jobs"] == 0
    config = http.get("/backends/fake_5q/configuration", headers=headers).json()
    assert config["simulator"] is False
    assert config["n_qubits"] == 5
    assert "cx" in config["basis_gates"]
    props = http.get("/backends/fake_5q/properties", headers=headers).json()
    assert len(props["qubits"]) == 5
    ideal = http.get("/backends/aer_simulator/properties", headers=headers)
    assert ideal.status_code == 404


def test_catalogue_comes_from_the_config_file(make_server, tmp_path: Path) -> None:
    config = tmp_path / "qruntime.toml"
    config.write_text(
        '[server]\nmax_program_bytes = 10000\n\n[backends.small_sim]\nkind = "aer"\nlanes = 3\n'
    )
    from qruntime.server.settings import Settings

    loaded = Settings.load(config_file=config)
    server = make_server(config_file=config, max_program_bytes=loaded.max_program_bytes)
    names = {b.name for b in server.service().backends()}
    assert "small_sim" in names
    assert "aer_simulator" in names
