"""Sessions and batches through a real server: priority, clocks, close, cancel, expiry."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from qruntime import Batch, RuntimeInvalidStateError, Session, SessionNotFoundError

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(kwargs.get("seconds", 0))
    return kwargs.get("label")
"""


@pytest.fixture
def one_lane(make_server, tmp_path: Path):
    """A server with a one-lane backend and a short interactive timeout."""
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    return make_server(config_file=config, interactive_ttl=1)


def sleeper(service, public: bool = True) -> str:
    return service.upload_program(
        data=SLEEPER,
        metadata={
            "name": "sleeper",
            "description": "sleeps",
            "max_execution_time": 120,
            "is_public": public,
        },
    )


def started(job) -> float:
    return datetime.fromisoformat(job.metrics()["timestamps"]["running"]).timestamp()


def ended(job) -> float:
    return datetime.fromisoformat(job.metrics()["timestamps"]["finished"]).timestamp()


def test_session_lifecycle_details_and_refusal_after_close(server) -> None:
    service = server.service()
    with Session(service=service, backend="aer_simulator", max_time="1h 30m") as session:
        assert session.session_id is None
        assert session.status() is None
        job = session.run("hello-world", inputs={"iterations": 1})
        assert session.session_id is not None
        assert job.session_id == session.session_id
        job.result(timeout=60)
        details = session.details()
        assert details is not None
        assert details["max_time"] == 5400
        assert details["mode"] == "dedicated"
        assert details["state"] == "active"
        assert details["accepting_jobs"] is True
        assert details["activated_at"] is not None
        assert session.status() == "In progress, accepting new jobs"
        assert session.usage() is not None
    assert session.status() == "Closed"
    with pytest.raises(RuntimeInvalidStateError):
        session.run("hello-world", inputs={})
    # the server refuses too, with the reason
    with pytest.raises(RuntimeInvalidStateError, match="closed"):
        service.run(
            "hello-world",
            inputs={},
            options={"backend": "aer_simulator", "session_id": session.session_id},
        )


def test_active_session_jobs_go_before_a_queue_and_release_it_after_the_timeout(one_lane) -> None:
    alice = one_lane.service(one_lane.add_user("alice"))
    bob = one_lane.service(one_lane.add_user("bob"))
    program_id = sleeper(alice)
    queue = [
        alice.run(program_id, inputs={"seconds": 0.15, "label": i}, options={"backend": "one_lane"})
        for i in range(20)
    ]
    queue[0].wait_for_final_state(timeout=60)
    session = Session(service=bob, backend="one_lane")
    first = session.run(program_id, inputs={"seconds": 0.05})
    first.result(timeout=60)
    # bob iterates: each job is submitted after the previous one ended
    follow = []
    for _ in range(3):
        job = session.run(program_id, inputs={"seconds": 0.05})
        job.result(timeout=60)
        follow.append(job)
    alice_starts = sorted(started(job) for job in queue if job.status().name != "QUEUED")
    window = (started(first), ended(follow[-1]))
    assert not [t for t in alice_starts if window[0] < t < window[1]], (
        "alice's jobs must not start while bob's session is active"
    )
    # after bob's interactive timeout, alice's queue resumes
    queue[-1].wait_for_final_state(timeout=120)
    resumed = min(t for t in (started(job) for job in queue) if t > window[1])
    assert resumed >= window[1] + 0.9
    details = session.details()
    assert details is not None
    assert details["state"] == "inactive"
    session.close()


def test_second_session_waits_until_the_first_is_inactive(one_lane) -> None:
    bob = one_lane.service(one_lane.add_user("bob"))
    carol = one_lane.service(one_lane.add_user("carol"))
    program_id = sleeper(bob)
    s1 = Session(service=bob, backend="one_lane")
    s2 = Session(service=carol, backend="one_lane")
    b1 = s1.run(program_id, inputs={"seconds": 0.1})
    b1.result(timeout=60)
    c1 = s2.run(program_id, inputs={"seconds": 0.05})
    b2 = s1.run(program_id, inputs={"seconds": 0.1})
    c1.result(timeout=60)
    b2.result(timeout=60)
    assert started(b2) < started(c1), "bob's active session keeps the backend"
    assert started(c1) >= ended(b2) + 0.9, "carol waits for bob's interactive timeout"
    s1.close()
    s2.close()


def test_fair_share_serves_a_newcomer_among_the_next_two(one_lane) -> None:
    alice = one_lane.service(one_lane.add_user("alice"))
    bob = one_lane.service(one_lane.add_user("bob"))
    program_id = sleeper(alice)
    flood = [
        alice.run(program_id, inputs={"seconds": 0.03}, options={"backend": "one_lane"})
        for _ in range(100)
    ]
    submitted = time.time()
    newcomer = bob.run(program_id, inputs={"seconds": 0.0}, options={"backend": "one_lane"})
    newcomer.result(timeout=120)
    before = [
        job
        for job in flood
        if job.status().name not in ("QUEUED",)
        and started(job) > submitted
        and started(job) < started(newcomer)
    ]
    assert len(before) <= 1, f"{len(before)} of alice's jobs started before bob's"
    for job in flood:
        if job.status().name == "QUEUED":
            job.cancel()


