"""Shared pieces of the benchmarks: a real server in a subprocess, timing, the report."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Row:
    """One line of the report: qruntime's figure against the baseline's."""

    benchmark: str
    qruntime: float
    baseline: float | None
    unit: str
    target: str
    passed: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.qruntime / self.baseline


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    db: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    db: Path | str, *, token: str, port: int, config: Path | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """Start `qruntime serve` on ``db`` (a SQLite file, or a database URL) and return
    once ``/health`` answers.

    The server gets its own process group, so a benchmark or test can end it and its
    workers together.
    """
    command = [sys.executable, "-m", "qruntime.cli.main", "serve", "--port", str(port)]
    command += ["--db", db if isinstance(db, str) else f"sqlite:///{db}", "--log-level", "warning"]
    if config is not None:
        command += ["--config", str(config)]
    process = subprocess.Popen(
        command,
        env={**os.environ, "QRUNTIME_ADMIN_TOKEN": token, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError("the benchmark server did not start")
        time.sleep(0.02)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then wait for the server."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextmanager
def server(
    *,
    config: str | None = None,
    **env: str,
) -> Iterator[Server]:
    """`qruntime serve` on a fresh SQLite database, as a user starts it.

    ``config`` is the text of a TOML ``--config`` file; ``env`` adds environment variables.
    """
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        config_path = None
        if config is not None:
            config_path = Path(tmp) / "bench.toml"
            config_path.write_text(config)
        token = "qrt_bench_" + secrets.token_hex(16)
        port = free_port()
        process = start_server(db, token=token, port=port, config=config_path, **env)
        try:
            yield Server(url=f"http://127.0.0.1:{port}", token=token, process=process, db=db)
        finally:
            stop_server(process)


def login(url: str, api_token: str) -> httpx.Client:
    """An HTTP client that carries the access token of ``api_token``."""
    reply = httpx.post(f"{url}/users/loginWithToken", json={"apiToken": api_token})
    reply.raise_for_status()
    headers = {"Authorization": f"Bearer {reply.json()['id']}"}
    return httpx.Client(base_url=url, headers=headers, timeout=120)


def add_user(srv: Server, name: str) -> str:
    """Create a user on ``srv`` as its admin; return the user's API token."""
    with login(srv.url, srv.token) as admin:
        reply = admin.post("/users", json={"name": name})
        reply.raise_for_status()
        token: str = reply.json()["token"]
        return token


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (zygote, workers, their children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                stack.extend(children)
    return found


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of one process, in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    """The resident memory (VmRSS) of one process now, in MiB."""
    return _status_kb(pid, "VmRSS") / 1024


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def timed(function: Callable[[], object], *, repeat: int, warmup: int = 3) -> list[float]:
    """Seconds per call, after ``warmup`` calls that are not counted."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def interleaved(
    loops: dict[str, Callable[[Any], None]], items: Sequence[Any], *, block: int = 10
) -> dict[str, list[float]]:
    """Seconds each loop body takes per item of ``items``, the loops taking turns.

    The machines these run on change speed from one second to the next (other
    tenants): a loop timed whole, after the other, can meet a slower machine. Taking
    turns every ``block`` items gives every loop the same machine on average; each
    still does every item, in order.
    """
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for first in range(0, len(items), block):
        for name, body in loops.items():
            for item in items[first : first + block]:
                start = time.perf_counter()
                body(item)
                samples[name].append(time.perf_counter() - start)
    return samples


def timed_threads(pool: Sequence[threading.Thread]) -> float:
    """Start every thread of ``pool``, wait for all; the wall-clock seconds it took."""
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - start


def _busy_and_total() -> tuple[int, int]:
    """The machine's CPU ticks so far: (busy, all), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(*, busy_below: float = 0.15, most: float = 30.0) -> tuple[float, float]:
    """Wait until the cores are quiet: a second in which they were under ``busy_below``
    busy (a fraction), or ``most`` seconds. Returns (seconds waited, that last second's
    busy fraction).

    Processes just started (a Ray node's idle workers importing Ray, a host's pooled
    workers importing Qiskit) keep the cores busy for seconds; timing a job path then
    measures their start-up, not the path.
    """
    start = time.monotonic()
    while True:
        busy0, total0 = _busy_and_total()
        time.sleep(1.0)
        busy1, total1 = _busy_and_total()
        busy = (busy1 - busy0) / max(1, total1 - total0)
        waited = time.monotonic() - start
        if busy < busy_below or waited >= most:
            return waited, busy


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def report(rows: list[Row], *, path: Path) -> str:
    """The table as text, and the same as JSON at ``path``."""
    header = (
        f"{'benchmark':44} {'qruntime':>12} {'baseline':>12} {'ratio':>7}  {'target':20} result"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        base = f"{row.baseline:.2f}" if row.baseline is not None else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        lines.append(
            f"{row.benchmark:44} {row.qruntime:>9.2f} {row.unit:2} {base:>12} {ratio:>7}  "
            f"{row.target:20} {'pass' if row.passed else 'FAIL'}"
        )
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
    }
    data = {**meta, "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}
    path.write_text(json.dumps(data, indent=2))
    lines.append("")
    lines.append(f"measured {meta['date']} on {meta['machine']}")
    return "\n".join(lines)
