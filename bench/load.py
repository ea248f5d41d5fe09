"""Issue 7, load: 1,000 small jobs from 8 client threads as 4 users, each awaited.

Each thread submits a Bell ``circuit-runner`` job with its own shot count, waits for
its result (the results long poll), checks it, and goes on: 8 jobs are in flight at
any time. The circuit is encoded once, so the client's own QPY work does not count
against the server. At the end every job is checked: final, Completed, and counts
that belong to that job (a Bell distribution summing to the job's unique shots).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

from bench import plot
from bench.harness import (
    Row,
    Server,
    add_user,
    descendants,
    login,
    peak_rss_mb,
    percentile,
    server,
    timed_threads,
)

USERS = 4
THREADS = 8
BELL_KEYS = {"0x0", "0x3"}


@dataclass
class Record:
    """What one client thread saw of one job."""

    index: int
    shots: int
    job_id: str = ""
    submit_s: float = 0.0
    completion_s: float = 0.0
    status: str = ""
    result: str = ""


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def encoded_bell() -> Any:
    """The Bell circuit as the runtime JSON encoding has it (a JSON-ready dict)."""
    from qruntime import encoding

    return json.loads(encoding.dumps(bell()))


def counts_of(result_text: str) -> dict[str, int]:
    from qruntime import encoding

    data = encoding.loads(result_text)
    counts: dict[str, int] = data["results"][0]["data"]["counts"]
    return counts


def is_right(record: Record) -> bool:
    """Completed, with a Bell distribution over exactly this job's shots."""
    if record.status != "Completed" or not record.result:
        return False
    try:
        counts = counts_of(record.result)
    except Exception:  # any malformed result is simply wrong
        return False
    return set(counts) <= BELL_KEYS and sum(counts.values()) == record.shots


def await_result(client: httpx.Client, record: Record, *, timeout: float = 120) -> None:
    """Long-poll the job's result; fill ``status`` and ``result``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.get(f"/jobs/{record.job_id}/results", params={"wait": 30})
        if reply.status_code == 200:
            record.status, record.result = "Completed", reply.text
            return
        if reply.status_code != 202:  # ended without a result
            record.status = client.get(f"/jobs/{record.job_id}").json()["status"]
            return
    record.status = "timeout"


def _client_thread(
    client: httpx.Client, records: list[Record], circuit: Any, errors: list[str]
) -> None:
    for record in records:
        body = {
            "program_id": "circuit-runner",
            "backend": "aer_simulator",
            "params": {"circuits": circuit, "shots": record.shots},
        }
        start = time.perf_counter()
        try:
            reply = client.post("/jobs", json=body)
            record.submit_s = time.perf_counter() - start
            reply.raise_for_status()
            record.job_id = reply.json()["id"]
            await_result(client, record)
        except httpx.HTTPError as error:
            errors.append(f"job {record.index}: {error}")
            continue
        record.completion_s = time.perf_counter() - start


def in_process_rate(repeat: int = 200) -> float:
    """Jobs per second for the same work in one process: cached pass manager, Aer."""
    simulator = AerSimulator()
    pm = generate_preset_pass_manager(optimization_level=1, backend=simulator)
    circuit = bell()
    start = time.perf_counter()
    for i in range(repeat):
        simulator.run(pm.run(circuit), shots=100 + i).result().get_counts()
    return repeat / (time.perf_counter() - start)


def drive(
    srv: Server, *, jobs: int, threads: int = THREADS, users: int = USERS
) -> tuple[list[Record], float]:
    """Submit ``jobs`` jobs from ``threads`` threads as ``users`` users; await every one.

    Returns the records and the wall-clock seconds from the first submit to the last result.
    """
    tokens = [add_user(srv, f"load{u}") for u in range(users)]
    clients = [login(srv.url, tokens[t % users]) for t in range(threads)]
    records = [Record(index=i, shots=100 + i) for i in range(jobs)]
    circuit = encoded_bell()
    errors: list[str] = []
    # warm-up so the pooled workers exist; not counted
    warm = Record(index=-1, shots=10)
    _client_thread(clients[0], [warm], circuit, errors)
    elapsed = run_threads(clients, records, circuit, errors, label="load")
    return records, elapsed


def run_records(
    clients: list[httpx.Client], records: list[Record], circuit: Any, errors: list[str]
) -> float:
    """Run ``records`` from one thread per client (round robin); the wall-clock seconds
    from the first submit to the last result."""
    threads = len(clients)
    pool = [
        threading.Thread(
            target=_client_thread, args=(clients[t], records[t::threads], circuit, errors)
        )
        for t in range(threads)
    ]
    return timed_threads(pool)


def run_threads(
    clients: list[httpx.Client],
    records: list[Record],
    circuit: Any,
    errors: list[str],
    *,
    label: str,
) -> float:
    """Run ``records`` from one thread per client (round robin), then close the clients;
    the wall-clock seconds from the first submit to the last result."""
    elapsed = run_records(clients, records, circuit, errors)
    for client in clients:
        client.close()
    if errors:
        print(f"{label}: {len(errors)} client errors, first: {errors[0]}")
    return elapsed


def run(jobs: int = 1000) -> list[Row]:
    baseline = in_process_rate()
    with server() as srv:
        records, elapsed = drive(srv, jobs=jobs)
        server_peak = peak_rss_mb(srv.process.pid)
        workers = descendants(srv.process.pid)
        worker_peak = max((peak_rss_mb(pid) for pid in workers), default=0.0)
        with login(srv.url, srv.token) as admin:
            pending = admin.get("/jobs", params={"pending": True, "limit": 1}).json()["count"]
    right = sum(is_right(r) for r in records)
    rate = len(records) / elapsed
    submit = [r.submit_s * 1000 for r in records if r.job_id]
    completion = [r.completion_s * 1000 for r in records if r.completion_s]
    plot.latency_png(submit, completion, path=Path(__file__).parent / "latency.png")
    rows = [
        Row(
            f"load: {jobs} Bell jobs, {THREADS} threads, {USERS} users",
            rate,
            baseline,
            "/s",
            ">= 200 jobs/s",
            rate >= 200,
            "baseline: same jobs in one process, sequential",
        )
    ]
    for name, samples, target in (
        ("submit", submit, 50.0),
        ("completion", completion, None),
    ):
        for q in (50, 95, 99):
            value = percentile(samples, q / 100) if samples else float("inf")
            limit = target if (target is not None and q == 99) else None
            rows.append(
                Row(
                    f"load: {name} latency p{q}",
                    value,
                    None,
                    "ms",
                    f"< {limit:.0f} ms" if limit else "-",
                    value < limit if limit else bool(samples),
                )
            )
    rows.append(
        Row(
            "load: server peak memory (VmHWM)",
            server_peak,
            None,
            "MB",
            "-",
            server_peak > 0,
            f"{len(workers)} worker processes, largest peak {worker_peak:.0f} MB",
        )
    )
    rows.append(
        Row(
            "load: jobs Completed with the right result",
            right,
            float(len(records)),
            "",
            "all, none pending",
            right == len(records) and pending == 0,
            f"{pending} still pending",
        )
    )
    return rows
