"""Two servers on one PostgreSQL, both with ``--executor ray`` on the same Ray cluster.

The leader owns a node host (a Ray actor, and the zygote it launched) on every node;
when the leader is killed, Ray ends the actors it owned, their zygotes go with them,
and the server that takes the lead starts hosts of its own and runs the jobs again
(those that ran at the kill, under the rule of a restart). Runs after `test_on_ray.py`
on the same cluster (its node-crash test leaves a fresh worker node).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from bench.harness import free_port, start_server, stop_server
from tests.integration.ray.conftest import RayServer

from qruntime import RuntimeService

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

COUNTED = """
import time

def main(backend, user_messenger, **kwargs):
    print("ran", kwargs["label"])
    time.sleep(kwargs["seconds"])
    return kwargs["label"]
"""

CONFIG = """
[backends.two_lanes]
kind = "aer"
lanes = 2
"""

ZYGOTE = "qruntime.worker.zygote"


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


def _zygotes(ray_server: RayServer) -> set[int]:
    """The zygotes that node hosts launched on the cluster's nodes (not their children)."""
    roots = {process.pid for process in ray_server.cluster.nodes if process.poll() is None}
    found = set()
    for process in psutil.process_iter():
        if ZYGOTE not in _cmdline(process):
            continue
        with contextlib.suppress(psutil.Error):
            parent = process.parent()
            if parent is not None and ZYGOTE in _cmdline(parent):
                continue  # a worker the zygote forked
            if {ancestor.pid for ancestor in process.parents()} & roots:
                found.add(process.pid)
    return found


def _leads(url: str) -> bool:
    return bool(httpx.get(f"{url}/health", timeout=10).json()["leader"])


def _ready_nodes(url: str, token: str) -> int:
    """How many nodes the server at ``url`` (the leader) has ready hosts on."""
    from qruntime.cli.connect import api_of

    with RuntimeService(url=url, token=token) as service:
        view = api_of(service).get_json("/cluster")
    return sum(bool(node["ready"]) for node in view["nodes"] or [])


def _wait(condition: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@dataclass
class Pair:
    """Two Ray-backed servers on one PostgreSQL database."""

    urls: list[str]
    processes: dict[str, subprocess.Popen[bytes]]
    token: str
    others: set[int]  # the zygotes of the hosts that were there before (the other server's)


@pytest.fixture
def pair(ray_server: RayServer, socket_postgres_url: str, tmp_path: Path) -> Iterator[Pair]:
    """Two Ray-backed servers started on one fresh PostgreSQL database once the
    single-server tests' server has its hosts on both nodes."""
    _wait(lambda: _ready_nodes(ray_server.url, ray_server.token) == 2, "no hosts yet")
    others = _zygotes(ray_server)
    config = tmp_path / "q.toml"
    config.write_text(CONFIG)
    token = "qrt_admin_" + secrets.token_hex(16)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for _ in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            processes[url] = start_server(
                socket_postgres_url, token=token, port=port, config=config, **ray_server.env
            )
        yield Pair(list(processes), processes, token, others)
    finally:
        for process in processes.values():
            stop_server(process)


def _dispatches(db_url: str) -> dict[str, int]:
    import psycopg

    from qruntime.server.store.cluster import conninfo

    with psycopg.connect(conninfo(db_url)) as conn:
        return {str(r[0]): int(r[1]) for r in conn.execute("SELECT id, dispatches FROM jobs")}


def test_sigkill_of_a_ray_leader_moves_its_hosts_and_jobs_to_the_other_server(
    ray_server: RayServer,
    socket_postgres_url: str,
    pair: Pair,
) -> None:
    urls, processes, token, others = pair.urls, pair.processes, pair.token, pair.others
    _wait(lambda: sum(map(_leads, urls)) == 1, "no single leader")
    leader = next(url for url in urls if _leads(url))
    survivor = next(url for url in urls if url != leader)
    _wait(lambda: _ready_nodes(leader, token) == 2, "the leader's hosts did not start")
    hosts = _zygotes(ray_server) - others
    assert len(hosts) == 2  # one per node, launched by the leader alone

    with RuntimeService(url=leader, token=token) as on_leader:
        program = on_leader.upload_program(
            data=COUNTED,
            metadata={"name": "counted", "description": "counts", "max_execution_time": 120},
        )
    labels = [f"r{i}" for i in range(10)]
    services = [RuntimeService(url=url, token=token) for url in urls]
    try:
        jobs = [
            services[i % 2].run(
                program, inputs={"label": label, "seconds": 0.4}, options={"backend": "two_lanes"}
            )
            for i, label in enumerate(labels)
        ]
        assert jobs[1].result(timeout=180) == "r1"  # the load is under way
    finally:
        for service in services:
            service.close()

    processes[leader].kill()  # SIGKILL to the server alone: Ray ends the actors it owned
    processes[leader].wait(timeout=30)
    _wait(lambda: _leads(survivor), "the survivor did not take the lead", 60)

    with RuntimeService(url=survivor, token=token) as service:
        for label, job in zip(labels, jobs, strict=True):
            assert service.job(job.job_id()).result(timeout=180) == label
        dispatches = _dispatches(socket_postgres_url)
        again = [job.job_id() for job in jobs if dispatches[job.job_id()] > 1]
        assert len(again) <= 2  # only what ran at the kill (two lanes) ran again
        for label, job in zip(labels, jobs, strict=True):
            runs = service.job(job.job_id()).logs().splitlines().count(f"ran {label}")
            if job.job_id() in again:
                assert 1 <= runs <= dispatches[job.job_id()]
            else:
                assert (dispatches[job.job_id()], runs) == (1, 1), label
        assert service.jobs(pending=True) == []

    # The dead leader's hosts and zygotes are gone; the new leader runs one per node.
    def moved() -> bool:
        now = _zygotes(ray_server) - others
        return not (now & hosts) and len(now) == 2

    _wait(moved, f"the hosts did not move: {hosts} -> {_zygotes(ray_server) - others}", 60)
    assert _ready_nodes(survivor, token) == 2
