"""The filesystem a sandboxed process sees: a mount namespace of its own.

`plan_root` (in the zygote, once) decides what is visible: the system's
libraries (``/usr`` and the top-level ``/lib*``, ``/bin`` links), the Python
installation and the virtual environment's ``site-packages``, the folders the
operator put on the zygote's ``PYTHONPATH``, and, from any other folder on
``sys.path`` (an editable install's source tree), only the packages the zygote
imported from it. Nothing else of the host: no ``/run`` or ``/var/run`` (and so
no unix socket of PostgreSQL, MySQL or anything else), no ``/home``, no project
checkout beyond its package, no data directory, no ``/etc`` but the dynamic
linker's cache, the time zone and account files naming only root and the job uids.

`make_template` (in the zygote, once, as root) builds that view in a mount
namespace of its own: a small tmpfs as the root, the host paths bound read-only,
``nosuid`` and ``nodev``, a few device nodes, then ``pivot_root`` (the host's
tree is not reachable at all) and the root made read-only. `enter_template`
(in each freshly forked child) takes a private copy of it and mounts what is the
process's own: a tmpfs capped in size and inode count on ``/tmp`` (``/var/tmp``
and ``/dev/shm`` point to it) and, in its own PID namespace, a fresh ``/proc``.
The copy, and with it every file the job wrote, is gone when its last process
exits: nothing outlives a job for the next one that gets the same uid.
`enter_root` builds the whole view per process, for a zygote that is not root.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FilesystemError",
    "RootPlan",
    "enter_root",
    "enter_template",
    "make_template",
    "plan_root",
]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
CLONE_NEWNS = 0x00020000

_TOP_LEVEL = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
# Where a child mounts its new root before pivot_root: an empty folder it never binds from.
_STAGE_CANDIDATES = ("/mnt", "/media", "/srv")
_SKELETON_OPTIONS = "size=4m,nr_inodes=4096,mode=0755"
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)


class FilesystemError(Exception):
    """Raised when the sandbox's filesystem cannot be set up."""


@dataclass(frozen=True)
class RootPlan:
    """What a sandboxed process sees; made once by `plan_root`, applied by `enter_root`."""

    binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    stage: str

    @property
    def under_tmp(self) -> tuple[str, ...]:
        """Binds inside /tmp (a test's PYTHONPATH): kept aside, shown on each private /tmp."""
        return tuple(b for b in self.binds if _inside(b, ["/tmp"]))


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _real(path: str) -> str:
    return os.path.realpath(path)


def plan_root(*, python_path: list[str] | None = None) -> RootPlan:
    """The view for processes forked from this (warm) process; see the module doc.

    ``python_path``: folders the operator named on ``PYTHONPATH``, shown whole.
    """
    binds: list[str] = []
    symlinks: list[tuple[str, str]] = []
    for name in _TOP_LEVEL:
        path = f"/{name}"
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            binds.append(path)

    def bind(path: str) -> None:
        if os.path.exists(path) and not _inside(path, binds):
            # A parent bound later would hide this one: keep the outermost only.
            binds[:] = [b for b in binds if not _inside(b, [path])]
            binds.append(path)

    for prefix in {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}:
        bind(_real(prefix))
    for entry in python_path or ():
        if entry and os.path.isdir(entry):
            bind(_real(entry))
    # Packages imported from elsewhere (an editable install's src/): each one alone.
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if "." in name or not file:
            continue
        real = _real(file)
        if not _inside(real, binds):
            bind(os.path.dirname(real) if hasattr(module, "__path__") else real)
    for path in _ETC_FILES:
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.isfile(path):
            binds.append(path)
    stage = next(
        (
            c
            for c in _STAGE_CANDIDATES
            if os.path.isdir(c) and not os.path.islink(c) and not _inside(c, binds)
        ),
        None,
    )
    if stage is None:
        raise FilesystemError(
            f"no empty folder to build the sandbox's root on (one of {_STAGE_CANDIDATES})"
        )
    return RootPlan(binds=tuple(binds), symlinks=tuple(symlinks), stage=stage)


