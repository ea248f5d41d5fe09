"""``make cluster``: qruntime on one machine as on several: two API servers on one
PostgreSQL, a local Ray head and one more Ray worker node, all on 127.0.0.1.

``ray start`` binds the host's own address, so everything runs inside a network
namespace that has only loopback (root, ``unshare`` and ``ip``): the namespace reaches
PostgreSQL over its unix socket. Then it runs ``CMD`` there (a shell by default) with
QRUNTIME_URL and QRUNTIME_TOKEN set for the first server (this checkout's environment
first on PATH), and stops everything when that ends. The admin's token outlives a run:
it is kept in ``~/.local/share/qruntime/cluster/<database>.token`` for a database this
command made (a new one replaces it, the older revoked, if that file is lost);
QRUNTIME_ADMIN_TOKEN chooses it instead, and must be given for a database that had an
admin before this command used it. Usage::

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


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` on its server if it does not exist yet; whether it
    was created now."""
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.database])
        if found.fetchone() is not None:
            return False
        conn.execute(f'CREATE DATABASE "{target.database}"')
    return True


def token_file(url: str) -> Path:
    """Where the admin token of the database of ``url`` is kept between runs."""
    from sqlalchemy.engine import make_url

    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "qruntime" / "cluster" / f"{make_url(url).database}.token"


def save_token(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(token + "\n")


def token_works(url: str, token: str) -> bool:
    import httpx

    reply = httpx.post(f"{url}/users/loginWithToken", json={"apiToken": token}, timeout=30)
    return reply.status_code == 200


def reset_admin_token(db_url: str) -> str:
    """A new API token for ``admin`` on the database (its older tokens revoked)."""
    from qruntime.server.services import users
    from qruntime.server.store.database import Database

    database = Database(db_url)
    try:
        with database.session() as session:
            return users.reset_token(session, name="admin")
    finally:
        database.dispose()


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
    created = ensure_database(args.db)
    chosen = os.environ.get("QRUNTIME_ADMIN_TOKEN")
    kept_at = token_file(args.db)
    # A token is kept for the databases this command made (or has kept one for): there
    # it may replace a lost one. Another database's admin token must be given.
    ours = created or kept_at.exists() or args.db == DEFAULT_DB
    token = chosen or "qrt_admin_" + secrets.token_hex(16)
    if not chosen and not created and kept_at.exists():
        token = kept_at.read_text().strip()
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
        if not token_works(urls[0], token):  # the database's admin has another token
            if chosen or not ours:
                print(
                    f"make cluster: the database {args.db} already has an admin whose token is "
                    "not this one: set QRUNTIME_ADMIN_TOKEN to it, or replace it with "
                    f"qruntime users reset-token admin --db '{args.db}'",
                    file=sys.stderr,
                )
                return 2
            token = reset_admin_token(args.db)
            print(
                "No token kept here opens this database: its admin has a new one "
                "(older ones revoked).",
                flush=True,
            )
        if not chosen:
            save_token(kept_at, token)
        print(f"Servers: {' and '.join(urls)} on {args.db}", flush=True)
        print(f"Ray: {cluster.address} (two nodes); admin token: {token}", flush=True)
        env = {**os.environ, **ray_env, "QRUNTIME_URL": urls[0], "QRUNTIME_TOKEN": token}
        # This checkout's environment first, so that `python` and `qruntime` in CMD are
        # the ones that have qruntime (make runs this with .venv/bin/python).
        here = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(
            [here, *(p for p in env.get("PATH", "").split(os.pathsep) if p != here)]
        )
        return subprocess.call(shlex.split(args.cmd), env=env)
    finally:
        for process in servers:
            stop_server(process)
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
