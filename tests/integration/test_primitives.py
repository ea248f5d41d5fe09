"""SamplerV2 and EstimatorV2 against a real server, real workers and real Aer."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import real_amplitudes
from qiskit.primitives import (
    BaseEstimatorV2,
    BaseSamplerV2,
    PrimitiveResult,
    StatevectorEstimator,
)
from qiskit.quantum_info import SparsePauliOp

from qruntime.client._options import Options, SamplerOptions
from qruntime.client._primitives import Estimator, EstimatorV2, Sampler, SamplerV2
from qruntime.client._service import RuntimeService
from qruntime.client._session import Batch, Session
from qruntime.errors import InputValueError


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeService]:
    """One real server for the whole module: starting one costs seconds, a job milliseconds."""
    import uvicorn

    from qruntime.server.app import create_app
    from qruntime.server.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "qrt_admin_" + secrets.token_hex(16)
    db = tmp_path_factory.mktemp("primitives") / "qruntime.db"
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


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def job_count(service: RuntimeService) -> int:
    return len(service.jobs(limit=None))


def test_sampler_returns_bell_counts_for_a_bare_circuit(service: RuntimeService) -> None:
    sampler = SamplerV2(mode="aer_simulator", service=service, options={"default_shots": 400})
    job = sampler.run([bell()])
    result = job.result()
    assert type(result) is PrimitiveResult
    counts = result[0].data.meas.get_counts()
    assert set(counts) == {"00", "11"}
    assert sum(counts.values()) == 400
    assert 100 < counts["00"] < 300
    assert job.program_id == "sampler"
    assert isinstance(sampler, BaseSamplerV2)
    assert Sampler is SamplerV2


def test_a_jobs_metrics_say_when_its_worker_began_and_where_the_time_went(
    service: RuntimeService,
) -> None:
    sampler = SamplerV2(mode="aer_simulator", service=service)
    job = sampler.run([bell()], shots=100)
    job.result()
    metrics = job.metrics()
    timing = metrics["timing"]
    assert set(timing) == {"started", "decode", "run", "encode"}
    assert all(0 <= timing[stage] < 60 for stage in ("decode", "run", "encode"))
    stamps = {name: datetime.fromisoformat(value) for name, value in metrics["timestamps"].items()}
    began = datetime.fromisoformat(timing["started"])
    assert stamps["created"] <= began <= stamps["finished"]


def test_the_same_sampler_job_submitted_again_runs_again(service: RuntimeService) -> None:
    """Inputs the server checked once are not checked again: the job still runs, anew."""
    sampler = SamplerV2(mode="aer_simulator", service=service)
    jobs = [sampler.run([bell()], shots=300) for _ in range(3)]
    assert len({job.job_id() for job in jobs}) == 3
    for job in jobs:
        counts = job.result()[0].data.meas.get_counts()
        assert set(counts) <= {"00", "11"}
        assert sum(counts.values()) == 300


def test_an_estimator_loop_with_new_values_runs_each_set_of_values(
    service: RuntimeService,
) -> None:
    """A loop's later jobs differ from the first only in their parameter values: the
    server checks them on its shortest path, and each job still runs its own values."""
    from qiskit.quantum_info import Statevector

    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.ry(theta, 0)
    observable = SparsePauliOp("Z")
    estimator = EstimatorV2(mode="aer_simulator", service=service)
    estimator.options.default_precision = 0.001
    for angle in (0.0, 1.0, 2.5, 3.0):
        result = estimator.run([(circuit, observable, [angle])]).result()
        exact = Statevector(circuit.assign_parameters([angle])).expectation_value(observable)
        assert abs(float(result[0].data.evs) - exact.real) < 0.01


def test_a_users_next_sampler_job_reuses_what_the_worker_prepared(
    service: RuntimeService,
) -> None:
    """A pooled worker keeps what it derived from a circuit (the plan, its exact
    probabilities) for the same user's next job, which says so in its metrics, and still
    draws shots of its own."""
    sampler = SamplerV2(mode="aer_simulator", service=service)
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure_all()
    first = sampler.run([circuit], shots=2000)
    first_bits = first.result()[0].data.meas
    second = sampler.run([circuit], shots=2000)
    second_bits = second.result()[0].data.meas
    assert second.metrics()["cache"]["preparation_hits"] >= 2
    assert not np.array_equal(first_bits.array, second_bits.array)
    counts = second_bits.get_counts()
    assert set(counts) == {"000", "111"}
    assert abs(counts["000"] - 1000) < 200


def test_sampler_in_a_session_returns_ghz_counts(service: RuntimeService) -> None:
    ghz = QuantumCircuit(4)
    ghz.h(0)
    for q in range(3):
        ghz.cx(q, q + 1)
    ghz.measure_all()
    with Session(service=service, backend="aer_simulator") as session:
        sampler = SamplerV2(mode=session, options={"default_shots": 200, "seed_simulator": 5})
        job = sampler.run([ghz])
        counts = job.result()[0].data.meas.get_counts()
    assert set(counts) == {"0000", "1111"}
    assert job.session_id == session.session_id is not None


def test_sampler_sweep_keeps_the_parameter_array_shape(service: RuntimeService) -> None:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.rx(b, 1)
    qc.measure_all()
    values = np.array([[0, 0], [np.pi, 0], [np.pi, np.pi]])  # 3 sets of 2 parameters
    sampler = SamplerV2(mode=service.backend("aer_simulator"), options={"default_shots": 50})
    data = sampler.run([(qc, values)]).result()[0].data
    assert data.meas.shape == (3,)
    assert data.meas.num_shots == 50
    assert [data.meas[i].get_counts() for i in range(3)] == [{"00": 50}, {"01": 50}, {"11": 50}]


def test_issue_example_runs_on_a_noisy_device_in_a_session(service: RuntimeService) -> None:
    ansatz = real_amplitudes(3, reps=1)
    hamiltonian = SparsePauliOp(["ZZI", "IZZ", "XXX"], [1.0, 1.0, 0.5])
    params = np.random.default_rng(1).uniform(size=(2, ansatz.num_parameters))
    with Session(service=service, backend="fake_27q") as session:
        sampler = SamplerV2(mode=session, options={"default_shots": 4000})
        counts = sampler.run([bell()]).result()[0].data.meas.get_counts()
        estimator = EstimatorV2(mode=session, options={"resilience_level": 2, "seed_simulator": 2})
        result = estimator.run([(ansatz, hamiltonian, params)]).result()
    assert sum(counts.values()) == 4000
    assert counts["00"] + counts["11"] > 3400  # noisy, but mostly a Bell pair
    exact = StatevectorEstimator().run([(ansatz, hamiltonian, params)]).result()[0].data.evs
    assert result.metadata["options"]["resilience"]["zne_mitigation"] is True
    assert np.all(np.abs(result[0].data.evs - exact) < 0.2)


def test_sampler_pub_shots_and_run_shots_override_the_default(service: RuntimeService) -> None:
    sampler = Sampler(mode="aer_simulator", service=service, options={"default_shots": 10})
    result = sampler.run([bell(), (bell(), None, 30)], shots=20).result()
    assert [r.data.meas.num_shots for r in result] == [20, 30]


def test_estimator_matches_the_statevector_within_statistical_error(
    service: RuntimeService,
) -> None:
    theta = [Parameter(f"t{i}") for i in range(3)]
    ansatz = QuantumCircuit(3)
    for q in range(3):
        ansatz.ry(theta[q], q)
    ansatz.cx(0, 1)
    ansatz.cx(1, 2)
    hamiltonian = SparsePauliOp(["ZZI", "IXX", "YIY", "ZII"], [0.5, -0.8, 0.3, 1.2])
    params = np.array([[0.1, 0.7, -1.2], [1.5, -0.3, 0.4]])
    estimator = EstimatorV2(
        mode="aer_simulator",
        service=service,
        options={"default_precision": 0.01, "seed_simulator": 11},
    )
    result = estimator.run([(ansatz, hamiltonian, params)]).result()
    data = result[0].data
    exact = StatevectorEstimator().run([(ansatz, hamiltonian, params)]).result()[0].data.evs
    assert isinstance(estimator, BaseEstimatorV2)
    assert Estimator is EstimatorV2
    assert data.evs.shape == (2,)
    assert np.all(data.stds > 0)
    assert np.all(np.abs(data.evs - exact) < 5 * data.stds + 1e-9)


def test_estimator_in_a_batch_broadcasts_observables(service: RuntimeService) -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    with Batch(service=service, backend="aer_simulator") as batch:
        estimator = Estimator(batch, {"default_shots": 200, "resilience_level": 0})
        evs = estimator.run([(qc, [["ZZ"], ["XX"], ["ZI"]])]).result()[0].data.evs
    assert evs.shape == (3, 1)
    # Exact values plus noise of 1 / sqrt(200) on the ideal simulator: within 5 sigma.
    assert np.all(np.abs(evs[:, 0] - [1.0, 1.0, 0.0]) < 0.35)


def test_legacy_options_object_is_mapped_to_the_v2_options(service: RuntimeService) -> None:
    with Session(service=service, backend="aer_simulator") as session:
        legacy = Options(optimization_level=3, execution={"shots": 123})
        legacy.simulator.seed_simulator = 3
        sampler = Sampler(session=session, options=legacy)
        result = sampler.run([bell()]).result()
    assert result[0].data.meas.num_shots == 123
    applied = result.metadata["options"]
    assert (applied["optimization_level"], applied["seed_simulator"]) == (3, 3)


def test_options_edited_after_construction_apply_to_the_next_job(
    service: RuntimeService,
) -> None:
    sampler = SamplerV2(mode="aer_simulator", service=service, options=SamplerOptions())
    sampler.options.default_shots = 17
    sampler.options.environment.job_tags = ["edited"]
    job = sampler.run([bell()])
    assert job.result()[0].data.meas.num_shots == 17
    assert service.job(job.job_id()).tags == ["edited"]


def test_unknown_option_is_refused_before_any_request(service: RuntimeService) -> None:
    before = job_count(service)
    with pytest.raises(InputValueError, match=r"options\.shots.*default_shots"):
        SamplerV2(mode="aer_simulator", service=service, options={"shots": 100})
    with pytest.raises(InputValueError, match=r"options\.resilience\.zne\.factors"):
        EstimatorV2(
            mode="aer_simulator",
            service=service,
            options={"resilience": {"zne": {"factors": [1, 3]}}},
        )
    sampler = SamplerV2(mode="aer_simulator", service=service)
    with pytest.raises(InputValueError, match=r"TwirlingOptions\.enable .*enable_gates"):
        sampler.options.twirling.enable = True
    sampler.options.default_shots = -4  # only names are checked on assignment...
    with pytest.raises(InputValueError, match="default_shots"):
        sampler.run([bell()])  # ...values before the job is submitted
    assert job_count(service) == before


def hadamard_without_measurement() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    return qc


def with_two_parameters() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.rx(Parameter("a"), 0)
    qc.rz(Parameter("b"), 0)
    qc.measure_all()
    return qc


def wide(num_qubits: int) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits)
    qc.h(range(num_qubits))
    qc.measure_all()
    return qc


@pytest.mark.parametrize(
    ("kind", "mode", "pubs", "run_kwargs", "message"),
    [
        ("sampler", "fake_5q", [wide(6)], {}, "6 qubits"),  # checked by the server
        ("sampler", "object:fake_5q", [wide(6)], {}, "6 qubits"),  # checked by the client
        (
            "estimator",
            "aer_simulator",
            [(bell().remove_final_measurements(False), "ZZZ")],
            {},
            "qubits",
        ),
        ("sampler", "aer_simulator", [(with_two_parameters(), [[0.1, 0.2, 0.3]])], {}, "2 param"),
        (
            "estimator",
            "aer_simulator",
            [(hadamard_without_measurement(), "Z", [0.5])],
            {},
            "without",
        ),
        ("sampler", "aer_simulator", [hadamard_without_measurement()], {}, "no measurements"),
        ("sampler", "aer_simulator", [bell()], {"shots": -5}, "shots must be"),
        ("sampler", "aer_simulator", [(bell(), None, -5)], {}, "shots must be"),
        ("estimator", "aer_simulator", [(bell(), "ZZ")], {"precision": 0}, "precision must be"),
        ("sampler", "aer_simulator", [], {}, "non-empty"),
        ("sampler", "aer_simulator", bell, {}, "list of PUBs"),
    ],
    ids=[
        "too-wide-by-name",
        "too-wide-by-object",
        "observable-width",
        "parameter-shape",
        "values-without-parameters",
        "no-measurements",
        "negative-run-shots",
        "negative-pub-shots",
        "zero-precision",
        "no-pubs",
        "not-a-list",
    ],
)
def test_bad_input_raises_input_value_error_and_runs_nothing(
    service: RuntimeService,
    kind: str,
    mode: str,
    pubs: Any,
    run_kwargs: dict[str, Any],
    message: str,
) -> None:
    before = job_count(service)
    target: Any = service.backend(mode.split(":")[1]) if mode.startswith("object:") else mode
    primitive = (SamplerV2 if kind == "sampler" else EstimatorV2)(mode=target, service=service)
    with pytest.raises(InputValueError, match=message):
        primitive.run(pubs, **run_kwargs)
    assert job_count(service) == before


def test_other_clients_can_run_the_sampler_program_with_the_same_inputs(
    service: RuntimeService,
) -> None:
    inputs = {"pubs": [[bell(), None, 64]], "options": {"seed_simulator": 1}, "version": 2}
    job = service.run("sampler", inputs, options={"backend": "aer_simulator"})
    assert job.result()[0].data.meas.num_shots == 64


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "aer_simulator", "session": "x"},
        {"mode": 42},
    ],
    ids=["no-mode", "two-modes", "not-a-mode"],
)
def test_primitive_without_one_clear_mode_is_refused(
    service: RuntimeService, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InputValueError, match="mode"):
        SamplerV2(service=service, **kwargs)


def test_a_primitive_of_the_wrong_kind_of_options_is_refused(service: RuntimeService) -> None:
    from qruntime.client._options import EstimatorOptions

    with pytest.raises(InputValueError, match="EstimatorOptions"):
        SamplerV2(mode="aer_simulator", service=service, options=EstimatorOptions())
