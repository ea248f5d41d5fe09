"""What the client shows of a server, as in qiskit-ibm-runtime: usage, the least busy
backend, sessions, backend and job status, and readable reprs; and ``GET /sessions``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from qruntime import (
    BackendNotFoundError,
    BackendStatus,
    Batch,
    InputValueError,
    QRuntimeError,
    RemoteBackend,
    Session,
)

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(kwargs.get("seconds", 0))
    return "slept"
"""


def sleeper(service: Any) -> str:
    return service.upload_program(
        data=SLEEPER,
        metadata={"name": "sleeper", "description": "sleeps", "max_execution_time": 60},
    )


def test_backend_status_least_busy_and_repr(server: Any) -> None:
    service = server.service()
    backend = service.backend("fake_27q")
    assert repr(backend) == "<RemoteBackend 'fake_27q' 27 qubits, device-like>"
    assert str(service.backend("aer_simulator")).startswith("<RemoteBackend 'aer_simulator' ")
    status = backend.status()
    assert status == BackendStatus(
        backend_name="fake_27q",
        backend_version=status.backend_version,
        operational=True,
        pending_jobs=0,
        status_msg="active",
    )
    assert status.to_dict()["pending_jobs"] == 0

    # Three jobs wait on fake_5q's one lane (one runs): it is the busiest.
    program_id = sleeper(service)
    jobs = [
        service.run(program_id, {"seconds": 2}, options={"backend": "fake_5q"}) for _ in range(3)
    ]
    assert service.backend("fake_5q").status().pending_jobs >= 1
    assert service.least_busy(min_num_qubits=5, simulator=False).name == "fake_27q"
    assert service.least_busy().name == "aer_simulator"  # the first on a tie
    picked = service.least_busy(filters=lambda b: b.name == "fake_5q")
    assert picked.name == "fake_5q"
    with pytest.raises(BackendNotFoundError, match="No operational backend"):
        service.least_busy(min_num_qubits=1000)
    for job in jobs:
        job.cancel()


def test_a_backend_made_by_hand_has_no_status_to_ask() -> None:
    configuration = {"backend_name": "by_hand", "n_qubits": 1, "basis_gates": ["x"]}
    with pytest.raises(QRuntimeError, match=r"service\.backend"):
        RemoteBackend(configuration, None).status()


def test_usage_counts_the_seconds_of_your_jobs(server: Any) -> None:
    service = server.service(server.add_user("ann"))
    assert service.usage()["usage_consumed_seconds"] == 0
    job = service.run(sleeper(service), {"seconds": 0.5}, options={"backend": "aer_simulator"})
    job.result(timeout=60)
    usage = service.usage()
    assert usage["usage_consumed_seconds"] >= 0.5
    assert usage["usage_limit_seconds"] is None
    assert usage["usage_limit_reached"] is False
    assert job.usage() == pytest.approx(job.metrics()["usage"]["seconds"])
    assert job.usage() >= 0.5


def test_job_usage_is_zero_until_final_unless_partial(server: Any) -> None:
    service = server.service()
    job = service.run(sleeper(service), {"seconds": 3}, options={"backend": "aer_simulator"})
    deadline = time.monotonic() + 30
    while job.status().name != "RUNNING":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    assert job.usage() == 0
    assert job.usage(partial=True) > 0
    job.cancel()


def test_job_repr_shows_its_program_backend_and_status(server: Any) -> None:
    service = server.service()
    job = service.run("hello-world", {}, options={"backend": "aer_simulator"})
    job.wait_for_final_state(timeout=60)
    text = repr(job)
    assert text.startswith(f"<RuntimeJob id={job.job_id()!r} program='hello-world' ")
    assert "backend='aer_simulator' status='DONE' created='" in text
    listed = service.jobs(limit=1)
    assert repr(listed[0]) == text


