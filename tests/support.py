"""Helpers shared by tests that run ``qruntime serve`` as a separate process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_serve(
    db: Path, *, token: str, port: int, config: Path | None = None
) -> subprocess.Popen[bytes]:
    """``qruntime serve`` on ``db``, in a session of its own; returns once it answers."""
    command = [sys.executable, "-m", "qruntime.cli.main", "serve", "--port", str(port)]
    command += ["--db", f"sqlite:///{db}", "--log-level", "warning"]
    if config is not None:
        command += ["--config", str(config)]
    process = subprocess.Popen(
        command,
        env={**os.environ, "QRUNTIME_ADMIN_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, "server exited"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
