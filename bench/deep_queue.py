"""Issue 7, deep queues: 20,000 queued jobs on a one-lane backend against an empty queue.

The 20,000 queued rows are inserted straight into the server's SQLite database while
the server is stopped (20,000 POSTs would take minutes); the server then loads them
as its recovery does after a restart. The lane is held by a long sleeper job while
submit and list are timed, so nothing drains meanwhile; then the sleeper is
cancelled and the gaps between one job's end and the next one's start are the
dispatch times. The empty-queue figures come from the same run, same database.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    Row,
    Server,
    add_user,
    free_port,
    login,
    rss_mb,
    start_server,
    stop_server,
    timed,
)

CONFIG = '[backends.one_lane]\nkind = "aer"\nlanes = 1\n'
SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(kwargs.get("seconds", 0))
    return "slept"
"""
HELLO = {"program_id": "hello-world", "backend": "one_lane", "params": {"iterations": 0}}
DISPATCHES = 40


def _wait_status(client: httpx.Client, job_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: str = client.get(f"/jobs/{job_id}").json()["status"]
        if status in wanted:
            return status
        time.sleep(0.02)
    raise RuntimeError(f"job {job_id} did not reach {wanted} in {timeout} s")


def upload_sleeper(client: httpx.Client) -> str:
    """Upload the program that sleeps for its ``seconds``; its id."""
    source = base64.b64encode(SLEEPER.encode()).decode()
    body = {"name": "sleeper", "data": source, "cost": 900, "description": "sleeps"}
    reply = client.post("/programs", json=body)
    reply.raise_for_status()
    program_id: str = reply.json()["id"]
    return program_id


def per_queued_job(empty_rss: float, deep_rss: float, queued: int) -> float:
    """Bytes of a server's memory per queued job (MB of RSS before and after), less the
    job's inputs."""
    return (deep_rss - empty_rss) * 1024 * 1024 / queued - len(json.dumps(HELLO["params"]))


def _hold_lane(client: httpx.Client, program_id: str) -> str:
    body = {"program_id": program_id, "backend": "one_lane", "params": {"seconds": 600}}
    job_id: str = client.post("/jobs", json=body).json()["id"]
    _wait_status(client, job_id, {"Running"}, 60)
    return job_id


def _api_times(client: httpx.Client, repeat: int) -> tuple[float, float, list[str]]:
    """Median ms of ``POST /jobs`` and of the first page of ``GET /jobs``; the new ids."""
    ids: list[str] = []

    def submit() -> None:
        reply = client.post("/jobs", json=HELLO)
        reply.raise_for_status()
        ids.append(reply.json()["id"])

    def first_page() -> None:
        client.get("/jobs", params={"limit": 10}).raise_for_status()

    submit_ms = statistics.median(timed(submit, repeat=repeat)) * 1000
    list_ms = statistics.median(timed(first_page, repeat=repeat)) * 1000
    return submit_ms, list_ms, ids


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _dispatch_gaps(db: Path, ids: list[str]) -> float:
    """Median ms between consecutive starts, over ``ids`` in run order.

    That is the job's own run plus dispatching the next one: the same small jobs on an
    empty and a deep queue, so a slower dispatch shows as a longer interval. (End-to-start
    gaps can be negative: the next job is claimed as soon as the worker reports, before
    the previous job's final state is written.)
    """
    with sqlite3.connect(db) as con:
        marks = ",".join("?" * len(ids))
        rows = con.execute(
            f"SELECT running_at, finished_at FROM jobs WHERE id IN ({marks}) "
            "AND running_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY running_at",
            ids,
        ).fetchall()
    gaps = [_stamp(b[0]) - _stamp(a[0]) for a, b in itertools.pairwise(rows)]
    return statistics.median(gaps) * 1000 if gaps else float("inf")


def _drain(client: httpx.Client, ids: list[str], timeout: float = 120) -> None:
    for job_id in ids:
        _wait_status(client, job_id, {"Completed", "Failed", "Cancelled"}, timeout)


def _insert_queued(db: Path, *, sleeper_id: str, template_id: str, count: int) -> list[str]:
    """Copy the sleeper and ``count`` hello-world jobs back in as Queued rows, oldest first."""
    from qruntime.schemas.jobs import JobState

    with sqlite3.connect(db) as con:
        columns = [row[1] for row in con.execute("PRAGMA table_info(jobs)")]
        (seq,) = con.execute("SELECT max(seq) FROM jobs").fetchone()

        def fresh(source: str) -> dict[str, Any]:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (source,)).fetchone()
            values = dict(zip(columns, row, strict=True))
            values.update(
                status=JobState.QUEUED.value,
                reason=None,
                reason_code=None,
                result=None,
                logs="",
                running_at=None,
                finished_at=None,
                usage_seconds=None,
                metrics=None,
            )
            return values

        ids: list[str] = []
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC).replace(tzinfo=None)
        for index, source in enumerate([sleeper_id] + [template_id] * count):
            values = fresh(source) if index < 2 else dict(rows[-1])
            values["id"] = secrets.token_hex(10)
            values["seq"] = seq + 1 + index
            # distinct, increasing submission times, as real submits have
            values["created_at"] = (now + timedelta(microseconds=index)).isoformat(" ")
            rows.append(values)
            ids.append(values["id"])
        marks = ",".join("?" * len(columns))
        con.executemany(
            f"INSERT INTO jobs ({','.join(columns)}) VALUES ({marks})",
            [tuple(r[c] for c in columns) for r in rows],
        )
    return ids


