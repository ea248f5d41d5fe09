"""Programs bigger than one file: folders and zip archives with dependencies, end to end."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from qruntime import InputValueError, PayloadTooLargeError

PROGRAM = """\
import json
from pathlib import Path

import helpers
from tools.stats import mean


def main(backend, user_messenger, **kwargs):
    table = json.loads((Path(__file__).parent / "table.json").read_text())
    values = kwargs.get("values", table["values"])
    user_messenger.publish({"module": helpers.__name__})
    return {"mean": mean(values), "double": helpers.double(len(values)), "file": __file__}
"""
HELPERS = "def double(x):\n    return 2 * x\n"
STATS = "from .total import total\n\ndef mean(values):\n    return total(values) / len(values)\n"
TOTAL = "import numpy as np\n\ndef total(values):\n    return float(np.sum(values))\n"


def _folder(root: Path) -> Path:
    (root / "tools").mkdir(parents=True)
    (root / "program.py").write_text(PROGRAM)
    (root / "helpers.py").write_text(HELPERS)
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "stats.py").write_text(STATS)
    (root / "tools" / "total.py").write_text(TOTAL)
    (root / "table.json").write_text('{"values": [1, 2, 3, 6]}')
    return root


def _metadata(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "folder", "max_execution_time": 60, **extra}


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_a_folder_program_with_modules_data_and_a_present_dependency_runs(
    server, tmp_path: Path
) -> None:
    service = server.service()
    numpy_version = np.__version__
    program_id = service.upload_program(
        data=str(_folder(tmp_path / "mean")),
        metadata=_metadata("mean", dependencies=[f"numpy>={numpy_version}", "qiskit"]),
    )
    program = service.program(program_id, refresh=True)
    assert program.entry_point == "program.py"
    assert program.files == [
        "helpers.py",
        "program.py",
        "table.json",
        "tools/__init__.py",
        "tools/stats.py",
        "tools/total.py",
    ]
    assert program.dependencies == [f"numpy>={numpy_version}", "qiskit"]
    assert "def main(" in program.data  # the entry module's source
    assert f"Dependencies: numpy>={numpy_version}, qiskit" in str(program)

    heard: list[Any] = []
    job = service.run(
        program_id, {}, options={"backend": "aer_simulator"}, callback=lambda _, m: heard.append(m)
    )
    result = job.result(timeout=90)
    assert result["mean"] == 3.0
    assert result["double"] == 8
    # Unpacked in the job's private /tmp, and imported from there.
    assert result["file"].startswith("/tmp/qruntime-program-")
    assert heard[0] == {"module": "helpers"}

    # Another job of the same program, with inputs: a fresh copy, same modules.
    again = service.run(program_id, {"values": [10, 20]}, options={"backend": "aer_simulator"})
    assert again.result(timeout=90)["mean"] == 15.0


def test_a_zip_with_an_entry_point_in_a_package_uses_relative_imports(server, tmp_path) -> None:
    service = server.service()
    archive = tmp_path / "app.zip"
    archive.write_bytes(
        _zip(
            {
                "app/__init__.py": "",
                "app/run.py": "from .util import answer\n\n"
                "def main(backend, user_messenger, **kwargs):\n    return answer()\n",
                "app/util.py": "def answer():\n    return 42\n",
            }
        )
    )
    program_id = service.upload_program(
        data=str(archive), metadata=_metadata("app", entry_point="app/run.py")
    )
    job = service.run(program_id, {}, options={"backend": "aer_simulator"})
    assert job.result(timeout=90) == 42

    # New code for it: a folder whose entry point is the default one.
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "program.py").write_text(
        "from other import value\ndef main(backend, user_messenger, **kwargs):\n    return value\n"
    )
    (folder / "other.py").write_text("value = 'v2'\n")
    service.update_program(program_id, data=folder, metadata={"entry_point": "program.py"})
    job = service.run(program_id, {}, options={"backend": "aer_simulator"})
    assert job.result(timeout=90) == "v2"
    assert service.program(program_id, refresh=True).files == ["other.py", "program.py"]


def test_a_missing_or_mismatched_dependency_is_refused_at_upload_with_its_name(
    server, tmp_path: Path
) -> None:
    service = server.service()
    folder = _folder(tmp_path / "deps")
    with pytest.raises(InputValueError, match="'surely-not-installed-qrt' is not installed"):
        service.upload_program(
            data=str(folder), metadata=_metadata("deps", dependencies=["surely-not-installed-qrt"])
        )
    with pytest.raises(
        InputValueError, match=f"does not match the installed numpy {np.__version__}"
    ):
        service.upload_program(
            data=str(folder), metadata=_metadata("deps", dependencies=["numpy<1"])
        )
    with pytest.raises(InputValueError, match="not a pip requirement"):
        service.upload_program(
            data=str(folder), metadata=_metadata("deps", dependencies=["numpy>>1"])
        )
    assert [p.name for p in service.programs(refresh=True) if p.name == "deps"] == []


def test_archives_that_escape_or_break_are_refused(server, tmp_path: Path) -> None:
    service = server.service()
    main = "def main(backend, user_messenger, **kwargs):\n    return 1\n"
    cases = {
        "escape": ({"program.py": main, "../evil.py": "x = 1"}, "leaves the folder"),
        "absolute": ({"program.py": main, "/etc/evil.py": "x = 1"}, "absolute"),
        "no-entry": ({"main.py": main}, "no entry point 'program.py'"),
        "no-main": ({"program.py": "x = 1\n"}, "program.py: .*main"),
        "syntax": (
            {"program.py": main, "broken.py": "def (:\n"},
            "Module broken.py does not compile",
        ),
    }
    for name, (members, message) in cases.items():
        path = tmp_path / f"{name}.zip"
        path.write_bytes(_zip(members))
        with pytest.raises(InputValueError, match=message):
            service.upload_program(data=str(path), metadata=_metadata(name))
    bomb = tmp_path / "bomb.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("program.py", main)
        archive.writestr("zeros.bin", bytes(50_000_000))
    bomb.write_bytes(buffer.getvalue())
    with pytest.raises(PayloadTooLargeError, match="uncompressed"):
        service.upload_program(data=str(bomb), metadata=_metadata("bomb"))
    # entry_point is for folders only.
    with pytest.raises(InputValueError, match="single source file"):
        service.upload_program(data=main, metadata=_metadata("one", entry_point="other.py"))


def test_the_program_environment_lists_what_programs_can_import(server) -> None:
    service = server.service()
    environment = service.program_environment()
    packages = {item["name"].lower(): item["version"] for item in environment["packages"]}
    assert packages["numpy"] == np.__version__
    assert "qiskit" in packages
    assert environment["python"].count(".") == 2
    # Not mistaken for a program id, and it needs a token.
    assert httpx.get(f"{server.url}/programs/environment").status_code == 401
