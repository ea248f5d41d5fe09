"""Confine a forked job child: no network, an unprivileged uid, rlimits, a private directory.

``enter_sandbox`` runs in the child right after the fork, in this order: the
working directory (made while still root), the inherited descriptors, the
network namespace, the rlimits, the uid drop, ``PR_SET_NO_NEW_PRIVS`` and the
parent-death signal (set last: a credential change clears it), then the
environment. Any failure raises ``SandboxError``: the caller must then exit
rather than run the program unconfined.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SandboxConfig",
    "SandboxError",
    "SandboxLimits",
    "enter_sandbox",
    "kill_uid",
    "uid_has_processes",
    "virtual_memory_size",
]

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


class SandboxError(Exception):
    """Raised when a sandbox step fails; the job must not run."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one job; memory is on top of the zygote's own virtual size."""

    memory_bytes: int = 4 * 1024**3
    cpu_seconds: int = 600
    processes: int = 64  # counts threads too: Aer and rayon start one per core
    file_size_bytes: int = 1024**3
    open_files: int = 256


@dataclass(frozen=True)
class SandboxConfig:
    """Where and as whom a job runs. ``uid`` None: not root, use a user namespace."""

    workdir: Path
    limits: SandboxLimits
    uid: int | None = None
    gid: int | None = None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"{what} failed: {os.strerror(errno)}")


def virtual_memory_size() -> int:
    """This process's virtual size in bytes (``VmSize``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise SandboxError("no VmSize in /proc/self/status")


def close_fds_except(keep: Iterable[int]) -> None:
    """Close every descriptor above 2 except ``keep``."""
    start = 3
    for fd in sorted(k for k in set(keep) if k >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)


def _unshare_network(libc: ctypes.CDLL, uid: int | None) -> None:
    if uid is not None:
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        return
    # Not root: a user namespace of our own grants the right to make a network one.
    outer_uid, outer_gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{outer_uid} {outer_uid} 1"),
        ("gid_map", f"{outer_gid} {outer_gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _set_limits(limits: SandboxLimits) -> None:
    # The zygote already maps ~1.5 GiB; a limit below that makes children hang.
    address_space = virtual_memory_size() + limits.memory_bytes
    for kind, soft, hard in (
        (resource.RLIMIT_AS, address_space, address_space),
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 5),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        try:
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError) as exc:
            raise SandboxError(f"setrlimit({kind}) failed: {exc}") from None


def enter_sandbox(config: SandboxConfig, *, keep_fds: Iterable[int] = ()) -> None:
    """Confine the calling (freshly forked, single-threaded) process; see the module doc."""
    libc = _libc()
    try:
        os.mkdir(config.workdir, 0o700)
        if config.uid is not None:
            os.chown(
                config.workdir, config.uid, config.gid if config.gid is not None else config.uid
            )
    except OSError as exc:
        raise SandboxError(f"cannot create the job directory: {exc}") from None
    close_fds_except(keep_fds)
    _unshare_network(libc, config.uid)
    _set_limits(config.limits)
    if config.uid is not None:
        gid = config.gid if config.gid is not None else config.uid
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(config.uid, config.uid, config.uid)
        except OSError as exc:
            raise SandboxError(f"cannot drop to uid {config.uid}: {exc}") from None
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SandboxError("still root after the uid drop")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    parent = os.getppid()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the zygote died before the death signal was armed
        os._exit(1)
    workdir = str(config.workdir)
    os.environ.clear()
    os.environ.update(
        {
            "HOME": workdir,
            "TMPDIR": workdir,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
    )
    tempfile.tempdir = workdir
    os.chdir(workdir)


def uid_has_processes(uid: int) -> bool:
    """Whether any process runs with real uid ``uid`` (a scan of ``/proc``)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            return True
                        break
        except OSError:  # it exited meanwhile
            continue
    return False


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``, from a helper process running as that uid.

    ``kill(-1)`` from a process of that uid reaches exactly its processes, even
    those that left the job's process group; the kernel walks the task list in one
    pass that forks cannot race, so a fork bomb cannot outrun it.
    """
    if uid == 0:
        raise ValueError("refusing to kill every process of root")
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