def run(queued: int = 20_000, repeat: int = 30) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        db, config = Path(tmp) / "deep.db", Path(tmp) / "deep.toml"
        config.write_text(CONFIG)
        token = "qrt_bench_" + secrets.token_hex(16)
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        def start() -> subprocess.Popen[bytes]:
            return start_server(db, token=token, port=port, config=config)

        # 1. Empty queue.
        process = start()
        try:
            user_token = add_user(Server(url, token, process, db), "deep")
            with login(url, user_token) as client:
                holder = _hold_lane(client, upload_sleeper(client))
                empty_submit, empty_list, ids = _api_times(client, repeat)
                client.post(f"/jobs/{holder}/cancel").raise_for_status()
                _drain(client, ids)
                empty_dispatch = _dispatch_gaps(db, ids)
        finally:
            stop_server(process)

        # 2. The same server on the same database, queue empty, for memory.
        process = start()
        try:
            with login(url, user_token) as client:
                client.get("/jobs", params={"limit": 10})
            empty_rss = rss_mb(process.pid)
        finally:
            stop_server(process)

        # 3. Deep queue: the sleeper again first, then ``queued`` hello-world jobs.
        inserted = _insert_queued(db, sleeper_id=holder, template_id=ids[-1], count=queued)
        started = time.perf_counter()
        process = start()
        start_s = time.perf_counter() - started
        try:
            with login(url, user_token) as client:
                _wait_status(client, inserted[0], {"Running"}, 60)
                client.get("/jobs", params={"limit": 10})
                deep_rss = rss_mb(process.pid)
                deep_submit, deep_list, _ = _api_times(client, repeat)
                client.post(f"/jobs/{inserted[0]}/cancel").raise_for_status()
                watched = inserted[1 : 1 + DISPATCHES]
                _drain(client, watched)
                deep_dispatch = _dispatch_gaps(db, watched)
        finally:
            stop_server(process)

    per_job = per_queued_job(empty_rss, deep_rss, queued)
    rows = [
        _ratio_row("submit a job", deep_submit, empty_submit, queued),
        _ratio_row("list a user's first page", deep_list, empty_list, queued),
        _ratio_row("dispatch the next job", deep_dispatch, empty_dispatch, queued),
        Row(
            f"deep queue: server memory per queued job ({queued})",
            per_job,
            None,
            "B",
            "< 2048 B",
            per_job < 2048,
            f"RSS {empty_rss:.0f} -> {deep_rss:.0f} MB; start with the queue {start_s:.1f} s",
        ),
    ]
    return rows


def _ratio_row(what: str, deep: float, empty: float, queued: int) -> Row:
    return Row(
        f"deep queue ({queued}): {what}",
        deep,
        empty,
        "ms",
        "<= 1.5x empty queue",
        deep <= 1.5 * empty,
        "baseline: the same on an empty queue",
    )