def test_close_lets_queued_jobs_finish(one_lane) -> None:
    service = one_lane.service()
    program_id = sleeper(service)
    session = Session(service=service, backend="one_lane")
    jobs = [session.run(program_id, inputs={"seconds": 0.2, "label": i}) for i in range(3)]
    session.close()
    assert [job.result(timeout=60) for job in jobs] == [0, 1, 2]
    deadline = time.monotonic() + 10
    while session.status() != "Closed":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_cancel_cancels_queued_jobs_and_lets_the_running_one_finish(one_lane) -> None:
    service = one_lane.service()
    program_id = sleeper(service)
    session = Session(service=service, backend="one_lane")
    jobs = [session.run(program_id, inputs={"seconds": 0.5, "label": i}) for i in range(3)]
    deadline = time.monotonic() + 30
    while jobs[0].status().name != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    session.cancel()
    assert jobs[0].result(timeout=60) == 0
    for job in jobs[1:]:
        assert job.status().name == "CANCELLED"
        assert "cancelled" in (job.error_message() or "")
    assert session.status() == "Closed"


def test_max_time_expiry_cancels_queued_jobs_with_a_reason(one_lane) -> None:
    service = one_lane.service()
    program_id = sleeper(service)
    session = Session(service=service, backend="one_lane", max_time=1)
    jobs = [session.run(program_id, inputs={"seconds": 0.6, "label": i}) for i in range(4)]
    assert jobs[0].result(timeout=60) == 0
    jobs[1].wait_for_final_state(timeout=60)
    for job in jobs[2:]:
        job.wait_for_final_state(timeout=60)
        assert job.status().name == "CANCELLED"
        assert "max_time" in (job.error_message() or "")
    details = session.details()
    assert details is not None
    assert details["state"] == "closed"
    assert "max_time" in (details["state_reason"] or "")
    with pytest.raises(RuntimeInvalidStateError, match="max_time"):
        session.run(program_id, inputs={})


def test_batch_jobs_overlap_in_time(server) -> None:
    service = server.service()
    program_id = sleeper(service)
    with Batch(service=service, backend="aer_simulator") as batch:
        jobs = [batch.run(program_id, inputs={"seconds": 1.0, "label": i}) for i in range(2)]
        assert [job.result(timeout=60) for job in jobs] == [0, 1]
    assert started(jobs[1]) < ended(jobs[0])
    assert batch.details()["mode"] == "batch"


