"""The zygote: a warm process that forks one sandboxed child per job, and the pool workers.

Started by the executor as ``python -m qruntime.worker.zygote --control-fd N
--config JSON``. It imports Qiskit, Aer and everything programs are likely to
need, builds the catalogue's simulators, and then serves the control socket:

- ``spawn`` (with two descriptors: the process's socket and the write end of
  its log pipe) forks a job child (``kind: job``: runs one job), a pool worker
  (``kind: pool``: runs built-in jobs one after another) or a session worker
  (``kind: session``: runs one session's jobs one after another); each in the
  sandbox (`qruntime.worker.sandbox`) when the header says so, with a uid of
  its own for its whole life;
- ``kill`` kills a process and everything it started;
- ``shutdown`` (or the executor closing the socket) kills everything and exits.

It answers ``ready``, ``spawned`` and ``exited`` (exit code or signal, sent
once the process and all its leftovers are gone).

The zygote must stay single-threaded: a fork copies only the forking thread,
and a child that inherits the bookkeeping of thread pools whose threads it
lacks (Qiskit's rayon pool, OpenMP) deadlocks on first use. So it never runs
a transpilation or a simulation itself: a throw-away child does the warm-up
and reports which modules that loaded, and the zygote only imports them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import gc
import importlib
import json
import os
import select
import signal
import socket
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qruntime.worker.protocol import FrameSocket, Header

if TYPE_CHECKING:
    from qruntime.worker.filesystem import RootPlan

__all__ = ["main"]

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWPID = 0x20000000
# Root-only: where zygotes claim job uids machine-wide (see Zygote._claim_slot).
_SLOT_LOCK_DIR = Path("/run/qruntime-uids")
# Job uids are uid_base .. uid_base + _SLOT_COUNT - 1.
_SLOT_COUNT = 1000
# What stops a server: the zygote and its children ignore them (see main()).
_SERVER_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Modules programs commonly import: imported once here, not in every job (the sandbox
# shows the Python installation, so other modules still import, only slower).
_PRELOAD_NAMES = """
    abc array base64 bisect cmath collections collections.abc concurrent.futures contextlib
    copy csv dataclasses datetime decimal enum fractions functools hashlib heapq io
    itertools json logging math numbers operator pickle pprint queue random re statistics
    string struct textwrap threading time traceback typing uuid warnings zlib numpy
    numpy.linalg numpy.random scipy scipy.linalg scipy.optimize scipy.sparse
    scipy.sparse.linalg scipy.special qiskit qiskit.circuit.library qiskit.quantum_info
    qiskit.primitives qiskit.transpiler qiskit.qpy qiskit.result qiskit_aer
    qiskit_aer.noise qiskit_aer.primitives qruntime.encoding qruntime.backends
    qruntime.errors qruntime.worker.runner qruntime.worker.sandbox
