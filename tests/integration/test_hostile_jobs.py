"""Hostile uploaded programs through the real server: each fails its own job, clearly,
and the server goes on serving."""

from __future__ import annotations

import os

import pytest

from qruntime import RuntimeJobFailureError, RuntimeJobMaxTimeoutError

HOSTILE = {
    "raises": ("raise RuntimeError('no luck')", "no luck"),
    "segfault": ("import ctypes\n    ctypes.string_at(0)", "SIGSEGV"),
    "exits": ("import os\n    os._exit(3)", "code 3"),
    "allocates": ("x = []\n    while True:\n        x.append(bytearray(50_000_000))", "memory"),
    "forks": (
        "import os, time\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            raise RuntimeError('fork refused')",
        "fork refused",
    ),
    "floods": ("import sys\n    while True:\n        sys.stdout.write('x' * 65536)", "log output"),
    "network": (
        "import socket\n    socket.create_connection(('127.0.0.1', PORT), timeout=2)",
        "Network is unreachable",
    ),
    "reads_database": ("open(DB).read()", "No such file or directory"),
}


def source(body: str, *, port: int, db: str) -> str:
    body = body.replace("PORT", str(port)).replace("DB", repr(db))
    return f"def main(backend, user_messenger, **kwargs):\n    {body}\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid-drop sandbox needs root (CI runs as root)")
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_fails_its_own_job_and_the_server_goes_on(server, name: str) -> None:
    service = server.service()
    db_path = server.db_url.removeprefix("sqlite:///")
    body, expected = HOSTILE[name]
    program_id = service.upload_program(
        data=source(body, port=server.settings.port, db=db_path),
        metadata={"name": name, "description": "hostile", "max_execution_time": 20},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    with pytest.raises(RuntimeJobFailureError) as info:
        job.result(timeout=90)
    assert expected.lower() in str(info.value).lower()

    follow = service.run(
        "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
    )
    assert follow.result(timeout=60)


def test_endless_loop_is_stopped_at_max_execution_time(server) -> None:
    service = server.service()
    program_id = service.upload_program(
        data="def main(backend, user_messenger, **kwargs):\n    while True:\n        pass\n",
        metadata={"name": "loop", "description": "spins", "max_execution_time": 1},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    with pytest.raises(RuntimeJobMaxTimeoutError):
        job.result(timeout=60)
