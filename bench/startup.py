"""Issue 7, start-up: from ``qruntime serve`` to the first completed Bell job, on SQLite.

The clock starts before the server process is spawned, on a fresh database, and stops
when the client holds the job's result; the wait for ``/health`` is inside it.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import Row, free_port, login, start_server, stop_server
from bench.load import Record, counts_of, encoded_bell


def once() -> tuple[float, bool]:
    """Seconds to the first Bell result, and whether that result was right."""
    with tempfile.TemporaryDirectory() as tmp:
        token = "qrt_bench_" + secrets.token_hex(16)
        port = free_port()
        circuit = encoded_bell()
        start = time.perf_counter()
        process = start_server(Path(tmp) / "startup.db", token=token, port=port)
        try:
            with login(f"http://127.0.0.1:{port}", token) as client:
                body = {
                    "program_id": "circuit-runner",
                    "backend": "aer_simulator",
                    "params": {"circuits": circuit, "shots": 1000},
                }
                job_id = client.post("/jobs", json=body).json()["id"]
                reply = client.get(f"/jobs/{job_id}/results", params={"wait": 60})
                elapsed = time.perf_counter() - start
        finally:
            stop_server(process)
    record = Record(index=0, shots=1000, job_id=job_id, status="Completed", result=reply.text)
    right = reply.status_code == 200 and sum(counts_of(record.result).values()) == 1000
    return elapsed, right


def run(repeat: int = 3) -> list[Row]:
    results = [once() for _ in range(repeat)]
    seconds = statistics.median(r[0] for r in results)
    right = all(r[1] for r in results)
    return [
        Row(
            f"start-up: serve to first Bell result (median of {repeat})",
            seconds,
            None,
            "s",
            "< 3 s",
            seconds < 3 and right,
            json.dumps([round(r[0], 2) for r in results]),
        )
    ]
