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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from bench.harness import free_port, start_server, stop_server
from tests.integration.ray.conftest import RayServer
from tests.integration.test_multi_server import COUNTED, Node, _cmdline, dispatches

from qruntime import RuntimeService

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONFIG = """
[backends.two_lanes]
kind = "aer"
lanes = 2
"""

ZYGOTE = "qruntime.worker.zygote"


def _zygotes(ray_server: RayServer) -> set[int]:
    """The zygotes that node hosts launched on the cluster's nodes (not their children)."""
    roots = {process.pid for process in ray_server.cluster.nodes if process.poll() is None}
    found = set()
    for process in psutil.process_iter():
        if ZYGOTE not in " ".join(_cmdline(process)):
            continue
        with contextlib.suppress(psutil.Error):
            parent = process.parent()
            if parent is not None and ZYGOTE in " ".join(_cmdline(parent)):
                continue  # a worker the zygote forked
            if {ancestor.pid for ancestor in process.parents()} & roots:
                found.add(process.pid)
    return found


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

    nodes: list[Node]
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
    nodes: list[Node] = []
    try:
        for _ in range(2):
            port = free_port()
            process = start_server(
                socket_postgres_url, token=token, port=port, config=config, **ray_server.env
            )
            nodes.append(Node(f"http://127.0.0.1:{port}", process))
        yield Pair(nodes, token, others)
    finally:
        for node in nodes:
            stop_server(node.process)


def test_sigkill_of_a_ray_leader_moves_its_hosts_and_jobs_to_the_other_server(
    ray_server: RayServer,
    socket_postgres_url: str,
    pair: Pair,
) -> None:
    token, others = pair.token, pair.others
    _wait(lambda: sum(bool(n.health()["leader"]) for n in pair.nodes) == 1, "no single leader")
    leader = next(node for node in pair.nodes if node.health()["leader"])
    survivor = next(node for node in pair.nodes if node is not leader)
    _wait(lambda: _ready_nodes(leader.url, token) == 2, "the leader's hosts did not start")
    hosts = _zygotes(ray_server) - others
    assert len(hosts) == 2  # one per node, launched by the leader alone

    with RuntimeService(url=leader.url, token=token) as on_leader:
        program = on_leader.upload_program(
            data=COUNTED,
            metadata={"name": "counted", "description": "counts", "max_execution_time": 120},
        )
    labels = [f"r{i}" for i in range(10)]
    services = [RuntimeService(url=node.url, token=token) for node in pair.nodes]
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

    leader.process.kill()  # SIGKILL to the server alone: Ray ends the actors it owned
    leader.process.wait(timeout=30)
    _wait(lambda: survivor.health()["leader"], "the survivor did not take the lead", 60)

    with RuntimeService(url=survivor.url, token=token) as service:
        for label, job in zip(labels, jobs, strict=True):
            assert service.job(job.job_id()).result(timeout=180) == label
        dispatched = dispatches(socket_postgres_url)
        again = [job.job_id() for job in jobs if dispatched[job.job_id()] > 1]
        assert len(again) <= 2  # only what ran at the kill (two lanes) ran again
        for label, job in zip(labels, jobs, strict=True):
            runs = service.job(job.job_id()).logs().splitlines().count(f"ran {label}")
            if job.job_id() in again:
                assert 1 <= runs <= dispatched[job.job_id()]
            else:
                assert (dispatched[job.job_id()], runs) == (1, 1), label
        assert service.jobs(pending=True) == []

    # The dead leader's hosts and zygotes are gone; the new leader runs one per node.
    def moved() -> bool:
        now = _zygotes(ray_server) - others
        return not (now & hosts) and len(now) == 2

    _wait(moved, f"the hosts did not move: {hosts} -> {_zygotes(ray_server) - others}", 60)
    assert _ready_nodes(survivor.url, token) == 2
