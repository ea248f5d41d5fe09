"""Uploaded programs that try to break out of the sandbox, through the real server.

Each probe below is one way a hostile program reached the server's secrets, the
database or another user's data on an earlier version; each must now fail. The
probes run on SQLite and on PostgreSQL (a PostgreSQL server listens on a unix
socket on this machine: the probe that connects to it must not find it).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.probes import installed_under_tmp

from qruntime import RuntimeJobFailureError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the full sandbox (uids, PID namespaces) needs root; CI runs as root"
)

SECRET = "qrt_secret_" + uuid.uuid4().hex
PROJECT_FILE = Path(__file__).resolve()
HOST_SOCKETS = (
    "/var/run/postgresql/.s.PGSQL.5432",
    "/run/postgresql/.s.PGSQL.5432",
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
)

PROBE = r"""
import ctypes, errno, os, socket, stat

def attempt(fn):
    try:
        return ["ok", fn()]
    except Exception as exc:
        return ["refused", f"{type(exc).__name__}: {exc}"]

def memory_block(first, last):
    # /proc/self/stat fields 48-51: arg_start, arg_end, env_start, env_end.
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[first - 3]), int(fields[last - 3])
    return ctypes.string_at(start, end - start).decode("latin-1")

def sockets_under(roots):
    found = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
                except OSError:
                    pass
    return found

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        return "connected"
    finally:
        s.close()

def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path

def unshare_user():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "unshared"

def main(backend, user_messenger, **kwargs):
    out = {}
    out["env_block"] = attempt(lambda: memory_block(50, 51))
    out["argv_block"] = attempt(lambda: memory_block(48, 49))
    out["init_environ"] = attempt(lambda: open("/proc/1/environ", "rb").read().decode("latin-1"))
    out["environ"] = dict(os.environ)
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    cmdline = f"/proc/{SERVER_PID}/cmdline"
    out["server_cmdline"] = attempt(lambda: open(cmdline, "rb").read().decode("latin-1"))
    out["kill_server"] = attempt(lambda: os.kill(SERVER_PID, 0))
    out["sockets"] = sockets_under(["/run", "/var/run", "/tmp", "/var/tmp", "/dev/shm", "/var/lib"])
    out["host_sockets"] = {p: attempt(lambda p=p: connect(p)) for p in HOST_SOCKETS}
    out["project_file"] = attempt(lambda: open(PROJECT_FILE).read()[:20])
    out["database"] = attempt(lambda: open(DATABASE, "rb").read(16).hex())
    out["root_listing"] = sorted(os.listdir("/"))
    out["write_root"] = attempt(lambda: write("/escape"))
    out["write_usr"] = attempt(lambda: write("/usr/escape"))
    out["write_tmp"] = attempt(lambda: write("/tmp/fine"))
    out["unshare_user"] = attempt(unshare_user)
    out["uid"] = [os.getuid(), os.geteuid(), os.getgroups()]
    out["hostname"] = socket.gethostname()
    return out
"""


def program(body: str, **names: Any) -> str:
    for name, value in names.items():
        body = body.replace(name, repr(value))
    return body


def run_program(service: Any, source: str, *, name: str = "probe", **options: Any) -> Any:
    program_id = service.upload_program(
        data=source,
        metadata={"name": name, "description": "sandbox probe", "max_execution_time": 60},
    )
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator", **options})
    return job.result(timeout=120)


@pytest.fixture
def hostile_server(make_server, db_url: str, monkeypatch: pytest.MonkeyPatch):
    """A real server whose own process holds a secret in its environment."""
    monkeypatch.setenv("QRUNTIME_PROBE_SECRET", SECRET)
    return make_server(db_url=db_url)


def test_a_program_finds_nothing_of_the_host(hostile_server) -> None:
    database = hostile_server.db_url.removeprefix("sqlite:///")
    source = program(
        PROBE,
        SERVER_PID=os.getpid(),
        HOST_SOCKETS=list(HOST_SOCKETS),
        PROJECT_FILE=str(PROJECT_FILE),
        DATABASE=database,
    )
    out = run_program(hostile_server.service(), source)

    # No secret anywhere in its memory: the environment block it was started with, its
    # argument block, its environment.
    assert out["env_block"][0] == out["argv_block"][0] == "ok"
    for key in ("env_block", "argv_block", "init_environ"):
        _status, text = out[key]  # /proc/1/environ: unreadable after the uid drop, or clean
        assert SECRET not in text
        assert "QRUNTIME_" not in text
        assert hostile_server.admin_token not in text
        assert hostile_server.db_url not in text
    assert not any(k.startswith("QRUNTIME") for k in out["environ"])
    # Alone in its PID namespace: no other process, not the server.
    assert out["pids"] == [1]
    assert out["server_cmdline"][0] == "refused"
    assert out["kill_server"][0] == "refused"
    # No unix socket of the host: neither found nor reachable by name.
    assert out["sockets"] == []
    host_has = [p for p in HOST_SOCKETS if os.path.exists(p)]
    assert host_has or not os.environ.get("CI"), "CI runs PostgreSQL on a unix socket"
    for path, (status, detail) in out["host_sockets"].items():
        assert status == "refused", (path, detail)
        assert "FileNotFoundError" in detail
    # Neither the project's files nor the database exist for it.
    assert out["project_file"][0] == "refused"
    assert "FileNotFoundError" in out["project_file"][1]
    if hostile_server.db_url.startswith("sqlite"):
        assert out["database"][0] == "refused"
        assert "FileNotFoundError" in out["database"][1]
    assert "home" not in out["root_listing"]
    assert "run" not in out["root_listing"]
    # Read-only but for its own /tmp.
    assert out["write_root"][0] == "refused"
    assert out["write_usr"][0] == "refused"
    assert out["write_tmp"] == ["ok", "/tmp/fine"]
    # The second layer: no new namespaces (seccomp), not root.
    assert out["unshare_user"][0] == "refused"
    uid, euid, groups = out["uid"]
    assert uid != 0
    assert euid != 0
    assert groups == []
    assert out["hostname"] == "qruntime-job"


LEAVE = r"""
import ctypes, os
def main(backend, user_messenger, **kwargs):
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        with open(f"{folder}/MARK", "w") as f:
            f.write("bob was here")
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(KEY, 1 << 20, 0o1666)  # IPC_CREAT | 0666
    if shmid < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    return [os.getuid(), shmid]
