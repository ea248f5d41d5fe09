"""Issue 15, several API servers on one PostgreSQL: throughput of two against one.

The load benchmark's work (1,000 Bell ``circuit-runner`` jobs from 8 client threads as
4 users, each awaited by its thread) against one `qruntime serve` on a fresh PostgreSQL
database and against two on another fresh one, the threads split between them. All
three servers run at once and the two setups take turns, a block of 250 jobs each, so
that both meet the same machine on average (its speed changes from minute to minute).

Every job must end Completed with its own counts, and the store must have dispatched
each exactly once (``jobs.dispatches``). What bounds the ratio on a 2-core machine: one
leader runs every job's workers and writes every event, and the second server's API
work shares the same two cores with it, PostgreSQL and the clients. The row's note says
where the CPU went in each run (ms per job for each server, the workers, PostgreSQL and
the client threads) and how busy the cores were.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.deep_queue import (
    CONFIG,
    HELLO,
    _hold_lane,
    _wait_status,
    per_queued_job,
    upload_sleeper,
)
from bench.harness import (
    Row,
    Server,
    add_user,
    free_port,
    login,
    rss_mb,
    start_server,
    stop_server,
)
from bench.load import (
    THREADS,
    USERS,
    Record,
    _client_thread,
    encoded_bell,
    is_right,
    run_records,
)

PG_ADMIN_URL = os.environ.get("QRUNTIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET = 1.3
BLOCK = 250  # jobs each setup runs in its turn


@contextmanager
def _database() -> Iterator[str]:
    """A fresh PostgreSQL database's SQLAlchemy URL, dropped afterwards."""
    import psycopg

    name = f"qrt_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _servers(db_url: str, count: int) -> Iterator[list[Server]]:
    token = "qrt_bench_" + secrets.token_hex(16)
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            process = start_server(db_url, token=token, port=port)
            servers.append(Server(f"http://127.0.0.1:{port}", token, process, db=None))  # type: ignore[arg-type]
        yield servers
    finally:
        for srv in servers:
            stop_server(srv.process)