"""
PRELOAD = tuple(_PRELOAD_NAMES.split())


def _warm_up(catalogue_path: Path | None) -> None:
    """Exercise what jobs do (transpile, run, primitives, encoding) to load lazy modules."""
    from qiskit import QuantumCircuit, transpile
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2, SamplerV2

    from qruntime.encoding import dumps, loads
    from qruntime.worker.backend import get_catalogue

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    measured = qc.measure_all(inplace=False)
    catalogue = get_catalogue(catalogue_path)
    # Every ideal simulator, and the smallest device that a Bell circuit fits (a provider's
    # factory is a lab's code: it runs in the workers that use it, not here).
    devices = [e for e in catalogue if e.spec.kind == "device" and e.spec.num_qubits >= 2]
    entries = [e for e in catalogue if e.spec.kind == "aer" and e.unavailable_reason is None]
    entries += sorted(devices, key=lambda e: e.spec.num_qubits)[:1]
    for entry in entries:
        from qruntime.worker.backend import get_backend

        backend = get_backend(entry.name, catalogue_path=catalogue_path)
        for level in range(4):
            compiled = transpile(measured, backend, optimization_level=level, seed_transpiler=1)
        backend.run(compiled, shots=8).result().to_dict()
    SamplerV2().run([measured], shots=8).result()
    result = EstimatorV2().run([(qc, SparsePauliOp("ZZ"))]).result()
    loads(dumps({"c": measured, "r": result}))


def _warm_module_names(catalogue_path: Path | None) -> list[str]:
    """The modules a warm-up loads, found in a throw-away child."""
    read_end, write_end = os.pipe()
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            # Die with the zygote: a server that fails to start kills it mid warm-up.
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG
            if os.getppid() != zygote:  # it died before the line above
                os._exit(1)
            _warm_up(catalogue_path)
            data = json.dumps(sorted(sys.modules)).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BrokenPipeError:
            code = 1  # the zygote is gone: nobody to tell, nothing to report
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    return list(json.loads(data)) if data else []


def preload(catalogue_path: Path | None) -> int:
    """Import what jobs need and build the simulators; returns the module count."""
    for name in PRELOAD:
        importlib.import_module(name)
    for name in _warm_module_names(catalogue_path):
        if name not in sys.modules:
            # Private or platform modules may import only indirectly.
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    # Qiskit's transpiler plugins are found through stevedore, which stats every
    # sys.path entry unless its in-process cache already holds them: fill it now.
    from qiskit.transpiler.preset_passmanagers.plugin import PassManagerStagePluginManager

    PassManagerStagePluginManager()
    from qruntime.worker.backend import preload_backends

    preload_backends(catalogue_path=catalogue_path)
    return len(sys.modules)


@dataclass
class _Child:
    ref: int
    pid: int
    kind: str
    uid: int | None
    slot: int | None


class Zygote:
    """The control loop; see the module docstring."""

    def __init__(self, control: FrameSocket, config: dict[str, Any]) -> None:
        self.control = control
        self.catalogue_path = Path(config["catalogue"]) if config.get("catalogue") else None
        self.uid_base = int(config.get("uid_base", 61000))
        self.root = os.geteuid() == 0
        self.children: dict[int, _Child] = {}
        self.by_ref: dict[int, _Child] = {}
        # Slot -> the descriptor of its lock file (-1: no lock; see _claim_slot).
        self.slots_in_use: dict[int, int] = {}
        self.next_slot = 0
        self.sandbox = _SandboxParts(
            config.get("python_path") or [],
            root=self.root,
            uids=range(self.uid_base, self.uid_base + _SLOT_COUNT),
        )

    def serve(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        try:
            while True:
                readable, _, _ = select.select([self.control.fileno(), wake_read], [], [])
                if wake_read in readable:
                    while True:
                        try:
                            if not os.read(wake_read, 4096):
                                break
                        except BlockingIOError:
                            break
                self._reap()
                if self.control.fileno() in readable:
                    try:
                        frame = self.control.recv()
                    except OSError:  # the executor is gone
                        return
                    if frame is None:
                        return
                    header, _payload, fds = frame
                    if not self._handle(header, fds):
                        return
        finally:
            self._kill_all()

    def _handle(self, header: Header, fds: list[int]) -> bool:
        op = header.get("op")
        if op == "spawn":
            self._spawn(header, fds)
        elif op == "kill":
            child = self.by_ref.get(int(header["ref"]))
            if child is not None:
                self._kill(child, unreaped=True)
        elif op == "shutdown":
            return False
        for fd in fds:
            os.close(fd)
        return True

    def _claim_slot(self) -> int:
        """A uid slot no live child of any zygote on this machine holds.

        Several servers (or test runs) may share a machine, and a zygote kills every
        process of a uid when its job ends: without a machine-wide claim one
        server's job would kill another's long-lived session worker. The claim is an
        ``flock`` on a file per slot, which the kernel drops if this process dies.
        Slots are taken round-robin, so a uid just freed is the last to be used again.
        """
        for step in range(_SLOT_COUNT):
            slot = (self.next_slot + step) % _SLOT_COUNT
            if slot not in self.slots_in_use:
                fd = _lock_slot(slot)
                if fd is not None:
                    self.slots_in_use[slot] = fd
                    self.next_slot = slot + 1
                    return slot
        raise OSError(f"all {_SLOT_COUNT} job uids are in use")

    def _spawn(self, header: Header, fds: list[int]) -> None:
        from qruntime.worker.sandbox import SandboxConfig, SandboxLimits

        ref = int(header["ref"])
        kind = str(header.get("kind", "job"))
        if len(fds) != 2:
            self.control.send({"op": "spawn_failed", "ref": ref, "message": "expected 2 fds"})
            return
        config: SandboxConfig | None = None
        slot = uid = None
        if header.get("sandbox"):
            try:
                root_plan = self.sandbox.root_plan()
                if self.root:
                    slot = self._claim_slot()
                    uid = self.uid_base + slot
            except Exception as exc:  # the process must not start unconfined
                message = f"the sandbox cannot be set up here: {exc}"
                self.control.send({"op": "spawn_failed", "ref": ref, "message": message})
                return
            config = SandboxConfig(
                limits=SandboxLimits(**header.get("limits", {})),
                root=root_plan,
                uid=uid,
                gid=uid,
                pid_namespace=self.root,
                seccomp=self.sandbox.seccomp,
                template_fd=self.sandbox.template_fd,
            )
        pid = self.sandbox.fork(new_pid_namespace=config is not None and self.root)
        if pid == 0:
            self._child(kind, fds[0], fds[1], config)
        child = _Child(ref=ref, pid=pid, kind=kind, uid=uid, slot=slot)
        self.children[pid] = child
        self.by_ref[ref] = child
        self.control.send({"op": "spawned", "ref": ref, "pid": pid})

    def _child(self, kind: str, sock_fd: int, log_fd: int, config: Any) -> None:
        """The body of a forked child; never returns."""
        from qruntime.worker.runner import run_one, serve_pool
        from qruntime.worker.sandbox import SandboxError, close_fds_except, enter_sandbox

        code = 70
        channel: FrameSocket | None = None
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for signum in _SERVER_SIGNALS:  # the server's to send: see main()
                signal.signal(signum, signal.SIG_IGN)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            channel = FrameSocket(socket.socket(fileno=sock_fd))
            if config is not None:
                enter_sandbox(config, keep_fds=[sock_fd])
            else:
                close_fds_except([sock_fd])
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            if kind in ("pool", "session"):
                serve_pool(channel, catalogue_path=self.catalogue_path)
            else:
                run_one(channel, catalogue_path=self.catalogue_path)
            code = 0
        except SandboxError as exc:
            if channel is not None:
                message = f"the sandbox could not be set up: {exc}"
                with contextlib.suppress(OSError):
                    channel.send({"kind": "error", "reason": "crashed", "message": message})
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def _kill(self, child: _Child, *, unreaped: bool = False) -> None:
        """Kill ``child``'s process group (and uid); ``unreaped``: the process itself too.

        Right after the fork the process may not have made its own group yet, and
        then killpg finds nothing: an unreaped child is killed by pid as well (a
        reaped one's pid may already belong to someone else).
        """
        if unreaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        if child.uid is not None:
            from qruntime.worker.sandbox import kill_uid, uid_has_processes

            # Forking the helper costs as much as forking a job: only when needed.
            if uid_has_processes(child.uid):
                kill_uid(child.uid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:  # an orphan we adopted as subreaper, or a kill helper
                continue
            self._cleanup(child)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            self.control.send(
                {"op": "exited", "ref": child.ref, "pid": pid, "code": code, "signal": sig}
            )

    def _cleanup(self, child: _Child) -> None:
        """Kill what the process left behind and free its uid.

        Its files lived in its own mount namespace, gone with its last process.
        """
        self.by_ref.pop(child.ref, None)
        self._kill(child)
        if child.slot is not None:
            fd = self.slots_in_use.pop(child.slot, -1)
            if fd >= 0:
                os.close(fd)  # releases the claim

    def _kill_all(self) -> None:
        for child in list(self.children.values()):
            self._kill(child, unreaped=True)
        deadline = time.monotonic() + 5.0
        while self.children and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)
                continue
            gone = self.children.pop(pid, None)
            if gone is not None:
                self._cleanup(gone)


class _SandboxParts:
    """What the zygote prepares once for its sandboxed children, and how it forks them."""

    def __init__(self, python_path: list[str], *, root: bool, uids: range) -> None:
        self.python_path = python_path
        self.root = root
        self.uids = uids
        self._plan: RootPlan | None = None
        self.template_fd: int | None = None
        self.seccomp: bytes | None = None
        try:
            from qruntime.worker.seccomp import compile_filter

            self.seccomp = compile_filter()
        except Exception as exc:
            print(f"qruntime zygote: no seccomp filter for sandboxed jobs: {exc}", file=sys.stderr)
        # Our own PID namespace, to return to after forking a child into a new one.
        self._own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY) if root else -1
        self._libc = ctypes.CDLL(None, use_errno=True)

    def root_plan(self) -> RootPlan:
        """The sandbox's filesystem view, planned at the first sandboxed spawn.

        Planned after the preload, so that it knows the imported packages' folders.
        """
        if self._plan is None:
            from qruntime.worker.filesystem import make_template, plan_root

            plan = plan_root(python_path=self.python_path)
            if self.root:
                self.template_fd = make_template(plan, uids=self.uids)
            self._plan = plan
        return self._plan

    def fork(self, *, new_pid_namespace: bool) -> int:
        """``os.fork``; the child leads a new PID namespace when asked (root only).

        ``unshare(CLONE_NEWPID)`` puts the *next* child into a new namespace; ``setns``
        back to our own then keeps every later fork (pool workers, helpers) in ours. One
        fork, as without a namespace: a trivial job costs no more than before.
        """
        if not new_pid_namespace:
            return os.fork()
        if self._libc.unshare(CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID) failed")
        try:
            pid = os.fork()
        except BaseException:
            self._return_to_own_pid_namespace()
            raise
        if pid != 0:
            self._return_to_own_pid_namespace()
        return pid

    def _return_to_own_pid_namespace(self) -> None:
        if self._libc.setns(self._own_pid_ns, CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the zygote's PID namespace failed")


def _lock_slot(slot: int) -> int | None:
    """An open descriptor holding ``slot``'s lock; None: another zygote holds it.

    -1 when the lock directory cannot be trusted: then this zygote alone decides,
    as if it were the only one on the machine.
    """
    try:
        os.makedirs(_SLOT_LOCK_DIR, mode=0o700, exist_ok=True)
        info = os.lstat(_SLOT_LOCK_DIR)
    except OSError:
        return -1
    # Sandboxed jobs must not be able to plant or hold these locks.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        return -1
    try:
        fd = os.open(_SLOT_LOCK_DIR / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        return -1
    return fd


def main(argv: list[str] | None = None) -> None:
    # Ctrl-C in the server's terminal, `docker stop`, systemd and `kill -- -PGID` signal
    # the server's whole process group (or cgroup): the server decides when its jobs and
    # workers stop (it drains them first), and the zygote ends when its control socket
    # closes. Its children inherit this.
    for signum in _SERVER_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="qruntime.worker.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--config", default="{}")
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    catalogue = Path(config["catalogue"]) if config.get("catalogue") else None
    if catalogue is not None:
        from qruntime.errors import QRuntimeError
        from qruntime.worker.backend import install_catalogue

        try:
            install_catalogue(catalogue, config.get("catalogue_tables") or {})
        except QRuntimeError as exc:
            print(f"qruntime zygote: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    control = FrameSocket(socket.socket(fileno=args.control_fd))
    started = time.monotonic()
    modules = preload(catalogue)
    gc.collect()
    # Keep the garbage collector from touching (and so copying) the preloaded objects.
    gc.freeze()
    try:
        control.send(
            {
                "op": "ready",
                "pid": os.getpid(),
                "threads": len(os.listdir("/proc/self/task")),
                "modules": modules,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    except OSError:  # the server went away while we warmed up: nobody to serve
        return
    Zygote(control, config).serve()


if __name__ == "__main__":
    main()
