"""Shared pieces of the benchmarks: a real server in a subprocess, timing, the report."""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(**env: str) -> Iterator[Server]:
    """`qruntime serve` on a fresh SQLite database, as a user starts it."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        token = "qrt_bench_" + secrets.token_hex(16)
        port = _free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qruntime.cli.main",
                "serve",
                "--port",
                str(port),
                "--db",
                f"sqlite:///{db}",
                "--log-level",
                "warning",
            ],
            env={**os.environ, "QRUNTIME_ADMIN_TOKEN": token, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start")
                time.sleep(0.05)
            yield Server(url=url, token=token, process=process, db=db)
        finally:
            process.terminate()
            process.wait(timeout=30)


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
