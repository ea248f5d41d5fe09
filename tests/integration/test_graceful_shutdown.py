"""A stopped server lets running jobs finish, up to its drain timeout, and loses none.

`qruntime serve` runs as systemd, Docker and a terminal's Ctrl-C stop it: a signal to
its whole process group, workers included. The server drains; the workers ignore the
signal and are stopped by the server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.harness import free_port, start_server

from qruntime import RuntimeService

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    if kwargs.get("publish"):
        user_messenger.publish("half-way")
    time.sleep(kwargs["seconds"])
    return kwargs["label"]
"""
BACKEND = "two_lanes"


@dataclass
class Deployment:
    """A `qruntime serve` on one database, started (and started again) in its own group."""

    path: Path
    drain_seconds: int
    token: str = field(default_factory=lambda: "qrt_drain_" + secrets.token_hex(8))
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.path / "q.db"

    def start(self) -> subprocess.Popen[bytes]:
        config = self.path / "q.toml"
        config.write_text(f'[backends.{BACKEND}]\nkind = "aer"\nlanes = 2\n')
        drain = str(self.drain_seconds)
        self.server = start_server(
            self.db, token=self.token, port=self.port, config=config, QRUNTIME_DRAIN_SECONDS=drain
        )
        return self.server

    def service(self) -> RuntimeService:
        return RuntimeService(url=self.url, token=self.token)

    def access_token(self) -> str:
        answer = httpx.post(f"{self.url}/users/loginWithToken", json={"apiToken": self.token})
        token: str = answer.raise_for_status().json()["id"]
        return token

    def stored(self, job_id: str) -> tuple[str, str | None]:
        """What the database says of a job (while no server runs)."""
        from qruntime.server.store import jobs as job_store
        from qruntime.server.store.database import Database

        db = Database(f"sqlite:///{self.db}")
        try:
            with db.session() as session:
                row = job_store.job_outcome(session, job_id=job_id)
                assert row is not None
                return row.status, row.reason
        finally:
            db.dispose()

    def kill(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=30)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Callable[[int], Deployment]]:
    made: list[Deployment] = []

    def make(drain_seconds: int) -> Deployment:
        made.append(Deployment(tmp_path, drain_seconds))
        return made[-1]

    yield make
    for each in made:
        each.kill()


def _long_poll(server: Deployment, job_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(
            f"{server.url}/jobs/{job_id}/results",
            params={"wait": 300},
            headers={"Authorization": f"Bearer {server.access_token()}"},
            timeout=400,
        )


def _upload(service: RuntimeService) -> str:
    metadata = {"name": "sleeper", "description": "sleeps", "max_execution_time": 300}
    program_id: str = service.upload_program(data=SLEEPER, metadata=metadata)
    return program_id


def _wait_running(job: Any) -> None:
    deadline = time.monotonic() + 60
    while job.status().name != "RUNNING":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_running_job_finishes_before_the_server_exits(
    deployment: Callable[[int], Deployment], signum: int
) -> None:
    server = deployment(120)
    process = server.start()
    with server.service() as service:
        program_id = _upload(service)
        job = service.run(
            program_id, inputs={"seconds": 4, "label": "done"}, options={"backend": BACKEND}
        )
        _wait_running(job)
        access = server.access_token()

        os.killpg(process.pid, signum)  # the whole group, as Ctrl-C or systemd would

        # While it drains, the server answers but takes no new job.
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").json()["status"] != "stopping":
            assert time.monotonic() < deadline, "the server did not start draining"
            time.sleep(0.05)
        refused = httpx.post(
            f"{server.url}/jobs",
            json={"program_id": program_id, "backend": BACKEND, "params": {}},
            headers={"Authorization": f"Bearer {access}"},
        )
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "service_unavailable"
        assert "shutting down" in error["message"]
        # A client waiting for the running job gets its result.
        assert job.result(timeout=120) == "done"
    process.wait(timeout=120)
    assert server.stored(job.job_id()) == ("Completed", None)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jobs_cut_short_by_the_drain_timeout_run_after_the_restart(
    deployment: Callable[[int], Deployment],
) -> None:
    server = deployment(1)
    process = server.start()
    with server.service() as service:
        program_id = _upload(service)
        plain = service.run(
            program_id, inputs={"seconds": 6, "label": "again"}, options={"backend": BACKEND}
        )
        seen = service.run(
            program_id,
            inputs={"seconds": 6, "label": "seen", "publish": True},
            options={"backend": BACKEND},
        )
        _wait_running(plain)
        deadline = time.monotonic() + 60
        while not seen.interim_results():
            assert time.monotonic() < deadline, "the publishing job did not publish"
            time.sleep(0.05)
    # A client long-polling for the result (up to 300 s) must not hold the stop.
    poll = threading.Thread(target=_long_poll, args=(server, plain.job_id()), daemon=True)
    poll.start()
    time.sleep(0.5)  # let the poll reach the server (it is not checked: only the exit is)
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=120)
    # Queued again by the stopping server itself, not by the next start's recovery.
    assert server.stored(plain.job_id()) == ("Queued", None)
    # Seen half-way by its user: not run twice (as after a crash).
    assert server.stored(seen.job_id()) == ("Failed", "server stopped while the job ran")

    server.start()
    with server.service() as service:
        assert service.job(plain.job_id()).result(timeout=120) == "again"
        assert "server stopped" in (service.job(seen.job_id()).error_message() or "")
