"""A real Ray cluster (a head and one worker node) and a real server with ``--executor ray``.

Everything here runs inside a network namespace that has only loopback, so that the
cluster listens on 127.0.0.1 only: `tests/integration/test_ray_executor.py` starts
pytest on this folder in such a namespace. Collected alone (outside one), these tests
are left out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench.harness import free_port, start_server, stop_server
from bench.ray_cluster import RayCluster, in_loopback_namespace
from tests.conftest import IN_CI, new_database

if not (os.environ.get("QRUNTIME_RAY_NETNS") == "1" and in_loopback_namespace()):
    collect_ignore_glob = ["test_*.py"]

# Only the worker node has it: a job of the backend below runs there, nowhere else.
WORKER_RESOURCE = "qruntime_test_worker"
# Only the head has it: a test can hold the head with a job.
HEAD_RESOURCE = "qruntime_test_head"
CONFIG = f"""
[backends.worker_sim]
kind = "aer"
lanes = 2
ray_resources = {{ num_cpus = 1, {WORKER_RESOURCE} = 1 }}

[backends.head_sim]
kind = "aer"
lanes = 2
ray_resources = {{ {HEAD_RESOURCE} = 1 }}

[backends.two_gpus]
kind = "aer"
ray_resources = {{ num_gpus = 2 }}
"""


@dataclass
class RayServer:
    """A `qruntime serve --executor ray` process on the cluster, and the cluster."""

    url: str
    token: str
    db: Path
    cluster: RayCluster
    worker: subprocess.Popen[bytes]
    process: subprocess.Popen[bytes]
    config: Path
    env: dict[str, str]

    def service(self) -> Any:
        from qruntime import RuntimeService

        return RuntimeService(url=self.url, token=self.token)

    def restart(self) -> None:
        """Stop the server and start another on the same database and cluster."""
        stop_server(self.process)
        port = free_port()
        self.process = start_server(
            self.db, token=self.token, port=port, config=self.config, **self.env
        )
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def ray_server() -> Iterator[RayServer]:
    cluster = RayCluster(port=free_port())
    folder = Path(tempfile.mkdtemp(prefix="qrray-server"))
    try:
        cluster.start_head(num_cpus=2, resources={HEAD_RESOURCE: 2})
        worker = cluster.add_worker(num_cpus=2, resources={WORKER_RESOURCE: 2})
        config = folder / "qruntime.toml"
        config.write_text(CONFIG)
        token = "qrt_admin_" + secrets.token_hex(16)
        port = free_port()
        ray_env = {k: v for k, v in cluster.env.items() if k.startswith("RAY_")}
        env = {"QRUNTIME_EXECUTOR": "ray", "QRUNTIME_RAY_ADDRESS": cluster.address, **ray_env}
        process = start_server(folder / "qruntime.db", token=token, port=port, config=config, **env)
        server = RayServer(
            f"http://127.0.0.1:{port}",
            token,
            folder / "qruntime.db",
            cluster,
            worker,
            process,
            config,
            env,
        )
        try:
            yield server
        finally:
            stop_server(server.process)  # a test may have restarted it
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


# PostgreSQL from inside the namespace: its unix socket (127.0.0.1 there is not the host's).
PG_SOCKET_DIR = os.environ.get("QRUNTIME_TEST_PG_SOCKET", "/var/run/postgresql")


@pytest.fixture
def socket_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database reached over the server's unix socket, dropped
    afterwards; skips locally when PostgreSQL is absent, fails in CI."""
    import psycopg

    admin = f"host={PG_SOCKET_DIR} user=postgres dbname=postgres"
    try:
        psycopg.connect(admin, connect_timeout=2).close()
    except Exception as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {PG_SOCKET_DIR}")
        pytest.skip(f"PostgreSQL not reachable at {PG_SOCKET_DIR}: {error}")
    with new_database(admin) as name:
        yield f"postgresql+psycopg://postgres@/{name}?host={PG_SOCKET_DIR}"


@pytest.fixture
def service(ray_server: RayServer) -> Iterator[Any]:
    """A client of the Ray-backed server, closed after the test."""
    client = ray_server.service()
    yield client
    client.close()
