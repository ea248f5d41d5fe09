"""Issue 17: the dashboard's pages with 20,000 jobs in the database.

One user's 20,000 ended jobs are inserted straight into the server's SQLite database
while the server is stopped (copies of one real job; 20,000 runs would take minutes).
Then, signed in through the dashboard's own form, a page of 50 jobs (first page, a deep
offset, a filter), a job's page and the overview are timed against the API's
``GET /jobs?limit=50`` of the same run: the page does the same query plus its template.
Target: a page of 50 jobs under 100 ms.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
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
    interleaved,
    login,
    median_ms,
    start_server,
    stop_server,
)

JOBS = 20_000
HELLO = {"program_id": "hello-world", "backend": "aer_simulator", "params": {"iterations": 1}}


def _finished(client: httpx.Client) -> str:
    job_id: str = client.post("/jobs", json=HELLO).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/jobs/{job_id}").json()["status"] != "Completed":
        if time.monotonic() > deadline:
            raise RuntimeError("the template job did not finish")
        time.sleep(0.05)
    return job_id


def _copy_jobs(db: Path, template: str, count: int) -> None:
    """``count`` copies of the ended job ``template``, one second apart in creation time."""
    with sqlite3.connect(db) as con:
        columns = [row[1] for row in con.execute("PRAGMA table_info(jobs)")]
        row = con.execute("SELECT * FROM jobs WHERE id = ?", (template,)).fetchone()
        (seq,) = con.execute("SELECT max(seq) FROM jobs").fetchone()
        base = dict(zip(columns, row, strict=True))
        start = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=count)
        rows: list[dict[str, Any]] = []
        for index in range(count):
            values = dict(base)
            values["id"] = secrets.token_hex(10)
            values["seq"] = seq + 1 + index
            stamp = start + timedelta(seconds=index)
            values["created_at"] = stamp.isoformat(" ")
            values["running_at"] = stamp.isoformat(" ")
            values["finished_at"] = (stamp + timedelta(milliseconds=5)).isoformat(" ")
            values["tags"] = '["even"]' if index % 2 == 0 else "[]"
            rows.append(values)
        marks = ",".join("?" * len(columns))
        con.executemany(
            f"INSERT INTO jobs ({','.join(columns)}) VALUES ({marks})",
            [tuple(r[c] for c in columns) for r in rows],
        )


def _signed_in(url: str, token: str) -> httpx.Client:
    """A browser-like client holding the dashboard's session cookie."""
    client = httpx.Client(base_url=url, timeout=60, headers={"Origin": url})
    reply = client.post("/ui/signin", data={"token": token, "next": "/ui/"})
    if reply.status_code != 303 or "qruntime_session" not in client.cookies:
        raise RuntimeError(f"signing in to the dashboard failed: {reply.status_code}")
    return client


def run(repeat: int = 40) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "dashboard.db"
        token = "qrt_bench_" + secrets.token_hex(16)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(db, token=token, port=port)
        try:
            user_token = add_user(Server(url, token, process, db), "viewer")
            with login(url, user_token) as api:
                template = _finished(api)
        finally:
            stop_server(process)
        _copy_jobs(db, template, JOBS)
        process = start_server(db, token=token, port=port)
        try:
            with (
                login(url, user_token) as api,
                contextlib.closing(_signed_in(url, user_token)) as page,
            ):

                def fetch(client: httpx.Client, path: str) -> None:
                    reply = client.get(path)
                    if reply.status_code != 200:
                        raise RuntimeError(f"{path}: {reply.status_code}")

                paths = {
                    "api": (api, "/jobs?limit=50"),
                    "first": (page, "/ui/jobs?limit=50"),
                    "deep": (page, "/ui/jobs?limit=50&offset=15000"),
                    "filtered": (page, "/ui/jobs?limit=50&tags=even&backend=aer_simulator"),
                    "job": (page, f"/ui/jobs/{template}"),
                    "overview": (page, "/ui/"),
                }
                for client, path in paths.values():  # warm: templates compiled, caches
                    fetch(client, path)
                samples = interleaved(
                    {
                        name: (lambda _, c=client, p=path: fetch(c, p))
                        for name, (client, path) in paths.items()
                    },
                    list(range(repeat)),
                    block=5,
                )
        finally:
            stop_server(process)
    api_ms = median_ms(samples["api"])
    rows = []
    for name, label in (
        ("first", "dashboard: jobs page of 50, first page"),
        ("deep", "dashboard: jobs page of 50, offset 15,000"),
        ("filtered", "dashboard: jobs page of 50, tag + backend filter"),
    ):
        ms = median_ms(samples[name])
        rows.append(
            Row(
                f"{label} ({JOBS:,} jobs)",
                ms,
                api_ms,
                "ms",
                "< 100 ms",
                ms < 100,
                "baseline: the API's GET /jobs?limit=50, same run",
            )
        )
    for name, label in (("job", "dashboard: a job's page"), ("overview", "dashboard: overview")):
        ms = median_ms(samples[name])
        rows.append(Row(f"{label} ({JOBS:,} jobs)", ms, api_ms, "ms", "< 100 ms", ms < 100, ""))
    return rows
