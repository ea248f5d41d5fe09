"""An Aer backend on the GPU (`device = "GPU"`): listed everywhere, and on a machine whose
Aer has no GPU, not operational with the reason, its jobs refused with that reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qruntime import InputValueError
from qruntime.backends.catalogue import aer_devices
from qruntime.cli.main import app

pytestmark = pytest.mark.skipif(
    "GPU" in aer_devices(), reason="this machine's Aer has a GPU: the refusal cannot be seen"
)


def test_a_gpu_backend_without_a_gpu_is_listed_not_operational_and_refuses_jobs(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "qruntime.toml"
    config.write_text('[backends.aer_gpu]\nkind = "aer"\ndevice = "GPU"\nlanes = 1\n')
    server = make_server(config_file=config)
    service = server.service()

    backend = service.backend("aer_gpu")
    status = backend.status()
    assert status.operational is False
    assert "qiskit-aer-gpu" in status.status_msg
    assert service.backend("aer_simulator").status().operational is True

    listed = httpx.get(
        f"{server.url}/backends", headers={"Authorization": f"Bearer {service._api.access_token}"}
    ).json()
    gpu = next(item for item in listed["backends"] if item["name"] == "aer_gpu")
    assert (gpu["operational"], gpu["lanes"]) == (False, 1)

    with pytest.raises(InputValueError, match=r"not operational: .*qiskit-aer-gpu"):
        service.run("hello-world", {}, options={"backend": "aer_gpu"})
    assert service.jobs(backend_name="aer_gpu") == []

    monkeypatch.setenv("QRUNTIME_URL", server.url)
    monkeypatch.setenv("QRUNTIME_TOKEN", server.admin_token)
    result = CliRunner().invoke(app, ["backends", "--json"], catch_exceptions=False)
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["aer_gpu"]["operational"] is False
    assert rows["aer_gpu"]["kind"] == "aer"
    assert rows["fake_27q"]["lanes"] == 1


def test_an_unknown_aer_device_is_refused_in_one_line(tmp_path: Path) -> None:
    from qruntime.backends.config_file import read_specs

    config = tmp_path / "qruntime.toml"
    config.write_text('[backends.aer_tpu]\nkind = "aer"\ndevice = "TPU"\n')
    with pytest.raises(InputValueError, match=r"aer_tpu.*device.*CPU, GPU"):
        read_specs(config)
