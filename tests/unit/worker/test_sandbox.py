"""The sandbox's steps in a fresh process: the filesystem view, namespaces, seccomp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tests.probes import installed_under_tmp

# Runs in a fresh interpreter: the sandbox is entered by a single-threaded process.
CHILD = textwrap.dedent(
    """
    import json, os, sys, ctypes
    from qruntime.worker.filesystem import plan_root, make_template
    from qruntime.worker.sandbox import SandboxConfig, SandboxLimits, enter_sandbox
    from qruntime.worker.seccomp import compile_filter

    mode = sys.argv[1]
    plan = plan_root()
    template = make_template(plan, uids=range(61990, 61992)) if mode == "template" else None
    uid = 61990 if mode == "template" else None
    limits = SandboxLimits(memory_bytes=1 << 30, tmp_bytes=1 << 20)
    pid = os.fork() if mode != "template" else None
    if mode == "template":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare(0x20000000)  # the child leads a PID namespace, as the zygote does it
        pid = os.fork()
    if pid == 0:
        out = {}
        try:
            enter_sandbox(SandboxConfig(limits=limits, root=plan, uid=uid, gid=uid,
                                        pid_namespace=mode == "template", seccomp=compile_filter(),
                                        template_fd=template))
            def attempt(fn):
                try:
                    fn()
                    return "ok"
                except OSError as exc:
                    return exc.strerror
            out["root"] = sorted(os.listdir("/"))
            out["cwd"] = os.getcwd()
            out["write_tmp"] = attempt(lambda: open("/tmp/x", "w").write("x"))
            out["write_shm"] = attempt(lambda: open("/dev/shm/y", "w").write("y"))
            out["tmp_listing"] = sorted(os.listdir("/tmp"))
            out["write_root"] = attempt(lambda: open("/x", "w").write("x"))
            out["fill"] = attempt(lambda: open("/tmp/big", "wb").write(b"x" * (2 << 20)))
            proc = os.path.exists("/proc/self")
            out["proc"] = sorted(p for p in os.listdir("/proc") if p.isdigit()) if proc else None
            out["uid"] = os.getuid()
            out["numpy"] = attempt(lambda: __import__("numpy"))
            out["env"] = sorted(os.environ)
        except BaseException as exc:
            out["error"] = repr(exc)
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


def run_child(mode: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
    )
    out: dict[str, object] = json.loads(result.stdout)
    assert "error" not in out, out
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the template and uids need root")
def test_a_root_zygotes_child_sees_a_read_only_root_and_a_private_capped_tmp() -> None:
    out = run_child("template")
    assert "run" not in out["root"]
    assert "home" not in out["root"]
    assert out["cwd"] == "/tmp"
    assert out["write_tmp"] == "ok"
    assert out["write_shm"] == "ok"
    # /dev/shm is the same private tmpfs; an install under the host's /tmp shows in it.
    assert set(out["tmp_listing"]) - installed_under_tmp() == {"x", "y"}
    assert out["write_root"] == "Read-only file system"
    assert out["fill"] == "No space left on device"
    assert out["proc"] == ["1"]  # alone in its PID namespace
    assert out["uid"] == 61990
    assert out["numpy"] == "ok"
    assert out["env"] == ["HOME", "LANG", "LOGNAME", "PATH", "TMPDIR", "USER"]


def test_without_root_a_user_namespace_gives_the_same_view_without_proc() -> None:
    out = run_child("user")
    assert "run" not in out["root"]
    assert out["write_tmp"] == "ok"
    assert out["write_root"] == "Read-only file system"
    assert out["fill"] == "No space left on device"
    assert out["proc"] is None
    assert out["numpy"] == "ok"
