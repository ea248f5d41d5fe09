"""The ray executor's parts that need no cluster: resources from the catalogue, the hint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qruntime.backends.config_file import read_specs
from qruntime.errors import InputValueError, QRuntimeError
from qruntime.server.executor.ray import backend_request, import_ray


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qruntime.toml"
    path.write_text(text)
    return path


def test_a_backend_names_the_ray_resources_of_its_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[backends.lab_sim]
kind = "aer"
ray_resources = { num_cpus = 2, memory = 2e9, lab_qpu_1 = 1 }

[backends.gpu_sim]
kind = "aer"
device = "GPU"
""",
    )
    specs = {spec.name: spec for spec in read_specs(path)}
    assert backend_request(specs["lab_sim"]) == {"CPU": 2.0, "memory": 2e9, "lab_qpu_1": 1.0}
    assert backend_request(specs["gpu_sim"]) == {"GPU": 1.0}  # a GPU backend asks for one
    assert backend_request(specs["aer_simulator"]) == {}  # any node


@pytest.mark.parametrize("bad", ["{ num_cpus = 0 }", "{ num_gpus = true }", '{ "a b" = 1 }'])
def test_a_wrong_ray_resource_is_refused_naming_the_key(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, f'[backends.x]\nkind = "aer"\nray_resources = {bad}\n')
    with pytest.raises(InputValueError, match=r"\[backends\.x\] ray_resources"):
        read_specs(path)


def test_without_ray_the_ray_executor_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(QRuntimeError, match=r"pip install 'qruntime\[ray\]'"):
        import_ray()


def test_serve_with_the_ray_executor_and_no_ray_fails_at_once_with_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from qruntime.cli.main import app

    monkeypatch.setitem(sys.modules, "ray", None)
    db = f"sqlite:///{tmp_path / 'q.db'}"
    result = CliRunner().invoke(app, ["serve", "--db", db, "--executor", "ray"])
    assert result.exit_code == 2
    assert "pip install 'qruntime[ray]'" in result.output
    result = CliRunner().invoke(app, ["serve", "--db", db, "--executor", "slurm"])
    assert result.exit_code == 2
    assert "use local or ray" in result.output
