"""A real server refuses decoding bombs in job inputs with a 4xx, staying responsive and small.

The server runs in a thread of this process, so this process's peak RSS is the server's.
Other bombs (slow specs, endless bodies) have tests of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.bombs import GB, MB, qpy_header_bomb, zlib_array_bomb
from tests.probes import reset_peak_rss, status_kib

HEALTH_BOUND_S = 2.0
RSS_BOUND = 300 * MB


def _login(url: str, api_token: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=60)
    reply = http.post("/users/loginWithToken", json={"apiToken": api_token})
    reply.raise_for_status()
    http.headers["Authorization"] = f"Bearer {reply.json()['id']}"
    return http


class _Watch(threading.Thread):
    """Polls ``/health`` (the slowest answer) and samples VmRSS (the highest) until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(name="health-watch", daemon=True)
        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self.failures: list[str] = []
        self.highest_rss_kib = status_kib("VmRSS")
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._done.is_set():
                started = time.monotonic()
                try:
                    reply = http.get("/health")
                    if reply.status_code != 200:
                        self.failures.append(f"{reply.status_code} {reply.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers += 1
                self.highest_rss_kib = max(self.highest_rss_kib, status_kib("VmRSS"))
                self._done.wait(0.02)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=60)


def test_decoding_bombs_get_4xx_while_health_answers_and_memory_stays_bounded(
    make_server: Callable[..., Any], db_url: str
) -> None:
    server = make_server(db_url)
    array_bomb = zlib_array_bomb(GB)
    bombs = {
        # Before: 46 s and +2.1 GB for one such circuit.
        "qpy header": (400, "4000000 qubits", {"circuits": qpy_header_bomb()}),
        # Before: +2 GB for one such array, +4.1 GB and 36 s for three.
        "zlib array": (413, "256000000 bytes", {"circuits": [], "noise": array_bomb}),
        "three zlib arrays": (
            413,
            "256000000 bytes",
            {"a": array_bomb, "b": [zlib_array_bomb(GB), {"c": zlib_array_bomb(GB)}]},
        ),
    }
    http = _login(server.url, server.admin_token)
    watch = _Watch(server.url)
    try:
        http.get("/health").raise_for_status()  # connections open and warm
        exact = reset_peak_rss()
        rss_before_kib = status_kib("VmRSS")
        watch.start()
        for name, (status, message, params) in bombs.items():
            body = {"program_id": "circuit-runner", "backend": "aer_simulator", "params": params}
            for attempt in range(2):  # a refused payload is not kept: refused again
                started = time.monotonic()
                reply = http.post("/jobs", json=body)
                elapsed = time.monotonic() - started
                assert reply.status_code == status, (name, attempt, reply.text[:500])
                assert message in reply.json()["error"]["message"], (name, reply.text[:500])
                assert elapsed < 30, (name, elapsed)
        time.sleep(0.1)  # one more health answer after the last bomb
    finally:
        watch.stop()
        http.close()
    peak_kib = max(status_kib("VmHWM") if exact else 0, watch.highest_rss_kib)
    growth = (peak_kib - rss_before_kib) * 1024
    assert not watch.failures, watch.failures
    assert watch.answers >= 3
    assert watch.slowest < HEALTH_BOUND_S, f"/health took {watch.slowest:.2f} s"
    assert growth < RSS_BOUND, f"peak RSS grew by {growth / MB:.0f} MB"


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    try:
        status_kib("VmRSS")
    except OSError:
        pytest.skip("needs /proc/self/status")
