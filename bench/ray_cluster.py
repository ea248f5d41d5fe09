"""A real Ray cluster on this machine (a head and worker nodes), for tests and benchmarks.

``ray start`` binds the host's own address, whatever it is told: kept inside a network
namespace that has only loopback (`loopback_namespace_command`), every part of the
cluster listens on 127.0.0.1 and nothing of it is reachable from elsewhere. Each node
is a ``ray start --block`` process with its own process group: `RayCluster.kill_node`
takes a node down as a crash would (SIGKILL to every process of it), and nothing here
ever runs ``ray stop``, which would stop every Ray process of the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["RayCluster", "in_loopback_namespace", "loopback_namespace_command", "netns_problem"]


def in_loopback_namespace() -> bool:
    """Whether this process's network namespace has no interface but loopback."""
    return [name for _index, name in socket.if_nameindex()] == ["lo"]


def netns_problem() -> str | None:
    """Why this machine cannot run a loopback-only Ray cluster; None when it can."""
    if os.geteuid() != 0:
        return "a network namespace needs root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, iproute2)"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed: pip install 'qruntime[ray]'"
    return None


def loopback_namespace_command(argv: list[str]) -> list[str]:
    """``argv`` run in a new network namespace whose loopback is up (and nothing else)."""
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


class RayCluster:
    """A head node and worker nodes of a real Ray cluster, all on 127.0.0.1.

    Token authentication is on (``RAY_AUTH_MODE=token``), with a token of this cluster's
    own in ``env``: give ``env`` to every process that joins it (a server, a driver).
    """

    def __init__(self, *, port: int = 6379) -> None:
        # Short: Ray's unix sockets live under it, and a socket path has at most 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="qrray", dir="/tmp"))
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            # A crashed node is declared dead within seconds (the defaults take ~30 s).
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        }
        self.nodes: list[subprocess.Popen[bytes]] = []

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def _start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        command = [self._ray(), "start", "--block", "--node-ip-address", "127.0.0.1", *args]
        with open(self.root / log, "ab") as out:
            process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.nodes.append(process)
        return process

    def start_head(self, *, num_cpus: int = 2, resources: dict[str, float] | None = None) -> None:
        """Start the head node (it runs jobs too) and return once it takes drivers."""
        args = ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus)]
        args += ["--include-dashboard", "false", "--disable-usage-stats"]
        args += ["--temp-dir", str(self.root), "--resources", json.dumps(resources or {})]
        self._start(args, "head.log")
        self.wait_for_nodes(1)

    def add_worker(
        self, *, num_cpus: int = 2, resources: dict[str, float] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one more worker node and return once the cluster lists it."""
        alive = len(self.alive_nodes())
        args = ["--address", self.address, "--num-cpus", str(num_cpus)]
        args += ["--resources", json.dumps(resources or {})]
        process = self._start(args, f"worker-{len(self.nodes)}.log")
        self.wait_for_nodes(alive + 1)
        return process

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The live nodes as ``ray list nodes`` would tell (id, resources)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False); "
            "print('nodes:', json.dumps([n for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, timeout=120
        )
        # Ray may print warnings (a node with lagging heartbeats) around the answer.
        lines = [line for line in out.stdout.decode().splitlines() if line.startswith("nodes: ")]
        if out.returncode != 0 or not lines:
            return []
        nodes: list[dict[str, Any]] = json.loads(lines[-1].removeprefix("nodes: "))
        return nodes

    def wait_for_nodes(self, count: int, *, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.alive_nodes()) < count:
            if any(p.poll() is not None for p in self.nodes[:1]):
                raise RuntimeError(f"the Ray head exited; see {self.root}/head.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster has not {count} nodes; see {self.root}")
            time.sleep(0.5)

    def kill_node(self, process: subprocess.Popen[bytes]) -> None:
        """Crash a node: SIGKILL to every process it started (raylet, its workers, ...)."""
        import psutil

        try:
            family = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for member in [psutil.Process(process.pid), *family]:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        process.wait(timeout=30)

    def stop(self) -> None:
        """Stop every node, workers first, and remove the cluster's files."""
        for process in reversed(self.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.nodes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
