"""Jobs as the seed API's users expect them (issue 19's differences 1-3)."""

from __future__ import annotations

import logging
import time

import pytest

from qruntime import RuntimeJobFailureError, RuntimeJobMaxTimeoutError, RuntimeJobNotFound

AER = {"backend": "aer_simulator"}
SLEEPER = (
    "import time\n"
    "def main(backend, user_messenger, seconds=30, **kwargs):\n"
    "    print('started', flush=True)\n"
    "    time.sleep(seconds)\n"
    "    return 'slept'\n"
)


def upload(service, source: str, *, name: str, max_execution_time: int = 60) -> str:
    metadata = {"name": name, "description": name, "max_execution_time": max_execution_time}
    return str(service.upload_program(data=source, metadata=metadata))


def test_a_job_from_run_has_its_creation_date(server) -> None:
    service = server.service()
    before = time.time()
    job = service.run("hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"})
    assert job.creation_date is not None
    assert abs(job.creation_date.timestamp() - before) < 60
    job.result(timeout=60)
    assert job.creation_date == service.job(job.job_id()).creation_date


def test_logs_of_a_job_that_is_not_final_warn(server, caplog: pytest.LogCaptureFixture) -> None:
    service = server.service()
    job = service.run(upload(service, SLEEPER, name="sleeper"), inputs={}, options=AER)
    deadline = time.monotonic() + 60
    while job.status().name != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="qruntime.client"):
        job.logs()
    assert any(job.job_id() in r.getMessage() and "final" in r.getMessage() for r in caplog.records)
    job.cancel()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qruntime.client"):
        job.logs()
    assert not caplog.records  # a final job's logs are complete: no warning


def test_error_messages_are_worded_as_the_seed_clients(server) -> None:
    service = server.service()
    failing = "def main(backend, user_messenger, **kwargs):\n    raise ValueError('no luck')\n"
    job = service.run(upload(service, failing, name="fails"), inputs={}, options=AER)
    with pytest.raises(RuntimeJobFailureError):
        job.result(timeout=60)
    message = job.error_message() or ""
    assert message.startswith(f"Job {job.job_id()} has failed:\n")
    assert "ValueError: no luck" in message

    slow = service.run(
        upload(service, SLEEPER, name="slow", max_execution_time=1), inputs={}, options=AER
    )
    with pytest.raises(RuntimeJobMaxTimeoutError):
        slow.result(timeout=60)
    message = slow.error_message() or ""
    assert message.startswith(
        f"Job {slow.job_id()} ran longer than maximum execution time. Job was cancelled:\n"
    )
    assert "max_execution_time of 1 s" in message
    assert job.error_message() == service.job(job.job_id()).error_message()


def test_deleting_a_queued_and_a_running_job_cancels_them_first(
    make_server, db_url: str, tmp_path
) -> None:
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    server = make_server(db_url=db_url, config_file=config)
    service = server.service()
    sleeper = upload(service, SLEEPER, name="sleeper")
    running = service.run(sleeper, inputs={"seconds": 60}, options={"backend": "one_lane"})
    deadline = time.monotonic() + 60
    while running.status().name != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    queued = service.run("hello-world", inputs={"iterations": 1}, options={"backend": "one_lane"})
    assert queued.status().name == "QUEUED"

    service.delete_job(queued.job_id())
    service.delete_job(running.job_id())

    for job in (queued, running):
        with pytest.raises(RuntimeJobNotFound):
            service.job(job.job_id())
    executor = server.app.state.qruntime.runtime.executor
    assert running.job_id() not in executor._runs  # nothing of it is left running
    # The lane is free again: the next job runs at once.
    follow = service.run("hello-world", inputs={"iterations": 1}, options={"backend": "one_lane"})
    assert follow.result(timeout=60)
    assert [j.job_id() for j in service.jobs(limit=10)] == [follow.job_id()]


def test_a_failing_callback_is_logged_once_per_job_as_a_warning(
    server, caplog: pytest.LogCaptureFixture
) -> None:
    service = server.service()
    seen: list[int] = []

    def interim_only(job_id: str, message: dict) -> None:  # written for interim messages only
        seen.append(message["iteration"])

    with caplog.at_level(logging.DEBUG, logger="qruntime.client"):
        job = service.run(
            "hello-world", inputs={"iterations": 3}, options=AER, callback=interim_only
        )
        assert job.result(timeout=60)
    assert seen == [0, 1, 2]
    failures = [r for r in caplog.records if "callback" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.WARNING
    assert job.job_id() in failures[0].getMessage()
    assert failures[0].exc_info is None  # no traceback
