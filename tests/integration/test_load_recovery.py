"""Nothing lost under load: SIGKILL the server while 4 threads submit and await jobs.

Each job is a Bell ``circuit-runner`` job with its own shot count, so a result can be
checked to belong to its job. A submit the server could not answer (it was down) is
retried by the client thread until the restarted server takes it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.harness import free_port, start_server
from qiskit import QuantumCircuit

from qruntime import encoding

JOBS = 60
THREADS = 4
FINAL = {"Completed", "Failed", "Cancelled"}


def start(db: Path, token: str, port: int) -> subprocess.Popen[bytes]:
    return start_server(db, token=token, port=port)


def bell() -> Any:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return json.loads(encoding.dumps(qc))


@dataclass
class Client:
    """One thread's HTTP client; logs in again when the server forgot its access token."""

    url: str
    api_token: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send, retrying through the server's outage (connection errors, 401 after it)."""
        deadline = time.monotonic() + 90
        while True:
            try:
                if not self.headers:
                    reply = self.http.post(
                        "/users/loginWithToken", json={"apiToken": self.api_token}
                    )
                    reply.raise_for_status()
                    self.headers = {"Authorization": f"Bearer {reply.json()['id']}"}
                reply = self.http.request(method, path, headers=self.headers, **kwargs)
                if reply.status_code == 401:
                    self.headers = {}
                    continue
                if reply.status_code < 500:
                    return reply
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{method} {path} failed for 90 s"
            time.sleep(0.1)


def worker(client: Client, indices: list[int], outcome: dict[int, list[str]]) -> None:
    circuit = bell()
    for index in indices:
        body = {
            "program_id": "circuit-runner",
            "backend": "aer_simulator",
            "params": {"circuits": circuit, "shots": 100 + index},
        }
        reply = client.request("POST", "/jobs", json=body)
        assert reply.status_code == 201, reply.text
        job_id = reply.json()["id"]
        outcome[index].append(job_id)
        while (
            client.request("GET", f"/jobs/{job_id}/wait", params={"timeout": 5}).json()["status"]
            not in FINAL
        ):
            pass


@pytest.mark.slow
def test_no_job_is_lost_when_the_server_is_killed_under_load(tmp_path: Path) -> None:
    db = tmp_path / "load.db"
    token = "qrt_load_" + secrets.token_hex(8)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(db, token, port)
    clients: list[Client] = []
    try:
        with httpx.Client(base_url=url) as admin:
            access = admin.post("/users/loginWithToken", json={"apiToken": token}).json()["id"]
            tokens = [
                admin.post(
                    "/users",
                    json={"name": f"load{i}"},
                    headers={"Authorization": f"Bearer {access}"},
                ).json()["token"]
                for i in range(2)
            ]
        clients += [Client(url, tokens[t % 2]) for t in range(THREADS)]
        outcome: dict[int, list[str]] = {i: [] for i in range(JOBS)}
        threads = [
            threading.Thread(
                target=worker, args=(clients[t], list(range(t, JOBS, THREADS)), outcome)
            )
            for t in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while sum(bool(ids) for ids in outcome.values()) < JOBS // 3:
            assert time.monotonic() < deadline, "the first third of the jobs was not submitted"
            time.sleep(0.01)
        assert sum(bool(ids) for ids in outcome.values()) < JOBS, "killed mid-way"
        server.kill()  # SIGKILL to the server alone, mid-load
        server.wait(timeout=30)
        time.sleep(0.5)  # let the clients hit the dead port
        server = start(db, token, port)
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a client thread hung"
        assert all(outcome[i] for i in range(JOBS)), "every job was submitted in the end"

        for index, job_ids in outcome.items():
            owner = clients[index % THREADS]
            job_id = job_ids[-1]
            job = owner.request("GET", f"/jobs/{job_id}").json()
            assert job["status"] == "Completed", (index, job)
            reply = owner.request("GET", f"/jobs/{job_id}/results")
            counts = encoding.loads(reply.text)["results"][0]["data"]["counts"]
            assert set(counts) <= {"0x0", "0x3"}
            assert sum(counts.values()) == 100 + index, "the result belongs to this job"
        for client in clients:
            pending = client.request("GET", "/jobs", params={"pending": True}).json()
            assert pending["count"] == 0
    finally:
        for client in clients:
            client.http.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
