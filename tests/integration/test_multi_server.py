"""Two real `qruntime serve` processes on one PostgreSQL database: one leads, both serve.

Executions are counted twice over: by the store (``jobs.dispatches``, bumped by each
claim that marks a job Running) and by the program itself (a line in the job's log
for every run).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from bench.harness import free_port

from qruntime import PermissionDeniedError, QuotaExceededError, RuntimeService, Session
from qruntime.programs.hello_world import FINAL_MESSAGE

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

COUNTED = """
import time

def main(backend, user_messenger, **kwargs):
    print("ran", kwargs["label"])
    time.sleep(kwargs.get("seconds", 0))
    return kwargs["label"]
"""

PUBLISHER = """
import time

def main(backend, user_messenger, **kwargs):
    for step in range(kwargs["steps"]):
        user_messenger.publish({"step": step})
        time.sleep(0.05)
    time.sleep(kwargs.get("seconds", 0))
    return "published"
"""

AER = {"backend": "aer_simulator"}
CONFIG = """
[server]
interactive_ttl = 1
max_queued_jobs_per_user = 30

[backends.one_lane]
kind = "aer"
lanes = 1

[backends.two_lanes]
kind = "aer"
lanes = 2
"""


@dataclass
class Node:
    """One `qruntime serve` process of the pair."""

    url: str
    process: subprocess.Popen[bytes]

    def health(self) -> dict[str, object]:
        reply: dict[str, object] = httpx.get(f"{self.url}/health", timeout=10).json()
        return reply

    def zygotes(self) -> int:
        """How many worker zygotes this server started (only a leader starts one; the
        workers are the zygote's children)."""
        children = psutil.Process(self.process.pid).children()
        return sum("qruntime.worker.zygote" in " ".join(_cmdline(p)) for p in children)


@dataclass
class Pair:
    db_url: str
    token: str
    nodes: list[Node]

    def service(self, node: Node, token: str | None = None) -> RuntimeService:
        return RuntimeService(url=node.url, token=token or self.token)

    def roles(self) -> tuple[Node, Node]:
        """(leader, follower), once exactly one leads."""
        deadline = time.monotonic() + 60
        while True:
            leaders = [node for node in self.nodes if node.health()["leader"]]
            if len(leaders) == 1:
                follower = next(node for node in self.nodes if node is not leaders[0])
                return leaders[0], follower
            assert time.monotonic() < deadline, "no single leader"
            time.sleep(0.05)

    def add_user(self, name: str) -> str:
        from qruntime.server.services import auth
        from qruntime.server.store.database import Database

        db = Database(self.db_url)
        try:
            with db.session() as session:
                return auth.create_user(session, name=name)[1]
        finally:
            db.dispose()

    def dispatches(self) -> dict[str, int]:
        return dispatches(self.db_url)


def dispatches(db_url: str) -> dict[str, int]:
    """Job id -> how many times the store marked it Running."""
    from sqlalchemy import select

    from qruntime.server.store.database import Database
    from qruntime.server.store.tables import Job

    db = Database(db_url)
    try:
        with db.session() as session:
            return {row[0]: row[1] for row in session.execute(select(Job.id, Job.dispatches))}
    finally:
        db.dispose()


def _serve(db_url: str, token: str, config: Path, log: Path) -> Node:
    port = free_port()
    command = [sys.executable, "-m", "qruntime.cli.main", "serve", "--port", str(port)]
    command += ["--db", db_url, "--config", str(config), "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, "QRUNTIME_ADMIN_TOKEN": token},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Node(url=f"http://127.0.0.1:{port}", process=process)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # it ended meanwhile
        return []


def _wait_zygote(node: Node) -> None:
    deadline = time.monotonic() + 60
    while node.zygotes() == 0:
        assert time.monotonic() < deadline, "the leader started no workers"
        time.sleep(0.05)


def _wait_up(node: Node) -> None:
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{node.url}/health", timeout=5).status_code == 200:
                return
        assert node.process.poll() is None, "a server failed to start"
        assert time.monotonic() < deadline, "a server did not start"
        time.sleep(0.05)


def _stop(node: Node) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.process.pid, signal.SIGTERM)
    try:
        node.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=30)


