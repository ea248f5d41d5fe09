"""A seccomp filter for sandboxed processes: the second layer behind the namespaces.

The namespaces and the uid drop decide what a job can *see*; this filter removes
kernel interfaces that a quantum program never needs and that are the usual way
from an unprivileged process to a kernel bug: making namespaces (a user namespace
hands out capabilities over fresh kernel code), mounting, ``ptrace`` and
cross-process memory access, ``bpf``, ``perf_event_open``, ``userfaultfd``,
``io_uring``, keyrings, kernel modules, ``kexec``, file handles
(``open_by_handle_at`` walks around the mount namespace), and the new mount API.
Everything else is allowed: a deny list keeps Qiskit, Aer, numpy and OpenMP
working unchanged.

The filter is compiled once in the zygote with the system's ``libseccomp``
(Debian's ``libseccomp2``, through ctypes), exported as classic BPF, and each
child installs those bytes with one ``prctl``. ``clone3`` answers ``ENOSYS``
(its flags live in memory a filter cannot read), so glibc falls back to
``clone``, whose namespace flags the filter does check.

Landlock is not used: the mount namespace already limits the filesystem to a
read-only view with a private ``/tmp``, which is what Landlock would add.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os

__all__ = ["DENIED_SYSCALLS", "SeccompError", "compile_filter", "install_filter"]

logger = logging.getLogger(__name__)

# Denied with EPERM.
# fmt: off
DENIED_SYSCALLS = (
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # large kernel attack surfaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key",
    # the machine itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname",
    # file handles walk around the mount namespace
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "lookup_dcookie",
)
# fmt: on
# clone's first argument: any of these makes a namespace.
_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class SeccompError(Exception):
    """Raised when the filter cannot be built or installed."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _load_libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompError(
            f"libseccomp is not installed ({exc}): apt-get install libseccomp2"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def compile_filter() -> bytes:
    """The filter as classic BPF instructions (8 bytes each), for `install_filter`."""
    lib = _load_libseccomp()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompError("seccomp_init failed")
    try:

        def add(name: str, action: int, *conditions: tuple[int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # not a syscall on this architecture
                return
            array = (_ArgCmp * max(1, len(conditions)))(
                *(_ArgCmp(arg, _SCMP_CMP_MASKED_EQ, mask, value) for arg, mask, value in conditions)
            )
            result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
            if result < 0:
                raise SeccompError(f"seccomp rule for {name}: {os.strerror(-result)}")

        for name in DENIED_SYSCALLS:
            add(name, _act_errno(errno.EPERM))
        add("clone3", _act_errno(errno.ENOSYS))
        for flag in _NAMESPACE_FLAGS:
            add("clone", _act_errno(errno.EPERM), (0, flag, flag))
        read_end, write_end = os.pipe()
        try:
            result = lib.seccomp_export_bpf(ctx, write_end)
            os.close(write_end)
            write_end = -1
            if result < 0:
                raise SeccompError(f"seccomp_export_bpf: {os.strerror(-result)}")
            chunks = []
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise SeccompError("libseccomp exported no filter")
    return program


def install_filter(program: bytes) -> None:
    """Install ``program`` on the calling thread; ``PR_SET_NO_NEW_PRIVS`` must be set."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise SeccompError(f"prctl(PR_SET_SECCOMP) failed: {os.strerror(ctypes.get_errno())}")