@pytest.mark.parametrize("kind", [Session, Batch])
def test_threads_sharing_a_new_session_send_their_first_jobs_into_one_session(
    server, kind: type[Session]
) -> None:
    service = server.service()
    shared = kind(service=service, backend="aer_simulator")
    start = threading.Barrier(6)
    jobs = []

    def first_job() -> None:
        start.wait()
        jobs.append(shared.run("hello-world", inputs={"iterations": 0}))

    threads = [threading.Thread(target=first_job) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(jobs) == 6
    assert {job.session_id for job in jobs} == {shared.session_id}
    assert all(job.result(timeout=60) for job in jobs)
    assert len(service.jobs(session_id=shared.session_id, limit=20)) == 6
    shared.close()


def test_from_id_continues_a_session(server) -> None:
    service = server.service()
    session = Session(service=service, backend="aer_simulator")
    session.run("hello-world", inputs={"iterations": 0}).result(timeout=60)
    again = Session.from_id(session.session_id, service=service)
    assert again.backend() == "aer_simulator"
    job = again.run("hello-world", inputs={"iterations": 0})
    assert job.result(timeout=60)
    assert job.session_id == session.session_id
    assert {j.job_id() for j in service.jobs(session_id=session.session_id)} >= {job.job_id()}
    again.close()


def test_another_users_session_does_not_exist_for_them(server) -> None:
    alice = server.service(server.add_user("alice"))
    bob = server.service(server.add_user("bob"))
    session = Session(service=alice, backend="aer_simulator")
    session.run("hello-world", inputs={"iterations": 0}).result(timeout=60)
    with pytest.raises(SessionNotFoundError):
        Session.from_id(session.session_id, service=bob)
    with pytest.raises(SessionNotFoundError):
        bob.run(
            "hello-world",
            inputs={},
            options={"backend": "aer_simulator", "session_id": session.session_id},
        )
    session.close()


def test_job_on_another_backend_than_its_session_is_refused(server) -> None:
    from qruntime import InputValueError

    service = server.service()
    session = Session(service=service, backend="aer_simulator")
    session.run("hello-world", inputs={"iterations": 0}).result(timeout=60)
    with pytest.raises(InputValueError, match="aer_simulator"):
        service.run(
            "hello-world",
            inputs={},
            options={"backend": "fake_5q", "session_id": session.session_id},
        )


def test_per_user_queue_limit_is_a_clear_error(make_server, tmp_path: Path) -> None:
    from qruntime import QuotaExceededError

    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    small = make_server(config_file=config, max_queued_jobs_per_user=3)
    service = small.service()
    program_id = sleeper(service)
    jobs = []

    def submit_many() -> None:
        for _ in range(10):
            jobs.append(
                service.run(program_id, inputs={"seconds": 1}, options={"backend": "one_lane"})
            )

    with pytest.raises(QuotaExceededError, match="limit"):
        submit_many()
    assert 3 <= len(jobs) <= 4  # three queued, and perhaps one already running
    for job in jobs:
        job.cancel()


def _result_in_thread(job) -> tuple[threading.Thread, list[object]]:
    """Wait for ``job``'s result in a thread; the list gets (outcome, seconds waited)."""
    seen: list[object] = []

    def wait() -> None:
        begun = time.monotonic()
        try:
            seen.append(job.result(timeout=40))
        except Exception as exc:  # the outcome under test
            seen.append(exc)
        seen.append(time.monotonic() - begun)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, seen


def _wait_running(job) -> None:
    deadline = time.monotonic() + 30
    while job.status().name != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_cancelling_a_queued_job_wakes_its_waiter_and_frees_the_quota(
    make_server, tmp_path: Path
) -> None:
    from qruntime import QuotaExceededError

    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    small = make_server(config_file=config, max_queued_jobs_per_user=2)
    service = small.service()
    options = {"backend": "one_lane"}
    blocker = service.run(sleeper(service), inputs={"seconds": 30}, options=options)
    _wait_running(blocker)
    queued = service.run("hello-world", inputs={"iterations": 1}, options=options)
    other = service.run("hello-world", inputs={"iterations": 1}, options=options)
    with pytest.raises(QuotaExceededError):
        service.run("hello-world", inputs={}, options=options)
    thread, seen = _result_in_thread(queued)
    time.sleep(0.3)  # the waiter is parked on the server's long poll
    queued.cancel()
    thread.join(40)
    assert isinstance(seen[0], RuntimeInvalidStateError)
    assert seen[1] < 10  # woken by the cancel, not by the end of a poll
    # its place in the user's quota is free at once
    again = service.run("hello-world", inputs={"iterations": 1}, options=options)
    blocker.cancel()
    assert other.result(timeout=60) is not None
    assert again.result(timeout=60) is not None
    assert queued.status().name == "CANCELLED"


def test_cancelling_a_session_wakes_the_waiters_of_its_queued_jobs(one_lane) -> None:
    service = one_lane.service()
    blocker = service.run(sleeper(service), inputs={"seconds": 30}, options={"backend": "one_lane"})
    _wait_running(blocker)
    session = Session(service=service, backend="one_lane")
    job = session.run("hello-world", inputs={"iterations": 1})
    thread, seen = _result_in_thread(job)
    time.sleep(0.3)
    session.cancel()
    thread.join(40)
    assert isinstance(seen[0], RuntimeInvalidStateError)
    assert seen[1] < 10
    blocker.cancel()


def test_max_time_string_is_parsed_and_bad_ones_refused() -> None:
    from qruntime import InputValueError
    from qruntime.client._session import parse_max_time

    assert parse_max_time("2h 30m 40s") == 9040
    assert parse_max_time(90) == 90
    assert parse_max_time("45m") == 2700
    for bad in ("soon", "0", -5, "1d"):
        with pytest.raises(InputValueError):
            parse_max_time(bad)


def test_a_job_that_starts_its_own_session_runs_in_it(server) -> None:
    """``start_session`` on ``POST /jobs`` (qiskit-ibm-runtime 0.12's protocol): the first
    job opens a dedicated session whose id is the job's; it runs, and so does the next."""
    import httpx

    login = httpx.post(f"{server.url}/users/loginWithToken", json={"apiToken": server.admin_token})
    headers = {"Authorization": f"Bearer {login.json()['id']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        hello = {
            "program_id": "hello-world",
            "backend": "aer_simulator",
            "params": {"iterations": 1},
        }
        first = http.post("/jobs", json={**hello, "start_session": True, "session_time": 300})
        assert first.status_code == 201, first.text
        job_id = first.json()["id"]
        assert http.get(f"/jobs/{job_id}/results", params={"wait": 30}).status_code == 200
        session = http.get(f"/sessions/{job_id}").json()
        assert session["max_ttl"] == 300
        assert session["mode"] == "dedicated"
        second = http.post("/jobs", json={**hello, "session_id": job_id})
        assert second.status_code == 201, second.text
        reply = http.get(f"/jobs/{second.json()['id']}/results", params={"wait": 30})
        assert reply.status_code == 200
        assert http.get(f"/jobs/{second.json()['id']}").json()["status"] == "Completed"
