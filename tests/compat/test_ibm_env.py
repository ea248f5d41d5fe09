"""``qruntime env --ibm``: the one set-up step for the official client."""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from qruntime.cli.ibm_env import IBM_API_PREFIX
from qruntime.cli.main import app


def test_env_ibm_prints_exports_that_point_the_client_at_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QRUNTIME_URL", "https://qpu.example.org:8443/")
    monkeypatch.setenv("QRUNTIME_TOKEN", "qrt_secret with space")
    result = CliRunner().invoke(app, ["env", "--ibm"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("export ") for line in lines)
    exported = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    api = "https://qpu.example.org:8443/experimental/api"
    assert exported["QISKIT_IBM_URL"] == api
    assert exported["IAM_URL"] == api
    assert exported["QISKIT_IBM_TOKEN"] == "qrt_secret with space"
    assert exported["QISKIT_IBM_INSTANCE"].startswith("crn:v1:")
    assert exported["QISKIT_IBM_CHANNEL"] == "ibm_quantum_platform"
    assert exported["QISKIT_FUNCTIONS_EXPERIMENTAL"]


def test_env_ibm_without_url_or_token_fails_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QRUNTIME_URL", "http://127.0.0.1:8000")
    result = CliRunner().invoke(app, ["env", "--ibm"])
    assert result.exit_code == 2
    assert "QRUNTIME_TOKEN" in result.output
    assert "export" not in result.output


def test_cli_prefix_matches_the_server_mount() -> None:
    from qruntime.server.api.ibm import PREFIX

    assert IBM_API_PREFIX == PREFIX
    assert "experimental" in PREFIX  # else the client rewrites the URL and drops the port
