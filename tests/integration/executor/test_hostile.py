"""Programs that misbehave: each ends with a clear error, and the executor carries on."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from qruntime.server.executor import LocalExecutor, WorkerEvent

Harness = Any  # the conftest's harness (test modules cannot import conftest)
ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="uid drop and root-only files need root")


def program(body: str) -> str:
    lines = ["import ctypes, os, socket, time", "def main(backend, user_messenger, **kwargs):"]
    return "\n".join(lines + ["    " + line for line in body.strip().splitlines()]) + "\n"


def run_hostile(harness: Harness, body: str, **fields: Any) -> WorkerEvent:
    """Run a hostile job, then check that a normal job still runs."""
    events = harness.run(harness.spec(source=program(body), **fields), timeout=60)
    after = harness.run(harness.spec(source=program("return 'still fine'")))
    assert json.loads(after[-1].data or "") == "still fine"
    assert events[-1].kind == "error", events[-1]
    return events[-1]


def test_exception_fails_the_job_with_the_programs_traceback(harness: Harness) -> None:
    error = run_hostile(harness, "x = 1\nreturn x / 0")
    assert error.reason == "failed"
    assert "ZeroDivisionError" in (error.message or "")
    assert "return x / 0" in (error.message or "")  # the program's own line


def test_segfault_is_reported_as_a_signal(harness: Harness) -> None:
    error = run_hostile(harness, "ctypes.string_at(0)")
    assert error.reason == "crashed"
    assert error.message == "killed by signal SIGSEGV"


def test_os_exit_is_reported_with_its_code(harness: Harness) -> None:
    error = run_hostile(harness, "os._exit(3)")
    assert error.reason == "crashed"
    assert error.message == "exited with code 3 before returning a result"


def test_endless_loop_is_killed_at_max_execution_time(harness: Harness) -> None:
    started = time.monotonic()
    error = run_hostile(harness, "while True:\n    pass", max_execution_time=1)
    assert error.reason == "ran_too_long"
    assert "max_execution_time of 1 s" in (error.message or "")
    assert time.monotonic() - started < 10


def test_unbounded_allocation_hits_the_memory_limit(harness: Harness) -> None:
    error = run_hostile(harness, "hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))")
    assert error.reason == "limit_exceeded"
    assert "memory limit exceeded" in (error.message or "")


@root_only
def test_fork_bomb_is_contained_and_cleaned_up(harness: Harness) -> None:
    body = """
uid = os.getuid()
user_messenger.publish(uid)
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""
    events = harness.run(harness.spec(source=program(body), max_execution_time=2), timeout=60)
    uid = json.loads(next(e.data for e in events if e.kind == "interim") or "")
    assert events[-1].kind == "error"
    assert events[-1].reason == "ran_too_long"
    time.sleep(0.3)
    assert [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid] == []
    after = harness.run(harness.spec(source=program("return 'still fine'")))
    assert after[-1].kind == "result"


def test_flooding_stdout_is_stopped_at_the_log_limit(harness: Harness) -> None:
    error = run_hostile(harness, "while True:\n    print('x' * 1000)")
    assert error.reason == "limit_exceeded"
    assert error.message == "log output exceeded 200000 bytes"


def test_flood_at_c_level_is_stopped_too(harness: Harness) -> None:
    error = run_hostile(harness, "while True:\n    os.write(2, b'y' * 65536)")
    assert error.reason == "limit_exceeded"


def test_network_connections_fail_inside_the_sandbox(harness: Harness) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        body = f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\nreturn 'connected'"
        error = run_hostile(harness, body)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert error.reason == "failed"
    assert "OSError" in (error.message or "") or "unreachable" in (error.message or "")


