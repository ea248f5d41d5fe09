"""Nothing accepted is lost: SIGKILL the server with jobs queued and running, start it again."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from bench.harness import free_port, start_server

from qruntime import RuntimeService
from qruntime.programs.hello_world import FINAL_MESSAGE

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    if kwargs.get("publish"):
        user_messenger.publish("started")
    time.sleep(kwargs.get("seconds", 0))
    return kwargs.get("label")
"""


def start(db: Path, config: Path, token: str, port: int) -> subprocess.Popen[bytes]:
    return start_server(db, token=token, port=port, config=config)


def _deployment(tmp_path: Path) -> tuple[Path, Path, str, int, str]:
    """Database, config (a one-lane backend), admin token, port and URL of a server to come."""
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    port = free_port()
    token = "qrt_recovery_" + secrets.token_hex(8)
    return tmp_path / "q.db", config, token, port, f"http://127.0.0.1:{port}"


@pytest.mark.slow
def test_jobs_survive_a_sigkill_of_the_server(tmp_path: Path) -> None:
    db, config, token, port, url = _deployment(tmp_path)
    server = start(db, config, token, port)
    with RuntimeService(url=url, token=token) as service:
        program_id = service.upload_program(
            data=SLEEPER,
            metadata={"name": "sleeper", "description": "sleeps", "max_execution_time": 120},
        )
        published = service.run(
            program_id,
            inputs={"seconds": 30, "publish": True, "label": "p"},
            options={"backend": "one_lane"},
        )
        deadline = time.monotonic() + 30
        while not published.interim_results():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        queued = [
            service.run(
                program_id,
                inputs={"seconds": 0.05, "label": f"q{i}"},
                options={"backend": "one_lane"},
            )
            for i in range(4)
        ]
        # built-in jobs too: after the restart they start from specs read ahead
        queued += [
            service.run("hello-world", inputs={"iterations": 1}, options={"backend": "one_lane"})
            for _ in range(3)
        ]
        ids = [job.job_id() for job in queued]
    server.kill()  # SIGKILL to the server alone: its workers must die with it
    server.wait(timeout=30)

    server = start(db, config, token, port)
    try:
        with RuntimeService(url=url, token=token) as service:
            failed = service.job(published.job_id())
            failed.wait_for_final_state(timeout=60)
            assert "server restarted" in (failed.error_message() or "")
            results = [service.job(job_id).result(timeout=60) for job_id in ids]
            assert results == [f"q{i}" for i in range(4)] + [FINAL_MESSAGE] * 3
            started = [service.job(job_id).metrics()["timestamps"]["running"] for job_id in ids]
            assert started == sorted(started), "queued jobs kept their order"
            assert service.jobs(pending=True) == []
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_job_running_at_the_kill_is_run_again(tmp_path: Path) -> None:
    db, config, token, port, url = _deployment(tmp_path)
    server = start(db, config, token, port)
    with RuntimeService(url=url, token=token) as service:
        program_id = service.upload_program(
            data=SLEEPER,
            metadata={"name": "sleeper", "description": "sleeps", "max_execution_time": 120},
        )
        job = service.run(
            program_id, inputs={"seconds": 2, "label": "again"}, options={"backend": "one_lane"}
        )
        deadline = time.monotonic() + 30
        while job.status().name != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    server.kill()
    server.wait(timeout=30)

    server = start(db, config, token, port)
    try:
        with RuntimeService(url=url, token=token) as service:
            assert service.job(job.job_id()).result(timeout=60) == "again"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_sessions_and_their_clocks_survive_a_restart(tmp_path: Path) -> None:
    from qruntime import Session

    db, config, token, port, url = _deployment(tmp_path)

    server = start(db, config, token, port)
    with RuntimeService(url=url, token=token) as service:
        session = Session(service=service, backend="one_lane", max_time=3600)
        session.run("hello-world", inputs={"iterations": 0}).result(timeout=60)
        before = session.details()
    server.kill()
    server.wait(timeout=30)

    server = start(db, config, token, port)
    try:
        with RuntimeService(url=url, token=token) as service:
            again = Session.from_id(before["id"], service=service)
            after = again.details()
            assert after["activated_at"] == before["activated_at"]
            assert after["max_time"] == 3600
            assert after["accepting_jobs"] is True
            assert again.run("hello-world", inputs={"iterations": 0}).result(timeout=60)
            assert again.details()["elapsed_time"] >= before["elapsed_time"]
            again.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
