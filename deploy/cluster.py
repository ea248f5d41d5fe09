"""``make cluster``: qruntime on one machine as on several: two API servers on one
PostgreSQL, a local Ray head and one more Ray worker node, all on 127.0.0.1.

``ray start`` binds the host's own address, so everything runs inside a network
namespace that has only loopback (root, ``unshare`` and ``ip``): the namespace reaches
PostgreSQL over its unix socket. Then it runs ``CMD`` there (a shell by default) with
QRUNTIME_URL and QRUNTIME_TOKEN set for the first server, and stops everything when
that ends. Usage::

    make cluster                              # a shell in the namespace
    make cluster CMD="qruntime status"        # one command
    .venv/bin/python deploy/cluster.py --db postgresql+psycopg://qr@/qruntime?host=/run/postgresql
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import start_server, stop_server  # noqa: E402
from bench.ray_cluster import (  # noqa: E402
    RayCluster,
    in_loopback_namespace,
    loopback_namespace_command,
    netns_problem,
)

SOCKET_DIR = "/var/run/postgresql"
DEFAULT_DB = f"postgresql+psycopg://postgres@/qruntime_cluster?host={SOCKET_DIR}"
PORTS = (8001, 8002)


def ensure_database(url: str) -> None:
    """Create the database of ``url`` on its server if it does not exist yet."""
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.database])
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{target.database}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=os.environ.get("QRUNTIME_DB") or DEFAULT_DB)
    parser.add_argument("--cmd", default=os.environ.get("CMD") or os.environ.get("SHELL", "sh"))
    args = parser.parse_args()
    if not in_loopback_namespace():
        problem = netns_problem()
        if problem is not None:
            print(f"make cluster: {problem}", file=sys.stderr)
            return 2
        command = [sys.executable, __file__, "--db", args.db, "--cmd", args.cmd]
        return subprocess.call(loopback_namespace_command(command))
    ensure_database(args.db)
    token = os.environ.get("QRUNTIME_ADMIN_TOKEN") or "qrt_admin_" + secrets.token_hex(16)
    cluster = RayCluster()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        print("Starting the Ray head and one worker node on 127.0.0.1 ...", flush=True)
        cluster.start_head(num_cpus=2)
        cluster.add_worker(num_cpus=2)
        ray_env = {k: v for k, v in cluster.env.items() if k.startswith("RAY_")}
        for port in PORTS:
            servers.append(
                start_server(
                    args.db,
                    token=token,
                    port=port,
                    QRUNTIME_EXECUTOR="ray",
                    QRUNTIME_RAY_ADDRESS=cluster.address,
                    **ray_env,
                )
            )
        urls = [f"http://127.0.0.1:{port}" for port in PORTS]
        print(f"Servers: {' and '.join(urls)} on {args.db}", flush=True)
        print(f"Ray: {cluster.address} (two nodes); admin token: {token}", flush=True)
        env = {**os.environ, **ray_env, "QRUNTIME_URL": urls[0], "QRUNTIME_TOKEN": token}
        return subprocess.call(shlex.split(args.cmd), env=env)
    finally:
        for process in servers:
            stop_server(process)
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