class _Mounter:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]

    def _fail(self, what: str) -> None:
        raise FilesystemError(f"{what} failed: {os.strerror(ctypes.get_errno())}")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str = ""
    ) -> None:
        result = self.libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        )
        if result != 0:
            self._fail(f"mount {source or fstype} on {target}")

    def bind_readonly(self, source: str, target: str) -> None:
        self.mount(source, target, None, MS_BIND | MS_REC)
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        self.mount(None, target, None, flags)

    def umount(self, target: str) -> None:
        if self.libc.umount2(target.encode(), MNT_DETACH) != 0:
            self._fail(f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        # SYS_pivot_root is 155 on x86-64 and 41 on arm64; glibc has no wrapper.
        number = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
        if number is None:
            raise FilesystemError(f"pivot_root: unsupported machine {os.uname().machine}")
        if self.libc.syscall(number, new_root.encode(), put_old.encode()) != 0:
            self._fail("pivot_root")


def _make_parents(root: str, path: str) -> str:
    target = root + path
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    return target


def _build_skeleton(m: _Mounter, plan: RootPlan, root: str, uids: range | None) -> None:
    """The read-only part of the view under ``root``: binds, links, devices, /etc."""
    for path in plan.binds:
        aside = path in plan.under_tmp
        target = f"{root}/.tmp-binds/{plan.binds.index(path)}" if aside else root + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.isdir(path):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        m.bind_readonly(path, target)
    for path, link in plan.symlinks:
        os.symlink(link, _make_parents(root, path))
    os.makedirs(f"{root}/dev", mode=0o755, exist_ok=True)
    for device in DEVICES:
        if os.path.exists(device):
            os.close(os.open(root + device, os.O_CREAT | os.O_WRONLY, 0o644))
            m.mount(device, root + device, None, MS_BIND)
    for name, link in _DEV_LINKS:
        os.symlink(link, f"{root}/dev/{name}")
    for path in ("/tmp", "/proc", "/var"):
        os.makedirs(root + path, mode=0o755, exist_ok=True)
    # One private tmpfs per process is mounted on /tmp; these show the same one.
    os.symlink("/tmp", f"{root}/var/tmp")
    os.symlink("/tmp", f"{root}/dev/shm")
    _write_etc(root, uids)


def _pivot(m: _Mounter, root: str) -> None:
    os.mkdir(f"{root}/.old", 0o700)
    m.pivot_root(root, f"{root}/.old")
    os.chdir("/")
    m.umount("/.old")
    os.rmdir("/.old")
    m.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mount_private(
    m: _Mounter, plan: RootPlan, *, tmp_bytes: int, owner: tuple[int, int] | None, proc: bool
) -> None:
    """The process's own part of the view: its /tmp, and /proc in a PID namespace."""
    uid, gid = owner if owner is not None else (os.getuid(), os.getgid())
    options = f"size={tmp_bytes},nr_inodes=16384,mode=0700,uid={uid},gid={gid}"
    m.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path in plan.under_tmp:
        os.makedirs(path, mode=0o755, exist_ok=True)
        m.mount(f"/.tmp-binds/{plan.binds.index(path)}", path, None, MS_BIND | MS_REC)
    if proc:
        m.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def make_template(plan: RootPlan, *, uids: range) -> int:
    """A mount namespace holding the read-only view; returns a descriptor of it (root only).

    Built once, in a short-lived helper process: `enter_template` then copies it per
    process, which costs a few system calls instead of `enter_root`'s few dozen. The
    descriptor keeps the namespace alive after the helper exits.
    """
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_read)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNS) != 0:
                raise FilesystemError(f"unshare: {os.strerror(ctypes.get_errno())}")
            m = _Mounter()
            m.mount(None, "/", None, MS_REC | MS_PRIVATE)
            m.mount("tmpfs", plan.stage, "tmpfs", MS_NOSUID | MS_NODEV, _SKELETON_OPTIONS)
            _build_skeleton(m, plan, plan.stage, uids)
            _pivot(m, plan.stage)
            libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL with the zygote
            os.write(ready_write, b"1")
            while True:  # until the zygote, holding the namespace, kills us
                signal.pause()
        except BaseException as exc:
            os.write(2, f"qruntime zygote: cannot build the sandbox's root: {exc}\n".encode())
        finally:
            os._exit(code)
    os.close(ready_write)
    try:
        if os.read(ready_read, 1) != b"1":
            raise FilesystemError("the helper that builds the sandbox's root failed")
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_read)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def enter_template(
    template_fd: int,
    plan: RootPlan,
    *,
    tmp_bytes: int,
    owner: tuple[int, int] | None,
    proc: bool,
) -> None:
    """Take a private copy of `make_template`'s namespace and mount this process's own parts."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(template_fd, CLONE_NEWNS) != 0 or libc.unshare(CLONE_NEWNS) != 0:
        raise FilesystemError(f"entering the sandbox's root: {os.strerror(ctypes.get_errno())}")
    _mount_private(_Mounter(), plan, tmp_bytes=tmp_bytes, owner=owner, proc=proc)
    os.chdir("/tmp")


def enter_root(
    plan: RootPlan, *, tmp_bytes: int, owner: tuple[int, int] | None, proc: bool
) -> None:
    """Build ``plan``'s view in this process's (just unshared) mount namespace.

    The slow path, for a zygote that is not root (in a user namespace of the
    child's own): a root zygote uses `make_template` and `enter_template`.
    ``owner``: who owns ``/tmp`` (else the caller). ``proc``: mount a fresh
    ``/proc`` (only in a PID namespace of its own).
    """
    m = _Mounter()
    m.mount(None, "/", None, MS_REC | MS_PRIVATE)
    m.mount("tmpfs", plan.stage, "tmpfs", MS_NOSUID | MS_NODEV, _SKELETON_OPTIONS)
    _build_skeleton(m, plan, plan.stage, None)
    _pivot(m, plan.stage)
    _mount_private(m, plan, tmp_bytes=tmp_bytes, owner=owner, proc=proc)
    os.chdir("/tmp")


def _write_etc(root: str, uids: range | None) -> None:
    """Minimal account files naming the job uids, and nothing of the host."""
    etc = Path(root, "etc")
    etc.mkdir(mode=0o755, exist_ok=True)
    users = [(os.getuid(), os.getgid())] if uids is None else [(u, u) for u in uids]
    lines = ["root:x:0:0:root:/:/usr/sbin/nologin"]
    lines += [f"qruntime:x:{u}:{g}:job:/tmp:/usr/sbin/nologin" for u, g in users if u != 0]
    (etc / "passwd").write_text("\n".join(lines) + "\n")
    groups = ["root:x:0:"] + [f"qruntime:x:{g}:" for _u, g in users if g != 0]
    (etc / "group").write_text("\n".join(groups) + "\n")
    (etc / "hostname").write_text("qruntime-job\n")
