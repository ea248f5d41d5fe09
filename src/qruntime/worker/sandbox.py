"""Confine a forked worker process: it sees nothing of the host and cannot reach it.

The threat model: a program's author is hostile, and so is every payload a
worker decodes. A sandboxed process must not read the server's secrets, reach
the database or any other service, see or touch another user's processes, files
or shared memory, or leave anything behind for the next job; a job that blows a
limit fails alone. Layers, each doing what the others cannot:

- **Nothing secret in memory.** The zygote is started from a minimal, explicit
  environment and argument list (`qruntime.server.executor.local.launch_zygote`)
  and never reads the server's settings, so a forked child's memory, its
  environment block included, holds nothing worth finding.
- **Namespaces.** The zygote forks the child into a PID namespace of its own
  (it is PID 1 there, with a fresh ``/proc`` that shows only its processes; the
  whole namespace dies with it); the child then unshares its mount namespace
  (`qruntime.worker.filesystem`: a read-only view of Python and its packages, a
  private capped ``/tmp``, ``/var/tmp`` and ``/dev/shm``, no unix socket of the
  host), an IPC namespace (no SysV or POSIX shared memory with anyone; its
  limits capped), a network namespace (no network, no abstract sockets) and a
  UTS namespace.
- **An unprivileged uid** no other live process holds (the zygote claims it
  machine-wide), no supplementary groups, ``PR_SET_NO_NEW_PRIVS``.
- **rlimits**: address space, CPU seconds, processes (threads included), file
  size, open files, no core dumps.
- **seccomp** (`qruntime.worker.seccomp`): kernel interfaces no program needs.
- The parent-death signal: the process dies with the zygote.

A zygote that is not root cannot give away uids or make PID namespaces: its
children get a user namespace instead and no ``/proc`` (the README says so).

``enter_sandbox`` runs in the child right after the fork. Any failure raises
``SandboxError``: the caller must then exit rather than run the program
unconfined.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from qruntime.worker.filesystem import FilesystemError, RootPlan, enter_root, enter_template
from qruntime.worker.seccomp import SeccompError, install_filter

__all__ = [
    "SandboxConfig",
    "SandboxError",
    "SandboxLimits",
    "enter_sandbox",
    "kill_uid",
    "uid_has_processes",
    "virtual_memory_size",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
HOSTNAME = b"qruntime-job"


class SandboxError(Exception):
    """Raised when a sandbox step fails; the job must not run."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one process; memory is on top of the zygote's own virtual size."""

    memory_bytes: int = 4 * 1024**3
    cpu_seconds: int = 600
    processes: int = 64  # counts threads too: Aer and rayon start one per core
    file_size_bytes: int = 1024**3
    open_files: int = 256
    #: The private /tmp (with /var/tmp and /dev/shm): tmpfs, so it counts as memory.
    tmp_bytes: int = 256 * 1024**2


@dataclass(frozen=True)
class SandboxConfig:
    """What a sandboxed process sees and as whom it runs.

    ``uid`` None: the zygote is not root; the process gets a user namespace.
    ``pid_namespace``: the process was forked into a PID namespace of its own (the
    zygote does that when it is root), so it can mount a fresh ``/proc``.
    ``seccomp``: the compiled filter (`qruntime.worker.seccomp.compile_filter`),
    None where ``libseccomp`` is missing. ``template_fd``: a mount namespace with the
    read-only view ready (`qruntime.worker.filesystem.make_template`, root only), which
    the process copies instead of building ``root`` itself.
    """

    limits: SandboxLimits
    root: RootPlan
    uid: int | None = None
    gid: int | None = None
    pid_namespace: bool = False
    seccomp: bytes | None = None
    template_fd: int | None = None


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


def _unshare(libc: ctypes.CDLL, uid: int | None, *, mount: bool) -> None:
    flags = CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | (CLONE_NEWNS if mount else 0)
    if uid is not None:
        _check(libc.unshare(flags), "unshare(mount, IPC, network, UTS namespaces)")
    else:
        # Not root: a user namespace of our own grants the right to make the others.
        outer_uid, outer_gid = os.getuid(), os.getgid()
        _check(libc.unshare(CLONE_NEWUSER | flags), "unshare(user and other namespaces)")
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{outer_uid} {outer_uid} 1"),
            ("gid_map", f"{outer_gid} {outer_gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _check(libc.sethostname(HOSTNAME, len(HOSTNAME)), "sethostname")


def _cap_ipc(limits: SandboxLimits) -> None:
    """Shared memory in the new IPC namespace at most the size of the job's /tmp."""
    pages = max(1, limits.tmp_bytes // resource.getpagesize())
    for name, value in (
        ("shmmax", limits.tmp_bytes),
        ("shmall", pages),
        ("shmmni", 64),
        ("msgmni", 16),
    ):
        try:
            with open(f"/proc/sys/kernel/{name}", "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise SandboxError(f"cannot cap the IPC namespace's {name}: {exc}") from None


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
    # Armed first, and again after the uid drop (a credential change clears it).
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    template = config.template_fd
    close_fds_except([*keep_fds, *([template] if template is not None else [])])
    _set_limits(config.limits)
    _unshare(libc, config.uid, mount=template is None)
    owner = None
    if config.uid is not None:
        owner = (config.uid, config.gid if config.gid is not None else config.uid)
    tmp, proc = config.limits.tmp_bytes, config.pid_namespace
    try:
        if template is not None:
            enter_template(template, config.root, tmp_bytes=tmp, owner=owner, proc=proc)
            os.close(template)
        else:
            enter_root(config.root, tmp_bytes=tmp, owner=owner, proc=proc)
    except (FilesystemError, OSError) as exc:
        raise SandboxError(f"cannot set up the sandbox's filesystem: {exc}") from None
    if config.pid_namespace and config.uid is not None:
        _cap_ipc(config.limits)
    if owner is not None:
        uid, gid = owner
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        except OSError as exc:
            raise SandboxError(f"cannot drop to uid {uid}: {exc}") from None
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SandboxError("still root after the uid drop")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if config.seccomp is not None:
        try:
            install_filter(config.seccomp)
        except SeccompError as exc:
            raise SandboxError(str(exc)) from None
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    os.environ.clear()
    os.environ.update(
        {
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "USER": "qruntime",
            "LOGNAME": "qruntime",
        }
    )
    tempfile.tempdir = "/tmp"


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