def test_sessions_lists_yours_with_filters_and_paging(make_server: Any) -> None:
    # A dedicated session keeps its lane for the interactive timeout: keep that short.
    server = make_server(interactive_ttl=1)
    service = server.service()
    ids = []
    for backend in ("aer_simulator", "fake_5q", "aer_simulator"):
        session = Session(service=service, backend=backend)
        session.run("hello-world", inputs={"iterations": 1}).result(timeout=60)
        ids.append(session.session_id)
        if backend == "aer_simulator":
            session.close()
    with Batch(service=service, backend="aer_simulator") as batch:
        batch.run("hello-world", inputs={"iterations": 1}).result(timeout=60)
    ids.append(batch.session_id)
    newest_first = list(reversed(ids))

    found = service.sessions(limit=None)
    assert [s.session_id for s in found] == newest_first
    assert isinstance(found[0], Batch)
    assert type(found[1]) is Session
    assert found[2].backend() == "fake_5q"
    assert [s.session_id for s in service.sessions(limit=2, skip=1)] == newest_first[1:3]
    oldest = service.sessions(limit=1, descending=False)
    assert [s.session_id for s in oldest] == [ids[0]]
    assert [s.session_id for s in service.sessions(backend_name="fake_5q")] == [ids[1]]
    assert [s.session_id for s in service.sessions(mode="batch")] == [ids[3]]
    closed = {s.session_id for s in service.sessions(pending=False)}
    assert closed == {ids[0], ids[2], ids[3]}
    assert [s.session_id for s in service.sessions(pending=True)] == [ids[1]]
    assert {s.session_id for s in service.sessions(state="closed")} == closed
    assert service.sessions(state="closed", pending=True) == []
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert service.sessions(created_after=later) == []
    assert len(service.sessions(created_before=later, limit=None)) == 4
    assert found[2].details()["backend_name"] == "fake_5q"
    assert found[3].status() == "Closed"

    # Another user sees none of them, and the list says how many there are.
    other = server.service(server.add_user("other"))
    assert other.sessions() == []
    http = httpx.Client(base_url=server.url)
    token = http.post("/users/loginWithToken", json={"apiToken": server.admin_token}).json()["id"]
    page = http.get(
        "/sessions", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert page["count"] == 4
    assert [s["id"] for s in page["sessions"]] == [ids[3]]
    bad = http.get(
        "/sessions", params={"state": "sleepy"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_input"
    http.close()


def test_source_without_main_is_not_taken_for_a_path(server: Any) -> None:
    service = server.service()
    metadata = {"name": "nomain", "description": "d", "max_execution_time": 60}
    for source in ("x = 1\nprint(x)\n", "print('no main here')"):
        with pytest.raises(InputValueError, match=r"(?i)the program defines no main\(\)"):
            service.upload_program(data=source, metadata=metadata)
    with pytest.raises(InputValueError, match="nor a readable file"):
        service.upload_program(data="missing_program.py", metadata=metadata)


@pytest.mark.parametrize("method", ["PURGE", "PUT"])
def test_an_unknown_method_is_a_405_with_allow(server: Any, method: str) -> None:
    response = httpx.request(method, f"{server.url}/sessions")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    error = response.json()["error"]
    assert (error["code"], error["status_code"]) == ("method_not_allowed", 405)


def test_a_missing_token_or_an_api_token_as_bearer_says_how_to_log_in(server: Any) -> None:
    missing = httpx.get(f"{server.url}/jobs")
    assert missing.status_code == 401
    assert "POST /users/loginWithToken" in missing.json()["error"]["message"]
    as_bearer = httpx.get(
        f"{server.url}/jobs", headers={"Authorization": f"Bearer {server.admin_token}"}
    )
    assert as_bearer.status_code == 401
    body = as_bearer.json()["error"]
    assert body["message"].startswith("That is an API token, not an access token")
    assert "POST /users/loginWithToken" in body["message"]
    assert (body["code"], body["status_code"]) == ("not_authorized", 401)
    stale = httpx.get(f"{server.url}/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert "POST /users/loginWithToken" in stale.json()["error"]["message"]
    assert json.loads(stale.text)["errors"][0]["status_code"] == 401
