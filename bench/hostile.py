"""Issue 13: tiny hostile requests must not freeze the server or swell it.

A real `qruntime serve` on SQLite. A thread asks ``/health`` every 10 ms, first on a
quiet server (the baseline), then while the main thread sends what used to freeze or
swell it: a QPY header claiming four million qubits, a payload of three zlib-compressed
1 GB arrays, jobs whose input meets a catastrophically backtracking spec pattern, and
chunked bodies of 200 MB (a program upload) and 50 MB (an anonymous login). Each must
be refused with a 4xx; the rows give the slowest ``/health`` answer and how far the
server process's peak memory rose.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.bombs import (
    MB,
    REDOS_INPUT,
    REDOS_PATTERN,
    endless_body,
    qpy_header_bomb,
    zlib_array_bomb,
)
from bench.harness import Row, login, peak_rss_mb, percentile, server

HEALTH_TARGET_MS = 100.0
MEMORY_TARGET_MB = 100.0


class _Prober(threading.Thread):
    """Times ``/health`` every 10 ms until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[float] = []
        self.failures = 0
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._done.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.samples.append(time.perf_counter() - started)
                self.failures += not ok
                self._done.wait(0.01)

    def stop(self) -> list[float]:
        self._done.set()
        self.join(60)
        return self.samples


def _probe(url: str, work: Callable[[], None]) -> tuple[list[float], int]:
    prober = _Prober(url)
    prober.start()
    try:
        work()
    finally:
        samples = prober.stop()
    return samples, prober.failures


def _attacks(url: str, client: httpx.Client) -> list[tuple[str, Callable[[], int]]]:
    """Each attack as a name and a call that returns the server's status code."""
    source = "def main(backend, user_messenger, **kwargs):\n    return 1\n"
    spec = {"parameters": {"type": "object", "properties": {"s": {"pattern": REDOS_PATTERN}}}}
    program = client.post(
        "/programs",
        json={
            "name": "redos",
            "data": base64.b64encode(source.encode()).decode(),
            "cost": 60,
            "description": "a pattern that backtracks",
            "spec": spec,
        },
    )
    program.raise_for_status()
    program_id = program.json()["id"]
    arrays = zlib_array_bomb()

    def job(params: dict[str, Any], program: str = "circuit-runner") -> Callable[[], int]:
        body = {"program_id": program, "backend": "aer_simulator", "params": params}
        return lambda: client.post("/jobs", json=body).status_code

    def chunked(path: str, total: int, headers: dict[str, str]) -> Callable[[], int]:
        return lambda: (
            httpx.post(
                url + path, content=endless_body(total), headers=headers, timeout=60
            ).status_code
        )

    auth = {"Authorization": client.headers["Authorization"]}
    return [
        ("QPY header of 4,000,000 qubits", job({"circuits": qpy_header_bomb()})),
        ("three zlib arrays of 1 GB", job({"a": arrays, "b": [arrays, {"c": arrays}]})),
        ("ReDoS spec input", job({"s": REDOS_INPUT}, program_id)),
        ("200 MB chunked program upload", chunked("/programs", 200 * MB, auth)),
        ("50 MB chunked anonymous login", chunked("/users/loginWithToken", 50 * MB, {})),
    ]


def run(rounds: int = 3) -> list[Row]:
    with server() as srv, login(srv.url, srv.token) as client:
        client.get("/health").raise_for_status()
        quiet, _ = _probe(srv.url, lambda: time.sleep(2.0))
        attacks = _attacks(srv.url, client)
        peak_before = peak_rss_mb(srv.process.pid)
        statuses: dict[str, set[int]] = {name: set() for name, _ in attacks}
        slowest: dict[str, float] = dict.fromkeys(statuses, 0.0)

        def attack() -> None:
            for _ in range(rounds):
                for name, call in attacks:
                    started = time.perf_counter()
                    statuses[name].add(call())
                    slowest[name] = max(slowest[name], time.perf_counter() - started)

        loaded, failures = _probe(srv.url, attack)
        growth = max(0.0, peak_rss_mb(srv.process.pid) - peak_before)
    refused = all(codes and all(400 <= c < 500 for c in codes) for codes in statuses.values())
    worst_ms = max(loaded) * 1000
    note = json.dumps(
        {
            "quiet p99 ms": round(percentile(quiet, 0.99) * 1000, 1),
            "attacked p99 ms": round(percentile(loaded, 0.99) * 1000, 1),
            "answers": len(loaded),
            "statuses": {k: sorted(v) for k, v in statuses.items()},
            "slowest refusal ms": {k: round(v * 1000) for k, v in slowest.items()},
        }
    )
    return [
        Row(
            f"/health while bombs are sent, slowest of {len(loaded)} (baseline: quiet server)",
            worst_ms,
            max(quiet) * 1000,
            "ms",
            f"<= {HEALTH_TARGET_MS:g} ms, every bomb 4xx",
            worst_ms <= HEALTH_TARGET_MS and refused and failures == 0,
            note,
        ),
        Row(
            "server peak memory growth while bombs are sent",
            growth,
            None,
            "MB",
            f"< {MEMORY_TARGET_MB:g} MB",
            growth < MEMORY_TARGET_MB,
        ),
    ]