def _twice_dispatched(db_url: str) -> tuple[int, int]:
    """(jobs dispatched other than once, jobs) in the store."""
    import psycopg

    from qruntime.server.store.cluster import conninfo

    with psycopg.connect(conninfo(db_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE dispatches <> 1), count(*) FROM jobs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _processes() -> dict[int, tuple[int, str, float]]:
    """Every process: pid -> (parent pid, command name, CPU seconds used so far)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:  # it ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def _cpu_spent(
    before: dict[int, tuple[int, str, float]],
    after: dict[int, tuple[int, str, float]],
    servers: list[int],
) -> dict[str, float]:
    """CPU seconds spent between two `_processes` readings by each server process, the
    workers they started, PostgreSQL and this process (the client threads)."""

    def kind(pid: int) -> str | None:
        if pid == os.getpid():
            return "clients"
        if after[pid][1] == "postgres":
            return "PostgreSQL"
        seen = pid
        while seen in after and seen > 1:
            if seen in servers:
                return f"server {servers.index(seen) + 1}" if seen == pid else "workers"
            seen = after[seen][0]
        return None

    spent: dict[str, float] = {}
    for pid, (_, _, cpu) in after.items():
        name = kind(pid)
        if name is not None:
            spent[name] = spent.get(name, 0.0) + cpu - before.get(pid, (0, "", 0.0))[2]
    return spent


@dataclass
class _Setup:
    """One configuration (one server, or two) on a database of its own, its clients
    logged in and its workers warm, and what its blocks of jobs measured so far."""

    servers: list[Server]
    clients: list[httpx.Client]
    records: list[Record] = field(default_factory=list)
    elapsed: float = 0.0
    spent: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    leaders: list[int] = field(default_factory=list)  # which servers led at the end

    @classmethod
    def prepare(cls, servers: list[Server], circuit: Any) -> _Setup:
        """Users, one client per thread (thread ``t`` on server ``t % len(servers)``), and
        a job per server first, not counted: the pooled workers start."""
        tokens = [add_user(servers[0], f"load{u}") for u in range(USERS)]
        clients = [login(servers[t % len(servers)].url, tokens[t % USERS]) for t in range(THREADS)]
        setup = cls(servers, clients)
        for client in clients[: len(servers)]:
            _client_thread(client, [Record(index=-1, shots=10)], circuit, setup.errors)
        return setup

    def run(self, records: list[Record], circuit: Any) -> None:
        """Run a block of jobs from every client thread, adding up its time and CPU."""
        before = _processes()
        self.elapsed += run_records(self.clients, records, circuit, self.errors)
        pids = [srv.process.pid for srv in self.servers]
        for name, cpu in _cpu_spent(before, _processes(), pids).items():
            self.spent[name] = self.spent.get(name, 0.0) + cpu
        self.records += records

    @property
    def rate(self) -> float:
        return len(self.records) / self.elapsed

    def cpu_note(self) -> str:
        """Where the CPU went, in ms per job, and how busy the machine's cores were."""
        jobs = len(self.records)
        parts = ", ".join(
            f"{name} {1000 * cpu / jobs:.2f}" for name, cpu in sorted(self.spent.items())
        )
        cores = os.cpu_count() or 1
        busy = 100 * sum(self.spent.values()) / self.elapsed / cores
        note = f"{parts} (ms/job; {busy:.0f}% of {cores} cores)"
        if len(self.servers) > 1:
            note += f"; server {' and '.join(map(str, self.leaders)) or 'none'} led"
        return note

    def close(self) -> None:
        """Close the clients, noting first which servers lead (while they still run)."""
        self.leaders = [i + 1 for i, srv in enumerate(self.servers) if _leads(srv)]
        for client in self.clients:
            client.close()
        if self.errors:
            print(f"servers: {len(self.errors)} client errors, first: {self.errors[0]}")


def _leads(server: Server) -> bool:
    return bool(httpx.get(f"{server.url}/health", timeout=10).json().get("leader"))


def _compare(jobs: int, block: int) -> tuple[_Setup, _Setup, int, int]:
    """One server and two, each on a fresh database, all started at once and fed blocks
    of ``block`` jobs in turns (the machine changes speed from one minute to the next:
    taking turns gives both the same machine on average). Returns both setups and how
    many jobs each database dispatched other than exactly once."""
    circuit = encoded_bell()
    with (
        _database() as one_url,
        _database() as two_url,
        _servers(one_url, 1) as one_server,
        _servers(two_url, 2) as two_servers,
    ):
        one = _Setup.prepare(one_server, circuit)
        two = _Setup.prepare(two_servers, circuit)
        try:
            for first in range(0, jobs, block):
                for setup in (one, two):
                    count = min(block, jobs - first)
                    setup.run(
                        [Record(index=first + i, shots=100 + first + i) for i in range(count)],
                        circuit,
                    )
        finally:
            one.close()
            two.close()
        one_twice, _ = _twice_dispatched(one_url)
        two_twice, _ = _twice_dispatched(two_url)
    return one, two, one_twice, two_twice


# Columns of a queued copy of a job that differ from the job's own (the rest is copied).
_QUEUED_COPY = {
    "id": "substr(md5(random()::text || g::text), 1, 20)",
    "seq": "(SELECT max(seq) FROM jobs) + g",
    "status": "'Queued'",
    "created_at": "t.created_at + g * interval '1 microsecond'",
    "running_at": "NULL",
    "finished_at": "NULL",
    "usage_seconds": "NULL",
    "metrics": "NULL",
    "result": "NULL",
    "result_read_at": "NULL",
    "reason": "NULL",
    "reason_code": "NULL",
    "logs": "''",
    "dispatches": "0",
}


def _queue_copies(db_url: str, *, job_id: str, count: int, params: str | None = None) -> list[str]:
    """Insert ``count`` Queued copies of job ``job_id`` (its ``params`` replaced), in one
    statement, after every job there is; their ids."""
    import psycopg

    from qruntime.server.store.cluster import conninfo

    with psycopg.connect(conninfo(db_url)) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'jobs' AND table_schema = current_schema()"
            )
        ]
        values = [_QUEUED_COPY.get(c, f"t.{c}") for c in columns]
        if params is not None:
            values[columns.index("params")] = "%(params)s"
        rows = conn.execute(
            f"INSERT INTO jobs ({', '.join(columns)}) SELECT {', '.join(values)} "
            "FROM jobs t, generate_series(1, %(count)s) g WHERE t.id = %(job)s ORDER BY g "
            "RETURNING id",
            {"count": count, "job": job_id, "params": params},
        ).fetchall()
    return [str(row[0]) for row in rows]


