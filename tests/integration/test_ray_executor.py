"""The Ray executor's tests (`tests/integration/ray`), run on a real Ray cluster.

They need a network namespace with only loopback (``ray start`` binds the host's
address otherwise), so this runs pytest on that folder in one, as a subprocess, and
passes on its verdict. Skips where Ray, root or the namespace tools are missing; fails
instead when ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.ray_cluster import loopback_namespace_command, netns_problem

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_jobs_run_on_a_real_ray_cluster_as_on_one_machine() -> None:
    problem = netns_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"the Ray tests must run in CI: {problem}")
        pytest.skip(problem)
    command = [sys.executable, "-m", "pytest", "tests/integration/ray", "-q", "-x"]
    command += ["-p", "no:cacheprovider", "--timeout", "300"]
    done = subprocess.run(
        loopback_namespace_command(command),
        cwd=ROOT,
        env={**os.environ, "QRUNTIME_RAY_NETNS": "1"},
        capture_output=True,
        text=True,
        timeout=850,
    )
    report = (done.stdout + done.stderr)[-12_000:]
    assert done.returncode == 0, report
    assert " passed" in done.stdout, report
    assert " failed" not in done.stdout, report