def test_a_file_of_the_server_does_not_exist_for_a_job(harness: Harness, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret")
    tmp_path.chmod(0o755)
    body = f"return open({str(secret)!r}).read()"
    error = run_hostile(harness, body)
    assert error.reason == "failed"
    assert "FileNotFoundError" in (error.message or "")


@root_only
def test_a_private_file_in_a_visible_folder_is_unreadable(
    harness: Harness, programs_dir: Path
) -> None:
    secret = programs_dir / "secret.txt"
    secret.write_text("server secret")
    secret.chmod(0o600)
    try:
        error = run_hostile(harness, f"return open({str(secret)!r}).read()")
    finally:
        secret.unlink()
    assert error.reason == "failed"
    assert "PermissionError" in (error.message or "")


def test_cancel_kills_a_running_job(harness: Harness) -> None:
    spec = harness.spec(source=program("user_messenger.publish(1)\ntime.sleep(60)"))
    events, done = harness.submit(spec)
    _wait_for_interim(events)
    assert harness.call(harness.executor.cancel(spec.job_id)) is True
    harness.wait(done, 10)
    assert events[-1].kind == "error"
    assert events[-1].reason == "cancelled"
    assert harness.call(harness.executor.cancel(spec.job_id)) is False


def _wait_for_interim(events: list[WorkerEvent]) -> None:
    deadline = time.monotonic() + 20
    while not any(e.kind == "interim" for e in events) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_cancel_kills_a_running_builtin_and_the_pool_recovers(harness: Harness) -> None:
    slow = harness.spec(builtin="qrtest_programs.sleeper")
    events, done = harness.submit(slow)
    _wait_for_interim(events)
    assert harness.call(harness.executor.cancel(slow.job_id)) is True
    harness.wait(done, 10)
    assert events[-1].reason == "cancelled"
    assert not harness.worker_alive(json.loads(events[1].data or ""))
    for _ in range(3):
        result = harness.run(harness.spec(builtin="qrtest_programs.counter"))
        assert result[-1].kind == "result"


def test_builtin_over_time_is_killed_and_the_pool_recovers(harness: Harness) -> None:
    events = harness.run(harness.spec(builtin="qrtest_programs.sleeper", max_execution_time=0.5))
    assert events[-1].reason == "ran_too_long"
    result = harness.run(harness.spec(builtin="qrtest_programs.counter"))
    assert result[-1].kind == "result"


def test_crashing_pool_worker_is_reported_and_replaced(harness: Harness) -> None:
    events = harness.run(harness.spec(builtin="qrtest_programs.sleeper", inputs='{"crash": true}'))
    assert events[-1].reason == "crashed"
    assert events[-1].message == "exited with code 5 before returning a result"
    results = [harness.run(harness.spec(builtin="qrtest_programs.counter")) for _ in range(4)]
    assert all(r[-1].kind == "result" for r in results)


def test_jobs_queue_when_every_pool_worker_is_busy(harness: Harness) -> None:
    spec = {"builtin": "qrtest_programs.sleeper", "inputs": '{"seconds": 0.3}'}
    started = time.monotonic()
    submitted = [harness.submit(harness.spec(**spec)) for _ in range(4)]
    for events, done in submitted:
        harness.wait(done)
        assert json.loads(events[-1].data or "") == "slept"
    assert time.monotonic() - started >= 0.55  # two workers, four jobs


def test_stop_leaves_no_processes_behind(
    make_harness: Callable[..., Harness], programs_dir: Path
) -> None:
    h = make_harness(lambda: LocalExecutor(env={"PYTHONPATH": str(programs_dir)}))
    zygote = psutil.Process(h.executor.zygote_info["pid"])
    events, _done = h.submit(h.spec(source=program("user_messenger.publish(1)\ntime.sleep(60)")))
    _wait_for_interim(events)
    family = [zygote, *zygote.children(recursive=True)]
    assert len(family) >= 4  # the zygote, two pool workers, the job
    h.call(h.executor.stop(), timeout=30)
    assert events[-1].kind == "error"
    assert events[-1].reason == "cancelled"
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert alive == []


@root_only
def test_pooled_workers_are_not_root_and_a_blowup_fails_only_its_job(harness: Harness) -> None:
    uid, address_space = result_of(harness.run(harness.spec(builtin="qrtest_programs.whoami")))
    assert uid != 0
    assert address_space != resource.RLIM_INFINITY
    events = harness.run(harness.spec(builtin="qrtest_programs.hog"))
    assert events[-1].kind == "error"
    assert events[-1].reason == "limit_exceeded"
    assert "memory" in (events[-1].message or "")
    for _ in range(3):  # the pool goes on
        assert harness.run(harness.spec(builtin="qrtest_programs.counter"))[-1].kind == "result"


def result_of(events: list[WorkerEvent]) -> Any:
    assert events[-1].kind == "result", events[-1]
    return json.loads(events[-1].data or "")