def memory_row(queued: int = 20_000) -> Row:
    """The leader's memory per queued job on PostgreSQL, as `bench.deep_queue` measures it
    on SQLite: one server, its lane held by a sleeping job, ``queued`` jobs behind it."""
    import tempfile
    from pathlib import Path

    name = f"servers: leader memory per queued job ({queued}, PostgreSQL)"
    token = "qrt_bench_" + secrets.token_hex(16)
    with _database() as db_url, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "deep.toml"
        config.write_text(CONFIG)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(db_url, token=token, port=port, config=config)
        try:
            user_token = add_user(Server(url, token, process, db=None), "deep")  # type: ignore[arg-type]
            with login(url, user_token) as client:
                holder = _hold_lane(client, upload_sleeper(client))
                template = client.post("/jobs", json=HELLO).json()["id"]
                client.post(f"/jobs/{holder}/cancel").raise_for_status()
                _wait_status(client, template, {"Completed"}, 60)
        finally:
            stop_server(process)
        # The same server on the same database, its queue empty: what it holds anyway.
        process = start_server(db_url, token=token, port=port, config=config)
        try:
            with login(url, user_token) as client:
                client.get("/jobs", params={"limit": 10})
                empty_rss = rss_mb(process.pid)
        finally:
            stop_server(process)
        (first,) = _queue_copies(
            db_url, job_id=holder, count=1, params=json.dumps({"seconds": 600})
        )
        _queue_copies(db_url, job_id=template, count=queued)
        process = start_server(db_url, token=token, port=port, config=config)
        try:
            with login(url, user_token) as client:
                _wait_status(client, first, {"Running"}, 120)  # the leader has the queue
                client.get("/jobs", params={"limit": 10})
                deep_rss = rss_mb(process.pid)
                client.post(f"/jobs/{first}/cancel")
        finally:
            stop_server(process)
    per_job = per_queued_job(empty_rss, deep_rss, queued)
    return Row(
        name,
        per_job,
        None,
        "B",
        "< 2048 B",
        per_job < 2048,
        f"RSS {empty_rss:.0f} -> {deep_rss:.0f} MB with the queue recovered by the leader",
    )


def run(jobs: int = 1000) -> list[Row]:
    name = f"servers: {jobs} jobs, 2 servers / 1 (PostgreSQL)"
    try:
        import psycopg

        with contextlib.closing(psycopg.connect(PG_ADMIN_URL, connect_timeout=2)):
            pass
    except Exception as error:
        return [Row(name, 0.0, None, "/s", f">= {TARGET}x", False, f"no PostgreSQL: {error}")]
    one, two, one_twice, two_twice = _compare(jobs, BLOCK)
    one_right = sum(is_right(record) for record in one.records)
    two_right = sum(is_right(record) for record in two.records)
    memory = memory_row()
    return [
        Row(
            name,
            two.rate,
            one.rate,
            "/s",
            f">= {TARGET}x",
            two.rate >= TARGET * one.rate,
            f"in turns of {BLOCK} jobs; CPU with 1 server: {one.cpu_note()}; with 2: "
            f"{two.cpu_note()}",
        ),
        Row(
            "servers: jobs right, each dispatched once",
            float(two_right + one_right),
            float(2 * jobs),
            "",
            "all; none twice",
            two_right + one_right == 2 * jobs and one_twice == two_twice == 0,
            f"dispatched other than once: {one_twice} (1 server), {two_twice} (2 servers)",
        ),
        memory,
    ]
