"""The unmodified qiskit-ibm-runtime client against a real qruntime server, set up by env only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.compat.conftest import CRN, CompatServer, point_client_at

pytestmark = pytest.mark.filterwarnings(
    "ignore:The (Sampler|Estimator)V2 class is deprecated:DeprecationWarning"
)


def _bell(measure: bool = True) -> Any:
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    if measure:
        circuit.measure_all()
    return circuit


def _isa(circuit: Any, backend: Any) -> Any:
    from qiskit.transpiler import generate_preset_pass_manager

    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)


def test_service_from_environment_lists_the_catalogue_with_targets(ibm_service: Any) -> None:
    names = {backend.name for backend in ibm_service.backends()}
    assert {"aer_simulator", "fake_5q", "fake_27q"} <= names
    device = ibm_service.backend("fake_5q")
    assert device.num_qubits == 5
    assert device.target.num_qubits == 5
    # The target carries the device's calibration: gate errors from the properties.
    error = next(
        props.error
        for props in device.target["sx"].values()
        if props is not None and props.error is not None
    )
    assert 0 < error < 0.1
    assert ibm_service.backend("aer_simulator").configuration().simulator is True
    assert ibm_service.least_busy(min_num_qubits=20).num_qubits >= 20


def test_unknown_backend_is_not_found(ibm_service: Any) -> None:
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    with pytest.raises(QiskitBackendNotFoundError):
        ibm_service.backend("no_such_backend")


def test_sampler_job_mode_runs_and_the_job_api_follows_it(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import RuntimeJobNotFound, SamplerV2

    backend = ibm_service.backend("fake_5q")
    job = SamplerV2(mode=backend).run([_isa(_bell(), backend)], shots=200)
    result = job.result(timeout=60)
    counts = result[0].data.meas.get_counts()
    assert sum(counts.values()) == 200
    assert counts.get("00", 0) + counts.get("11", 0) > 150
    assert job.status() == "DONE"
    assert isinstance(job.logs(), str)
    metrics = job.metrics()
    assert metrics["timestamps"]["finished"] is not None
    assert job.usage() >= 0.0

    job.update_tags(["compat-tag"])
    again = ibm_service.job(job.job_id())
    assert again.tags == ["compat-tag"]
    assert again.backend().name == "fake_5q"
    assert again.result()[0].data.meas.num_shots == 200
    # A job read back gives its inputs: the client asks for the params unless told not to.
    pubs = again.inputs["pubs"]
    assert len(pubs) == 1
    assert pubs[0][0].num_qubits == backend.num_qubits

    tagged = ibm_service.jobs(job_tags=["compat-tag"], backend_name="fake_5q", pending=False)
    assert [j.job_id() for j in tagged] == [job.job_id()]
    assert ibm_service.jobs(pending=True, backend_name="fake_5q") == []
    assert ibm_service.jobs(program_id="estimator", job_tags=["compat-tag"]) == []

    ibm_service.delete_job(job.job_id())
    with pytest.raises(RuntimeJobNotFound):
        ibm_service.job(job.job_id())


def test_estimator_job_mode_measures_a_bell_state(ibm_service: Any) -> None:
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import EstimatorV2

    backend = ibm_service.backend("fake_5q")
    isa = _isa(_bell(measure=False), backend)
    observable = SparsePauliOp("ZZ").apply_layout(isa.layout)
    estimator = EstimatorV2(mode=backend)
    estimator.options.default_shots = 2000
    job = estimator.run([(isa, observable)])
    value = float(job.result(timeout=60)[0].data.evs)
    # Readout mitigation (resilience level 1) can carry the estimate slightly past 1.
    assert 0.8 < value < 1.1


def test_session_mode_runs_jobs_and_reports_details(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import SamplerV2, Session

    backend = ibm_service.backend("fake_5q")
    with Session(backend=backend, max_time=600) as session:
        job = SamplerV2(mode=session).run([_isa(_bell(), backend)], shots=50)
        assert job.result(timeout=60)[0].data.meas.num_shots == 50
        assert job.session_id == session.session_id
        details = session.details()
        assert details is not None
        assert details["id"] == session.session_id
        assert details["mode"] == "dedicated"
        assert details["backend_name"] == "fake_5q"
        assert session.status() in ("Pending", "In progress, accepting new jobs")
        same = Session.from_id(session.session_id, service=ibm_service)
        assert same.session_id == session.session_id
        assert same.details()["id"] == session.session_id
        assert [j.job_id() for j in ibm_service.jobs(session_id=session.session_id)] == [
            job.job_id()
        ]
    # Leaving the block closed it: no new jobs.
    assert session.details()["accepting_jobs"] is False


def test_batch_mode_runs_its_jobs_in_a_batch_session(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import Batch, SamplerV2

    backend = ibm_service.backend("fake_5q")
    isa = _isa(_bell(), backend)
    with Batch(backend=backend) as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([isa], shots=30) for _ in range(2)]
        assert all(job.result(timeout=60)[0].data.meas.num_shots == 30 for job in jobs)
        assert batch.details()["mode"] == "batch"
    assert {job.session_id for job in jobs} == {batch.session_id}


def test_cancelled_session_and_cancelled_job(ibm_service: Any) -> None:
    """A dedicated session holds the 1-lane device, so an outside job waits and can be cancelled."""
    from qiskit_ibm_runtime import SamplerV2, Session

    backend = ibm_service.backend("fake_5q")
    isa = _isa(_bell(), backend)
    session = Session(backend=backend)
    SamplerV2(mode=session).run([isa], shots=10).result(timeout=60)
    outside = SamplerV2(mode=backend).run([isa], shots=10)
    # Queued while the session keeps the lane for its interactive timeout.
    assert outside.status() == "QUEUED"
    outside.cancel()
    assert ibm_service.job(outside.job_id()).status() == "CANCELLED"
    with pytest.raises(Exception, match="cancelled"):
        ibm_service.job(outside.job_id()).result()
    session.cancel()
    details = session.details()
    assert details["state"] == "closed"
    assert details["accepting_jobs"] is False


def test_usage_is_reported_without_limits(ibm_service: Any) -> None:
    usage = ibm_service.usage()
    assert usage["usage_limit_reached"] is False
    assert usage["usage_consumed_seconds"] >= 0.0
    assert usage["usage_remaining_seconds"] == 2**31 - 1  # a number: no limit


def test_backends_give_physical_qubits_and_refuse_unknown_calibrations(
    ibm_service: Any,
) -> None:
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    backend = ibm_service.backend("fake_27q")
    assert backend.physical_qubits == 27
    with pytest.raises(QiskitBackendNotFoundError):
        ibm_service.backend("fake_27q", calibration_id="invalid")


def test_jobs_are_shared_with_the_qruntime_client(
    ibm_service: Any, compat_server: CompatServer
) -> None:
    from qiskit_ibm_runtime import SamplerV2

    from qruntime import RuntimeService

    backend = ibm_service.backend("aer_simulator")
    ibm_job = SamplerV2(mode=backend).run([_isa(_bell(), backend)], shots=10)
    ibm_job.wait_for_final_state(timeout=60)
    with RuntimeService(url=compat_server.url, token=compat_server.admin_token) as own:
        seen = own.job(ibm_job.job_id())
        assert seen.program_id == "sampler"
        own_job = own.run(
            "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
        )
        own_job.result(timeout=60)
    theirs = ibm_service.job(own_job.job_id())
    assert theirs.status() == "DONE"
    assert theirs.primitive_id == "hello-world"


def test_token_exchange_checks_the_api_key_and_issues_expiring_tokens(
    compat_server: CompatServer,
) -> None:
    """What the client's IAM token manager posts; checked over HTTP because the client, once
    refused, waits 60 s before it asks again."""
    import base64
    import json

    import httpx

    grant = "urn:ibm:params:oauth:grant-type:apikey"
    url = compat_server.api_url + "/identity/token"
    refused = httpx.post(url, data={"grant_type": grant, "apikey": "qrt_wrong_key_000000"})
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"]
    answer = httpx.post(
        url,
        data={
            "grant_type": grant,
            "apikey": compat_server.admin_token,
            "response_type": "cloud_iam",
        },
    )
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == compat_server.settings.access_token_ttl
    headers = {"Authorization": f"Bearer {token}", "Service-CRN": CRN}
    assert httpx.get(compat_server.api_url + "/backends", headers=headers).status_code == 200
    # The raw API key is not an access token: the fallback the client tries is refused.
    raw = {"Authorization": f"apikey {compat_server.admin_token}", "Service-CRN": CRN}
    assert httpx.get(compat_server.api_url + "/backends", headers=raw).status_code == 401
    odd = {"Authorization": f"Bearer {token}", "Service-CRN": "not-a-crn"}
    assert httpx.get(compat_server.api_url + "/backends", headers=odd).status_code == 400


def test_users_see_only_their_own_jobs(
    ibm_service: Any, compat_server: CompatServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from qiskit_ibm_runtime import QiskitRuntimeService, RuntimeJobNotFound, SamplerV2

    backend = ibm_service.backend("aer_simulator")
    job = SamplerV2(mode=backend).run([_isa(_bell(), backend)], shots=5)
    point_client_at(monkeypatch, compat_server, compat_server.add_user("bob"), tmp_path)
    bob = QiskitRuntimeService()
    with pytest.raises(RuntimeJobNotFound):
        bob.job(job.job_id())
    assert bob.jobs() == []


def test_saved_account_works_like_the_environment(
    compat_server: CompatServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from qiskit_ibm_runtime import QiskitRuntimeService

    point_client_at(monkeypatch, compat_server, compat_server.admin_token, tmp_path)
    for name in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_INSTANCE"):
        monkeypatch.delenv(name)
    accounts = tmp_path / "accounts.json"
    QiskitRuntimeService.save_account(
        channel="ibm_quantum_platform",
        token=compat_server.admin_token,
        url=compat_server.api_url,
        instance=CRN,
        filename=str(accounts),
        set_as_default=True,
    )
    service = QiskitRuntimeService(filename=str(accounts))
    assert "fake_27q" in {backend.name for backend in service.backends()}


def test_session_status_and_timing_fields(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import Session

    session = Session(backend=ibm_service.backend("fake_27q"), max_time=120)
    try:
        assert session.session_id is not None
        assert session.status() == "Pending"
        assert session.details()["max_time"] == 120
    finally:
        session.close()
    assert session.details()["state"] == "closed"


def test_private_sampler_job_hides_its_inputs_and_gives_its_result_once(
    ibm_service: Any,
) -> None:
    from qiskit_ibm_runtime import SamplerV2

    backend = ibm_service.backend("aer_simulator")
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.private = True
    job = sampler.run([_isa(_bell(), backend)], shots=64)
    assert job.private is True
    counts = job.result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 64

    again = ibm_service.job(job.job_id())
    assert again.private is True
    assert again.inputs == {}
    with pytest.raises(Exception, match="read once"):
        again.result()
