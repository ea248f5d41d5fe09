"""Private jobs: inputs never returned, the result read once and then deleted."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from qruntime import InputValueError, RuntimeInvalidStateError
from qruntime.server.store import jobs as job_store
from qruntime.server.store.database import Database

ECHO = """
def main(backend, user_messenger, **kwargs):
    for i in range(kwargs["n"]):
        user_messenger.publish({"i": i})
    return {"secret": kwargs["secret"], "n": kwargs["n"]}
"""


def _upload(service: Any) -> str:
    program_id: str = service.upload_program(
        data=ECHO,
        metadata={"name": "private-echo", "description": "echo", "max_execution_time": 60},
    )
    return program_id


def _stored(db_url: str, job_id: str) -> tuple[str, str | None, int]:
    """The job's stored params, result text and number of interim results."""
    db = Database(db_url)
    try:
        with db.session() as session:
            job = job_store.get_job(session, job_id=job_id)
            assert job is not None
            count = job_store.count_interim_results(session, job_id=job_id)
            return job.params, job.result, count
    finally:
        db.dispose()


def test_a_private_job_hides_its_inputs_and_gives_its_result_once(make_server, db_url) -> None:
    server = make_server(db_url)
    service = server.service()
    program_id = _upload(service)
    options = {"backend": "aer_simulator", "private": True}
    job = service.run(program_id, {"n": 2, "secret": "s3cr3t"}, options=options)
    assert job.private is True
    job.wait_for_final_state(timeout=60)

    # Ended: its inputs are gone from the store already; interim results are kept
    # until the result is read.
    params, result, interim = _stored(server.db_url, job.job_id())
    assert params == "{}"
    assert result is not None
    assert "s3cr3t" in result
    assert interim == 2

    again = service.job(job.job_id())
    assert again.private is True
    assert again.inputs == {}  # never returned, to anyone
    raw = httpx.get(
        f"{server.url}/jobs/{job.job_id()}",
        headers={"Authorization": f"Bearer {service._api.access_token}"},
    ).json()
    assert raw["private"] is True
    assert "params" not in raw

    assert job.result() == {"secret": "s3cr3t", "n": 2}
    assert job.result() == {"secret": "s3cr3t", "n": 2}  # kept by the client

    params, result, interim = _stored(server.db_url, job.job_id())
    assert (params, result, interim) == ("{}", None, 0)
    with pytest.raises(RuntimeInvalidStateError, match="read once"):
        service.job(job.job_id()).result()
    # The job itself stays, with its state, and can still be deleted.
    assert service.job(job.job_id()).status().name == "DONE"
    service.delete_job(job.job_id())


def test_a_public_job_keeps_its_inputs_and_result(server) -> None:
    service = server.service()
    program_id = _upload(service)
    job = service.run(program_id, {"n": 1, "secret": "open"}, options={"backend": "aer_simulator"})
    assert job.result(timeout=60) == {"secret": "open", "n": 1}
    again = service.job(job.job_id())
    assert again.private is False
    assert again.inputs == {"n": 1, "secret": "open"}
    assert again.result() == {"secret": "open", "n": 1}


def test_the_callback_and_result_share_the_one_read(server) -> None:
    service = server.service()
    program_id = _upload(service)
    heard: list[Any] = []
    done = threading.Event()

    def callback(job_id: str, message: Any) -> None:
        heard.append(message)
        if "secret" in message:
            done.set()

    options = {"backend": "aer_simulator", "private": True}
    job = service.run(program_id, {"n": 3, "secret": "x"}, options=options, callback=callback)
    assert job.result(timeout=60) == {"secret": "x", "n": 3}
    assert done.wait(30)
    assert heard == [{"i": 0}, {"i": 1}, {"i": 2}, {"secret": "x", "n": 3}]


def test_of_two_concurrent_reads_exactly_one_gets_the_result(server) -> None:
    service = server.service()
    program_id = _upload(service)
    job = service.run(
        program_id,
        {"n": 0, "secret": "once"},
        options={"backend": "aer_simulator", "private": True},
    )
    job.wait_for_final_state(timeout=60)
    readers = [server.service() for _ in range(4)]
    outcomes: list[Any] = []
    barrier = threading.Barrier(len(readers))

    def read(reader: Any) -> None:
        barrier.wait()
        try:
            outcomes.append(reader.job(job.job_id()).result())
        except RuntimeInvalidStateError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    results = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert results == [{"secret": "once", "n": 0}]
    assert len(outcomes) == len(readers)


def test_a_private_job_waited_for_while_it_runs_gives_its_result_to_one_waiter(server) -> None:
    service = server.service()
    program_id = service.upload_program(
        data="import time\ndef main(backend, user_messenger, **kwargs):\n"
        "    time.sleep(1.5)\n    return 7\n",
        metadata={"name": "slow", "description": "slow", "max_execution_time": 60},
    )
    job = service.run(program_id, {}, options={"backend": "aer_simulator", "private": True})
    other = service.job(job.job_id())
    outcomes: list[Any] = []

    def wait(handle: Any) -> None:
        try:
            outcomes.append(handle.result(timeout=60))
        except RuntimeInvalidStateError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=wait, args=(handle,)) for handle in (job, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(outcomes) == 2
    assert [outcome for outcome in outcomes if outcome == 7] == [7]
    refused = [outcome for outcome in outcomes if isinstance(outcome, RuntimeInvalidStateError)]
    assert len(refused) == 1
    assert "read once" in str(refused[0])


def test_private_must_be_a_boolean(server) -> None:
    service = server.service()
    with pytest.raises(InputValueError, match="private"):
        service.run("hello-world", {}, options={"backend": "aer_simulator", "private": "yes"})
