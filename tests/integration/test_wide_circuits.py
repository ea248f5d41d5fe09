"""Wide circuits on noisy devices finish: each circuit on the simulation that fits it."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp

from qruntime.client._primitives import EstimatorV2, SamplerV2
from qruntime.client._service import RuntimeService
from qruntime.errors import InputValueError


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeService]:
    """One real server for the module (its default catalogue has fake_27q, fake_sherbrooke)."""
    import uvicorn

    from qruntime.server.app import create_app
    from qruntime.server.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "qrt_admin_" + secrets.token_hex(16)
    db = tmp_path_factory.mktemp("wide") / "qruntime.db"
    settings = Settings(db_url=f"sqlite:///{db}", port=port, admin_token=token)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server failed to start"
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.01)
    client = RuntimeService(url=f"http://127.0.0.1:{port}", token=token)
    yield client
    client.close()
    server.should_exit = True
    thread.join(timeout=30)


def _x_and_measure(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.x(range(n))
    circuit.measure_all()
    return circuit


def _ghz(n: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n)
    circuit.h(0)
    for qubit in range(n - 1):
        circuit.cx(qubit, qubit + 1)
    circuit.measure_all()
    return circuit


@pytest.mark.parametrize("n", [20, 27])
def test_x_on_every_qubit_of_fake_27q_shows_the_device_noise(
    service: RuntimeService, n: int
) -> None:
    backend = service.backend("fake_27q")
    circuit = transpile(_x_and_measure(n), backend, optimization_level=1, seed_transpiler=3)
    sampler = SamplerV2(mode=backend, options={"default_shots": 400, "seed_simulator": 11})
    result = sampler.run([circuit]).result()[0]
    bits = result.data.meas.to_bool_array()
    assert bits.shape == (400, n)
    all_ones = int(bits.all(axis=1).sum())
    # Mostly all ones (each qubit reads 1 with its readout error), never all of them.
    assert 0.25 * 400 < all_ones < 400
    assert bits.mean() > 0.9
    assert result.metadata["simulator"] == {"method": "separable", "noise": "device", "qubits": n}


def test_ghz_on_100_qubits_of_the_127_qubit_device_keeps_its_correlations(
    service: RuntimeService,
) -> None:
    backend = service.backend("fake_sherbrooke")
    circuit = transpile(_ghz(100), backend, optimization_level=1, seed_transpiler=3)
    sampler = SamplerV2(mode=backend, options={"default_shots": 300, "seed_simulator": 5})
    result = sampler.run([circuit]).result()[0]
    bits = result.data.meas.to_bool_array()  # columns: the chain, last qubit first
    assert bits.shape == (300, 100)
    assert result.metadata["simulator"] == {
        "method": "stabilizer",
        "noise": "pauli-twirled",
        "qubits": 100,
    }
    # A GHZ state: neighbouring qubits of the chain read alike (random bits: half the time).
    agreement = (bits[:, 1:] == bits[:, :-1]).mean()
    assert agreement > 0.8
    # Not ideal: errors split some shots, and readout flips single bits.
    weights = bits.sum(axis=1)
    assert np.any((weights > 0) & (weights < 100))
    # Both halves of the superposition show up.
    assert np.any(weights < 50)
    assert np.any(weights > 50)


def test_low_entanglement_non_clifford_circuit_runs_as_a_matrix_product_state(
    service: RuntimeService,
) -> None:
    circuit = QuantumCircuit(16)
    circuit.h(0)
    circuit.t(0)  # not a Clifford gate
    for qubit in range(15):
        circuit.cx(qubit, qubit + 1)
    circuit.measure_all()
    backend = service.backend("fake_27q")
    isa = transpile(circuit, backend, optimization_level=1, seed_transpiler=3)
    sampler = SamplerV2(mode=backend, options={"default_shots": 200, "seed_simulator": 2})
    result = sampler.run([isa]).result()[0]
    assert result.metadata["simulator"]["method"] == "matrix_product_state"
    bits = result.data.meas.to_bool_array()
    assert (bits[:, 1:] == bits[:, :-1]).mean() > 0.85


@pytest.mark.parametrize("level", [0, 1])  # 1: readout calibration of all 20 qubits too
def test_estimator_on_a_wide_clifford_circuit_names_its_method(
    service: RuntimeService, level: int
) -> None:
    backend = service.backend("fake_27q")
    circuit = _ghz(20)
    circuit.remove_final_measurements()
    isa = transpile(circuit, backend, optimization_level=1, seed_transpiler=3)
    observable = SparsePauliOp("Z" * 20).apply_layout(isa.layout)
    estimator = EstimatorV2(
        mode=backend,
        options={"default_shots": 400, "seed_simulator": 4, "resilience_level": level},
    )
    result = estimator.run([(isa, observable)]).result()[0]
    assert result.metadata["simulator"]["method"] == "stabilizer"
    # <Z...Z> of a 20-qubit GHZ is 1 ideally; noise lowers it but it stays positive.
    assert 0.05 < float(result.data.evs) < 1.0


def test_impossible_circuit_is_refused_at_submission_with_the_reason(
    service: RuntimeService,
) -> None:
    rng = np.random.default_rng(7)
    circuit = QuantumCircuit(40)
    for _ in range(6):
        for qubit in range(40):
            circuit.rx(float(rng.uniform(0, np.pi)), qubit)
        order = rng.permutation(40)
        for a, b in zip(order[::2], order[1::2], strict=True):
            circuit.cx(int(a), int(b))
    circuit.measure_all()
    sampler = SamplerV2(mode=service.backend("fake_sherbrooke"), options={"default_shots": 100})
    with pytest.raises(InputValueError, match=r"entangles 40 qubits with non-Clifford gates"):
        sampler.run([circuit])