@pytest.fixture
def pair(postgres_url: str, tmp_path: Path) -> Iterator[Pair]:
    """Two servers started together on a fresh PostgreSQL database."""
    config = tmp_path / "q.toml"
    config.write_text(CONFIG)
    token = "qrt_pair_" + secrets.token_hex(12)
    nodes = [_serve(postgres_url, token, config, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for node in nodes:
            _wait_up(node)
        yield Pair(db_url=postgres_url, token=token, nodes=nodes)
    finally:
        for node in nodes:
            _stop(node)


def _upload(service: RuntimeService, source: str, name: str) -> str:
    return service.upload_program(
        data=source,
        metadata={"name": name, "description": name, "max_execution_time": 120, "is_public": True},
    )


def _runs(service: RuntimeService, job_id: str, label: str) -> int:
    """How many times the program printed that it ran, in the job's log."""
    return service.job(job_id).logs().splitlines().count(f"ran {label}")


def _started(job: object) -> float:
    return datetime.fromisoformat(job.metrics()["timestamps"]["running"]).timestamp()  # type: ignore[attr-defined]


def _created(job: object) -> float:
    return datetime.fromisoformat(job.metrics()["timestamps"]["created"]).timestamp()  # type: ignore[attr-defined]


def _ended(job: object) -> float:
    return datetime.fromisoformat(job.metrics()["timestamps"]["finished"]).timestamp()  # type: ignore[attr-defined]


def test_exactly_one_server_leads_and_only_the_leader_runs_workers(pair: Pair) -> None:
    leader, follower = pair.roles()
    assert leader.health()["status"] == follower.health()["status"] == "ok"
    _wait_zygote(leader)
    with pair.service(follower) as service:  # a job through the standby runs on the leader
        job = service.run("hello-world", inputs={"iterations": 1}, options=AER)
        assert job.result(timeout=120) == FINAL_MESSAGE
    assert follower.zygotes() == 0
    assert leader.zygotes() == 1


def test_jobs_submitted_alternately_to_both_servers_each_run_exactly_once(pair: Pair) -> None:
    a, b = pair.nodes
    with pair.service(a) as on_a, pair.service(b) as on_b:
        program_id = _upload(on_a, COUNTED, "counted")
        jobs = []
        for i in range(24):
            service = on_a if i % 2 else on_b
            if i % 3:
                inputs = {"label": f"j{i}"}
                jobs.append((f"j{i}", service.run(program_id, inputs=inputs, options=AER)))
            else:
                hello = service.run("hello-world", inputs={"iterations": 1}, options=AER)
                jobs.append((FINAL_MESSAGE, hello))
        # Each result is read from the server that did not take the job.
        for i, (expected, job) in enumerate(jobs):
            other = on_b if i % 2 else on_a
            assert other.job(job.job_id()).result(timeout=120) == expected
        for expected, job in jobs:
            if expected != FINAL_MESSAGE:
                assert _runs(on_a, job.job_id(), expected) == 1
    dispatches = pair.dispatches()
    assert {dispatches[job.job_id()] for _, job in jobs} == {1}


def test_a_client_on_one_server_streams_and_cancels_jobs_the_other_dispatched(
    pair: Pair,
) -> None:
    _, follower = pair.roles()
    with pair.service(follower) as service:
        program_id = _upload(service, PUBLISHER, "publisher")
        heard: list[object] = []
        job = service.run(
            program_id,
            inputs={"steps": 5},
            options=AER,
            callback=lambda _job_id, message: heard.append(message),
        )
        assert job.result(timeout=120) == "published"
        job.wait_for_final_state(timeout=60)
        deadline = time.monotonic() + 30
        while len(heard) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert heard == [{"step": step} for step in range(5)] + ["published"]
        assert service.job(job.job_id()).interim_results() == [{"step": s} for s in range(5)]

        # A running job that the follower is asked to cancel is killed by the leader.
        slow = service.run(program_id, inputs={"steps": 1, "seconds": 60}, options=AER)
        deadline = time.monotonic() + 60
        while slow.status().name != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        slow.cancel()
        slow.wait_for_final_state(timeout=60)
        assert slow.status().name == "CANCELLED"
    assert pair.dispatches()[slow.job_id()] == 1


def test_sigkill_of_the_leader_under_load_loses_no_job(pair: Pair) -> None:
    a, b = pair.nodes
    with pair.service(a) as on_a, pair.service(b) as on_b:
        program_id = _upload(on_a, COUNTED, "counted")
        labels = [f"k{i}" for i in range(16)]
        jobs = [
            (on_a if i % 2 else on_b).run(
                program_id,
                inputs={"label": label, "seconds": 0.3},
                options={"backend": "two_lanes"},
            )
            for i, label in enumerate(labels)
        ]
        jobs[2].wait_for_final_state(timeout=120)  # the load is under way
    leader, survivor = pair.roles()
    assert survivor.zygotes() == 0  # a standby starts its workers once it leads
    leader.process.kill()  # SIGKILL to the server alone: its workers die with it
    leader.process.wait(timeout=30)
    deadline = time.monotonic() + 60
    while not survivor.health()["leader"]:
        assert time.monotonic() < deadline, "the survivor did not take the lead"
        time.sleep(0.05)
    _wait_zygote(survivor)
    with pair.service(survivor) as service:
        for label, job in zip(labels, jobs, strict=True):
            assert service.job(job.job_id()).result(timeout=120) == label
        dispatches = pair.dispatches()
        again = [job.job_id() for job in jobs if dispatches[job.job_id()] > 1]
        # Only the jobs that ran at the kill run again (two lanes), as after a restart.
        assert len(again) <= 2
        for label, job in zip(labels, jobs, strict=True):
            runs = _runs(service, job.job_id(), label)
            if job.job_id() in again:
                assert 1 <= runs <= dispatches[job.job_id()]
            else:
                assert dispatches[job.job_id()] == 1
                assert runs == 1, f"job {label} ran {runs} times"
        assert service.jobs(pending=True) == []


def test_leaders_killed_again_and_again_under_load_lose_no_job(pair: Pair, tmp_path: Path) -> None:
    """Three servers, jobs submitted to all of them the whole time; the leader is killed
    twice and a standby once, a fresh server joining after each kill (the lead moves
    through three epochs). Every acknowledged job ends Completed with its own result;
    only jobs that ran at a leader's kill run again."""
    import threading

    nodes = pair.nodes  # the fixture stops every node in this list, those added too
    nodes.append(_serve(pair.db_url, pair.token, tmp_path / "q.toml", tmp_path / "s2.log"))
    _wait_up(nodes[-1])
    with pair.service(nodes[0]) as service:
        program_id = _upload(service, COUNTED, "counted")
    accepted: list[tuple[str, str]] = []
    unsure: list[str] = []  # submissions cut off by a kill: acknowledged or not
    stop = threading.Event()

    def submit(thread: int) -> None:
        count = 0
        while not stop.is_set():
            node = next(n for n in reversed(nodes) if n.process.poll() is None)
            if count % 2:  # the other live ones in turn
                live = [n for n in nodes if n.process.poll() is None]
                node = live[count % len(live)]
            label = f"t{thread}.{count}"
            count += 1
            try:
                with pair.service(node) as service:
                    job = service.run(
                        program_id,
                        inputs={"label": label, "seconds": 0.1 * (count % 3)},
                        options={"backend": "two_lanes" if count % 2 else "one_lane"},
                    )
                accepted.append((job.job_id(), label))
            except Exception as error:  # a server killed in the middle of the request
                unsure.append(f"{label}: {error}")
            time.sleep(0.02)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    leader_kills = 0
    try:
        for round_, victim_role in enumerate(("leader", "standby", "leader")):
            time.sleep(2)
            live = [n for n in nodes if n.process.poll() is None]
            leader, _ = Pair(pair.db_url, pair.token, live).roles()
            victim = leader if victim_role == "leader" else next(n for n in live if n is not leader)
            leader_kills += victim is leader
            victim.process.kill()
            victim.process.wait(timeout=30)
            Pair(pair.db_url, pair.token, [n for n in nodes if n.process.poll() is None]).roles()
            fresh = _serve(
                pair.db_url, pair.token, tmp_path / "q.toml", tmp_path / f"r{round_}.log"
            )
            _wait_up(fresh)
            nodes.append(fresh)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert leader_kills == 2
    assert len(accepted) > 30, "too little load to mean anything"
    live = next(n for n in nodes if n.process.poll() is None)
    with pair.service(live) as service:
        for job_id, label in accepted:
            assert service.job(job_id).result(timeout=180) == label
        dispatches = pair.dispatches()
        again = {job_id for job_id, _ in accepted if dispatches[job_id] > 1}
        assert len(again) <= 3 * leader_kills  # a leader runs three lanes at most
        for job_id, label in accepted:
            runs = _runs(service, job_id, label)
            if job_id in again:
                assert 1 <= runs <= dispatches[job_id]
            else:
                assert (dispatches[job_id], runs) == (1, 1), label
        # A job the store holds but nobody heard of can only come from a cut-off request.
        assert len(set(dispatches) - {job_id for job_id, _ in accepted}) <= len(unsure)
        assert service.jobs(pending=True, limit=100) == []


def test_a_leader_that_loses_its_lock_stops_its_workers_and_the_other_takes_over(
    pair: Pair,
) -> None:
    import psycopg

    from qruntime.server.store.cluster import conninfo

    leader, follower = pair.roles()
    _wait_zygote(leader)
    # The leader lives but the connection that holds its lock goes, as when its network
    # to PostgreSQL breaks.
    with psycopg.connect(conninfo(pair.db_url), autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        ).fetchall()
    assert dropped == [(True,)]
    deadline = time.monotonic() + 60
    while not follower.health()["leader"] or leader.zygotes():
        assert time.monotonic() < deadline, "the lead and the workers did not move"
        time.sleep(0.05)
    _wait_zygote(follower)
    with pair.service(leader) as service:  # the deposed leader still accepts jobs
        job = service.run("hello-world", inputs={"iterations": 1}, options=AER)
        assert job.result(timeout=120) == FINAL_MESSAGE
    assert leader.health()["leader"] is False
    assert leader.zygotes() == 0
    assert pair.dispatches()[job.job_id()] == 1


def test_fair_share_and_session_priority_hold_across_servers(pair: Pair) -> None:
    leader, follower = pair.roles()
    alice = pair.service(leader, pair.add_user("alice"))
    bob = pair.service(follower, pair.add_user("bob"))
    try:
        program_id = _upload(alice, COUNTED, "counted")
        flood = [
            alice.run(
                program_id,
                inputs={"label": f"a{i}", "seconds": 0.2},
                options={"backend": "one_lane"},
            )
            for i in range(30)
        ]
        flood[0].wait_for_final_state(timeout=60)
        # Fair share: bob's job, sent to the other server, is among the next two to start.
        newcomer = bob.run(program_id, inputs={"label": "b"}, options={"backend": "one_lane"})
        newcomer.result(timeout=120)
        submitted = _created(newcomer)
        before = [
            job
            for job in flood
            if job.status().name != "QUEUED" and submitted < _started(job) < _started(newcomer)
        ]
        assert len(before) <= 1, f"{len(before)} of alice's jobs started before bob's"
        # Session priority: while bob's session (on the follower) is active, none of
        # alice's jobs (on the leader) start.
        session = Session(service=bob, backend="one_lane")
        first = session.run(program_id, inputs={"label": "s0"})
        first.result(timeout=120)
        follow = []
        for i in range(3):
            job = session.run(program_id, inputs={"label": f"s{i + 1}"})
            job.result(timeout=60)
            follow.append(job)
        window = (_started(first), _ended(follow[-1]))
        starts = [_started(job) for job in flood if job.status().name != "QUEUED"]
        assert not [t for t in starts if window[0] < t < window[1]]
        session.close()
        for job in flood:
            if job.status().name == "QUEUED":
                job.cancel()
    finally:
        alice.close()
        bob.close()


def test_the_per_user_queue_limit_counts_jobs_queued_through_either_server(pair: Pair) -> None:
    leader, follower = pair.roles()
    carol = pair.add_user("carol")
    with pair.service(leader, carol) as on_leader, pair.service(follower, carol) as on_follower:
        program_id = _upload(on_leader, COUNTED, "counted")
        inputs = {"label": "c", "seconds": 60}
        jobs = [on_leader.run(program_id, inputs=inputs, options={"backend": "one_lane"})]
        deadline = time.monotonic() + 60
        while jobs[0].status().name != "RUNNING":  # the workers are warm
            assert time.monotonic() < deadline
            time.sleep(0.05)
        jobs += [
            (on_follower if i % 2 else on_leader).run(
                program_id, inputs=inputs, options={"backend": "one_lane"}
            )
            for i in range(30)  # they wait: the limit
        ]
        try:
            with pytest.raises(QuotaExceededError):
                on_follower.run(program_id, inputs=inputs, options={"backend": "one_lane"})
            deadline = time.monotonic() + 30
            while True:  # the leader counts what it has heard of; it hears within moments
                try:
                    extra = on_leader.run(
                        program_id, inputs=inputs, options={"backend": "one_lane"}
                    )
                except QuotaExceededError:
                    break
                extra.cancel()
                assert time.monotonic() < deadline, "the leader never counted the follower's jobs"
        finally:
            for job in jobs:
                with contextlib.suppress(Exception):
                    job.cancel()


def _cluster(pair: Pair, node: Node, token: str | None = None) -> dict[str, Any]:
    from qruntime.cli.connect import api_of

    with pair.service(node, token) as service:
        view: dict[str, Any] = api_of(service).get_json("/cluster")
        return view


def test_the_cluster_view_lists_both_servers_the_leader_and_its_nodes(pair: Pair) -> None:
    leader, follower = pair.roles()
    _wait_zygote(leader)
    by_leader, by_follower = _cluster(pair, leader), _cluster(pair, follower)
    assert by_leader["leader"] == by_follower["leader"]
    assert by_leader["leader"]["server"] == by_leader["server"] != by_follower["server"]
    assert by_leader["leader"]["alive"] is True
    assert by_leader["store"] == "postgresql"
    for view, this in ((by_leader, leader), (by_follower, follower)):
        servers = {row["server"]: row for row in view["servers"]}
        assert set(servers) == {by_leader["server"], by_follower["server"]}
        assert servers[view["server"]]["this"] is True
        assert servers[view["server"]]["listen"] == this.url.removeprefix("http://")
        assert [row["server"] for row in view["servers"] if row["leader"]] == [by_leader["server"]]
    # Only the leader runs the executor: it lists its nodes live; the follower shows them
    # as the leader recorded them once its workers were ready, without running jobs.
    assert [n["node_id"] for n in by_leader["nodes"]] == ["local"]
    assert by_leader["nodes_as_of"] is None
    deadline = time.monotonic() + 60
    while not (by_follower["nodes"] and by_follower["nodes"][0]["ready"]):
        assert time.monotonic() < deadline, f"no ready node recorded: {by_follower}"
        time.sleep(0.1)
        by_follower = _cluster(pair, follower)
    (recorded,) = by_follower["nodes"]
    assert (recorded["node_id"], recorded["jobs"], recorded["sessions"]) == ("local", None, None)
    assert by_follower["nodes_as_of"] is not None
    assert _cluster(pair, leader)["nodes"][0]["ready"] is True
    assert recorded["resources"] == _cluster(pair, leader)["nodes"][0]["resources"]
    with pytest.raises(PermissionDeniedError):
        _cluster(pair, follower, pair.add_user("dave"))

    first_epoch = by_leader["leader"]["epoch"]
    leader.process.kill()  # its connections close: it leaves the list, the other leads
    leader.process.wait(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        view = _cluster(pair, follower)
        if view["leader"]["server"] == by_follower["server"] and len(view["servers"]) == 1:
            break
        assert time.monotonic() < deadline, f"the view did not follow the take-over: {view}"
        time.sleep(0.1)
    assert view["leader"]["epoch"] == first_epoch + 1
    assert view["servers"][0]["leader"] is True
    assert view["nodes_as_of"] is None  # the new leader's executor, live
    assert [n["node_id"] for n in view["nodes"]] == ["local"]
