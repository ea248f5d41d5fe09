"""``make cluster`` (deploy/cluster.py) as the README has a new user run it.

Two servers on a new PostgreSQL database of the test's own (over the local unix socket), a
Ray head and one more node, all in a network namespace with only loopback; run twice,
from a shell whose PATH does not hold this checkout's environment, with the README's two
commands. The second run must find the admin's token the first one kept. Skips where
Ray, root, the namespace tools or PostgreSQL's socket are missing; fails when
``CI=true``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from bench.ray_cluster import netns_problem
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SOCKET_DIR = Path("/var/run/postgresql")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _problem() -> str | None:
    problem = netns_problem()
    if problem is None and not any(SOCKET_DIR.glob(".s.PGSQL.*")):
        problem = f"no PostgreSQL socket in {SOCKET_DIR}"
    return problem


def _without_this_environment() -> str:
    """PATH as a new shell has it: without this checkout's environment."""
    here = Path(sys.executable).parent.resolve()
    kept = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return os.pathsep.join(p for p in kept if Path(p).resolve() != here)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_cluster_runs_the_readmes_commands_and_keeps_the_admins_token(
    tmp_path: Path, postgres_url: str
) -> None:
    problem = _problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"make cluster must be tried in CI: {problem}")
        pytest.skip(problem)
    database = make_url(postgres_url).database  # a new, empty one, dropped afterwards
    url = f"postgresql+psycopg://postgres@/{database}?host={SOCKET_DIR}"
    unset = ("VIRTUAL_ENV", "CMD", "QRUNTIME_DB", "QRUNTIME_ADMIN_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PATH=_without_this_environment(), XDG_DATA_HOME=str(tmp_path))

    def make_cluster(command: str) -> str:
        done = subprocess.run(
            [sys.executable, "deploy/cluster.py", "--db", url, "--cmd", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        report = (done.stdout + done.stderr)[-8000:]
        assert done.returncode == 0, report
        return done.stdout

    first = make_cluster("python examples/streaming.py")
    assert "P(1) at pi: 1.000" in first
    kept = tmp_path / "qruntime" / "cluster" / f"{database}.token"
    token = kept.read_text().strip()
    assert f"admin token: {token}" in first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    second = make_cluster("qruntime status")
    assert f"admin token: {token}" in second  # the same token, kept
    assert "aer_simulator" in second
    assert "admin (admin)" in second
    assert kept.read_text().strip() == token
