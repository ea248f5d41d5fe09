"""The job path end to end on each store: SQLite and PostgreSQL run the same statements."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.providers import JobStatus

from qruntime import RunnerResult, RuntimeInvalidStateError, Session
from qruntime.programs.hello_world import FINAL_MESSAGE

SLEEPER = "import time\ndef main(backend, user_messenger, **kw):\n    time.sleep(kw['seconds'])\n"


def test_jobs_sessions_and_cancels_work_on_each_store(
    make_server, db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    service = make_server(db_url=db_url, config_file=config, interactive_ttl=1).service()

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    job = service.run(
        "circuit-runner",
        inputs={"circuits": bell, "shots": 500},
        options={"backend": "aer_simulator"},
        result_decoder=RunnerResult,
    )
    counts = job.result(timeout=60).get_counts()
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == 500
    assert job.metrics()["timestamps"]["running"] is not None

    hello = service.run(
        "hello-world",
        inputs={"iterations": 2},
        options={"backend": "one_lane", "job_tags": ["greeting", "two"]},
    )
    assert hello.result(timeout=60) == FINAL_MESSAGE
    assert len(hello.interim_results()) == 2

    with Session(service=service, backend="one_lane", max_time=600) as session:
        in_session = session.run("hello-world", inputs={"iterations": 1})
        assert in_session.result(timeout=60) == FINAL_MESSAGE
        details = session.details()
        assert details is not None
        assert details["state"] == "active"
        assert details["activated_at"] is not None

    sleeper = service.upload_program(
        data=SLEEPER, metadata={"name": "sleeper", "description": "s", "max_execution_time": 60}
    )
    blocker = service.run(sleeper, inputs={"seconds": 30}, options={"backend": "one_lane"})
    deadline = time.monotonic() + 30
    while blocker.status() is not JobStatus.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queued = service.run("hello-world", inputs={"iterations": 1}, options={"backend": "one_lane"})
    queued.cancel()
    with pytest.raises(RuntimeInvalidStateError):
        queued.result(timeout=10)
    blocker.cancel()
    assert queued.status() is JobStatus.CANCELLED

    # Tags filter in SQL on either store: every tag asked for must be there.
    assert [j.job_id() for j in service.jobs(job_tags=["greeting"])] == [hello.job_id()]
    assert [j.job_id() for j in service.jobs(job_tags=["two", "greeting"])] == [hello.job_id()]
    assert service.jobs(job_tags=["greeting", "three"]) == []
    assert service.jobs(job_tags=["gree"]) == []

    listed = service.jobs(limit=3)
    assert [j.job_id() for j in listed] == [queued.job_id(), blocker.job_id(), in_session.job_id()]
    assert len(service.jobs(limit=100)) == 5
    service.delete_job(queued.job_id())
    assert len(service.jobs(limit=100)) == 4