"""

LOOK = r"""
import ctypes, os
def main(backend, user_messenger, **kwargs):
    found = [f"{d}/MARK" for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(f"{d}/MARK")]
    listed = sorted({name for d in ("/tmp", "/var/tmp", "/dev/shm") for name in os.listdir(d)})
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(KEY, 0, 0)
    return {"found": found, "listed": listed, "shm": shmid, "errno": ctypes.get_errno()}
"""


def _sysv_keys_on_host() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines}


def test_nothing_a_job_leaves_reaches_another_users_job(hostile_server) -> None:
    key = 0x51520000 + os.getpid() % 0xFFFF
    bob = hostile_server.service(hostile_server.add_user("bob"))
    carol = hostile_server.service(hostile_server.add_user("carol"))
    bob_uid, _shmid = run_program(bob, program(LEAVE, KEY=key), name="leave")
    assert key not in _sysv_keys_on_host()  # its IPC namespace went with it
    for service in (carol, bob):  # another user's job, and the same user's next one
        seen = run_program(service, program(LOOK, KEY=key), name="look")
        assert seen["found"] == []
        assert set(seen["listed"]) <= installed_under_tmp()  # empty but for the install
        assert seen["shm"] == -1
        assert seen["errno"] == 2  # ENOENT
    assert not Path("/tmp/MARK").exists()
    assert not Path("/dev/shm/MARK").exists()
    assert bob_uid != 0


def test_a_full_tmp_fails_the_job_not_the_machine(make_server) -> None:
    server = make_server(sandbox_tmp_bytes=8 * 1024**2)
    source = (
        "def main(backend, user_messenger, **kwargs):\n"
        "    with open('/dev/shm/fill', 'wb') as f:\n"
        "        for _ in range(64):\n"
        "            f.write(b'x' * 1024 * 1024)\n"
    )
    with pytest.raises(RuntimeJobFailureError) as info:
        run_program(server.service(), source)
    assert "No space left on device" in str(info.value)


def test_results_and_interim_results_over_the_limits_fail_the_job(make_server) -> None:
    server = make_server(max_result_bytes=100_000, max_interim_bytes=100_000)
    service = server.service()
    big_result = "def main(backend, user_messenger, **kwargs):\n    return 'x' * 300_000\n"
    with pytest.raises(RuntimeJobFailureError) as info:
        run_program(service, big_result, name="big-result")
    assert "max_result_bytes" in str(info.value)
    chatty = (
        "def main(backend, user_messenger, **kwargs):\n"
        "    for _ in range(50):\n"
        "        user_messenger.publish('y' * 10_000)\n"
        "    return 'done'\n"
    )
    with pytest.raises(RuntimeJobFailureError) as info:
        run_program(service, chatty, name="chatty")
    assert "max_interim_bytes" in str(info.value)
    # Within the limits all is well, and the server goes on.
    assert run_program(service, "def main(backend, user_messenger):\n    return 'ok'\n") == "ok"


def test_the_server_refuses_the_unix_socket_probe_on_the_host_itself() -> None:
    """The probe above is meaningful: on this machine the test process can connect."""
    reachable = []
    for path in HOST_SOCKETS:
        if os.path.exists(path):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(path)
                reachable.append(path)
    if not reachable and not os.environ.get("CI"):
        pytest.skip("no database listens on a unix socket here")
    assert reachable, json.dumps(HOST_SOCKETS)
