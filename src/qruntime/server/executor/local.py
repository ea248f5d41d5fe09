"""Run jobs in worker processes on this machine: a zygote, sandboxed children and a pool.

Uploaded programs run in a child forked from the warm zygote per job, in the
sandbox (``qruntime.worker.sandbox``). Built-in programs run in pooled workers
(also forked from the zygote, then kept), which keep their caches from job to
job. A dedicated session's jobs run one at a time in a worker of the session's
own, kept until ``end_session`` (or until one of its jobs is killed), one for
its built-in and one for its uploaded programs; it keeps the session's
transpiled circuits, pass managers and simulators. Every one of these processes
is sandboxed (pooled and session workers too: they decode users' payloads).
Everything that simulates runs in those processes, never in the server's: Aer
holds the GIL while it simulates.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import itertools
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from qruntime.errors import QRuntimeError
from qruntime.programs.cache import COUNTER_NAMES
from qruntime.server.executor.base import ErrorReason, Executor, JobSpec, WorkerEvent
from qruntime.worker.protocol import (
    FrameParser,
    FrameSocket,
    Header,
    PayloadOverLimit,
    ProtocolError,
    encode_frame,
    read_frame,
)

if TYPE_CHECKING:
    from qruntime.server.settings import Settings

__all__ = ["LaunchedZygote", "LocalExecutor", "launch_zygote"]

logger = logging.getLogger(__name__)

_REASONS = ("failed", "ran_too_long", "cancelled", "crashed", "limit_exceeded")
# The worker's cache counters (qruntime.programs.cache): the only ones a report may carry.
_CACHE_COUNTERS = COUNTER_NAMES
# What the metrics call each kind of process.
_ROLES = {"pool": "pool", "session": "session", "job": "sandbox"}
# Bounds of the timing a worker reports (seconds): anything else is not believed.
_LATEST_TIMESTAMP = 1e11
_LONGEST_STAGE = 1e7
# A sandboxed session worker runs many jobs: its rlimit is only a backstop, each job
# gets its own CPU budget inside it (see qruntime.worker.runner.serve_pool).
_SESSION_CPU_SECONDS = 7 * 24 * 3600
# What the zygote keeps of the server's environment: nothing secret, only what
# Python, the numerical libraries and a GPU simulator need to behave as configured.
_ZYGOTE_VARIABLES = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "PYTHONPATH",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
)
Kill = tuple[ErrorReason, str]


@dataclass(eq=False)
class _Run:
    spec: JobSpec
    on_event: Callable[[WorkerEvent], None]
    proc: _Proc | None = None
    session: _SessionWorker | None = None
    started: bool = False
    done: bool = False
    kill: Kill | None = None
    log_overflow: bool = False
    log_bytes: int = 0
    interim_bytes: int = 0
    timer: asyncio.TimerHandle | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )


@dataclass(eq=False)
class _Proc:
    ref: int
    kind: str  # "job": one sandboxed job; "pool": a pooled worker
    log_fd: int
    writer: asyncio.StreamWriter | None = None
    run: _Run | None = None
    exit_status: tuple[int | None, int | None] | None = None
    reader_done: bool = False
    gone: bool = False
    session: _SessionWorker | None = None
    jobs: int = 0  # how many jobs were sent to it
    scope: str | None = None  # the cache scope of its last job (see _cache_scope)
    spawn_error: str | None = None  # why the zygote could not start it
    gone_event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _SessionWorker:
    """A session's own worker process and the jobs waiting for it, one at a time."""

    session_id: str
    sandboxed: bool
    proc: _Proc | None = None
    busy: _Run | None = None
    starting: bool = False
    ended: bool = False
    queue: deque[_Run] = field(default_factory=deque)


@dataclass
class LaunchedZygote:
    """A zygote process started ahead of its executor, and the executor's end of its socket."""

    process: subprocess.Popen[bytes]
    control: socket.socket

    def kill(self) -> None:
        """Stop it unused (the server did not start after all)."""
        self.control.close()
        self.process.kill()
        self.process.wait()


def launch_zygote(
    *, catalogue_path: Path | None = None, env: Mapping[str, str] | None = None
) -> LaunchedZygote:
    """Start the worker zygote now; a `LocalExecutor` given it adopts it at ``start``.

    The zygote takes the longest of everything at start-up (it imports Qiskit and Aer
    and warms them up), so ``qruntime serve`` launches it first, before it imports the
    server itself, and the two start side by side.

    Every sandboxed process is a copy of the zygote's memory, so nothing secret may
    ever be in it: it gets a minimal environment (``_ZYGOTE_VARIABLES``, then ``env``),
    an argument list without the server's settings, and only the catalogue's tables of
    the configuration file, which may also hold the database URL. Raises
    ``InputValueError`` for a configuration file that cannot be read.
    """
    config: dict[str, Any] = {"catalogue": None}
    if catalogue_path is not None:
        from qruntime.backends.config_file import read_catalogue_tables

        config["catalogue"] = str(catalogue_path)
        config["catalogue_tables"] = read_catalogue_tables(catalogue_path)
    environment = {k: os.environ[k] for k in _ZYGOTE_VARIABLES if k in os.environ}
    environment.update({"OPENBLAS_NUM_THREADS": "1", **(env or {})})
    if environment.get("PYTHONPATH"):
        config["python_path"] = environment["PYTHONPATH"].split(os.pathsep)
    ours, theirs = socket.socketpair()
    cmd = [sys.executable, "-m", "qruntime.worker.zygote"]
    cmd += ["--control-fd", str(theirs.fileno()), "--config", json.dumps(config, default=str)]
    try:
        # A session of its own: signals to the server's process group (Ctrl-C, `kill --
        # -PGID`) are the server's to handle; the zygote ends when the socket closes.
        process = subprocess.Popen(
            cmd,
            pass_fds=[theirs.fileno()],
            env=environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return LaunchedZygote(process, ours)


class LocalExecutor(Executor):
    """Runs jobs in local worker processes; see the module docstring.

    ``memory_limit_bytes`` is what a sandboxed process (a job, a pooled or a session
    worker) may allocate on top of the zygote's own size; ``process_limit`` counts its
    threads too; ``tmp_bytes`` caps its private ``/tmp``. A job whose final result is
    over ``max_result_bytes``, or whose interim results add up to more than
    ``max_interim_bytes``, fails (``limit_exceeded``) and its process is killed
    before the excess is read. ``decode_limits`` (``max_decoded_bytes``,
    ``max_circuit_qubits``) are the server's, so that workers decode what it accepted
    (`qruntime.encoding.DecodeLimits`' defaults if None). ``env`` adds
    variables to the zygote's environment (e.g. ``PYTHONPATH`` for test
    programs). ``uploads_in_pool`` runs uploaded programs in the pool as well,
    unsandboxed: for tests only. ``caches=False`` starts every job with every
    cache of its worker empty, so a benchmark can measure what they save.
    ``zygote``: one started ahead by `launch_zygote` (with the same catalogue and
    ``env``), adopted at ``start`` instead of starting another.
    """

    def __init__(
        self,
        *,
        catalogue_path: Path | None = None,
        pool_size: int = 2,
        log_limit_bytes: int = 1_000_000,
        memory_limit_bytes: int = 4 * 1024**3,
        sandbox: bool = True,
        process_limit: int = 64,
        uploads_in_pool: bool = False,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 120.0,
        caches: bool = True,
        zygote: LaunchedZygote | None = None,
        max_result_bytes: int = 50_000_000,
        max_interim_bytes: int = 50_000_000,
        tmp_bytes: int = 256 * 1024**2,
        decode_limits: Mapping[str, int] | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.catalogue_path = catalogue_path
        self.pool_size = pool_size
        self.log_limit_bytes = log_limit_bytes
        self.memory_limit_bytes = memory_limit_bytes
        self.sandbox = sandbox
        self.process_limit = process_limit
        self.uploads_in_pool = uploads_in_pool
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.caches = caches
        self.max_result_bytes = max_result_bytes
        self.max_interim_bytes = max_interim_bytes
        self.tmp_bytes = tmp_bytes
        self.decode_limits = dict(decode_limits) if decode_limits is not None else None
        self._launched = zygote
        self.zygote_info: Header = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: FrameSocket | None = None
        self._parser = FrameParser()
        self._ready: asyncio.Future[Header] | None = None
        self._refs = itertools.count(1)
        self._procs: dict[int, _Proc] = {}
        self._runs: dict[str, _Run] = {}
        self._queue: deque[_Run] = deque()
        self._idle: deque[_Proc] = deque()
        self._pool: set[_Proc] = set()
        self._sessions: dict[tuple[str, bool], _SessionWorker] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, zygote: LaunchedZygote | None = None
    ) -> LocalExecutor:
        """The executor a server runs, with the catalogue, caches and limits of ``settings``."""
        return cls(
            catalogue_path=settings.config_file,
            caches=settings.caches,
            zygote=zygote,
            memory_limit_bytes=settings.worker_memory_bytes,
            max_result_bytes=settings.max_result_bytes,
            max_interim_bytes=settings.max_interim_bytes,
            tmp_bytes=settings.sandbox_tmp_bytes,
            decode_limits={
                "max_decoded_bytes": settings.max_decoded_bytes,
                "max_circuit_qubits": settings.max_circuit_qubits,
            },
        )

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        await self._start_zygote()
        for _ in range(self.pool_size):
            await self._add_pool_worker()
        self._nodes_changed()  # ready

    async def stop(self) -> None:
        self._stopping = True
        for run in list(self._runs.values()):
            self._finish(run, "error", reason="cancelled", message="the executor was stopped")
        for task in list(self._tasks):
            task.cancel()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send({"op": "shutdown"})
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            for _ in range(1000):  # up to ~10 s: it kills and reaps every child first
                if zygote.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            else:
                zygote.kill()
                zygote.wait()
        for proc in list(self._procs.values()):
            self._proc_gone(proc)
        self._sessions.clear()
        self._close_control()

    async def _start_zygote(self) -> None:
        loop = self._loop
        assert loop is not None
        launched, self._launched = self._launched, None
        if launched is None:
            launched = launch_zygote(catalogue_path=self.catalogue_path, env=self.env)
        self._zygote, ours = launched.process, launched.control
        self._control = FrameSocket(ours)
        self._parser = FrameParser()
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_control)
        try:
            self.zygote_info = await asyncio.wait_for(self._ready, self.start_timeout)
        except (TimeoutError, QRuntimeError):
            await self.stop()
            raise QRuntimeError("the worker zygote did not start; see its output above") from None
        if self.zygote_info.get("threads") != 1:
            logger.warning("the zygote has %s threads: forked jobs may hang", self.zygote_info)

    def _close_control(self) -> None:
        if self._control is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._control.fileno())
            self._control.close()
            self._control = None

    # ---- the executor interface ------------------------------------------------------

    def submit(self, spec: JobSpec, on_event: Callable[[WorkerEvent], None]) -> None:
        if spec.job_id in self._runs:
            raise ValueError(f"job {spec.job_id} is already running")
        run = _Run(spec, on_event)
        self._runs[spec.job_id] = run
        loop = asyncio.get_running_loop()
        if self._stopping or self._control is None:
            message = "the executor is not running"
            loop.call_soon(self._finish, run, "error", None, "crashed", message)
        elif spec.session_id is not None:
            self._submit_session(run, spec.session_id)
        elif spec.source is None or self.uploads_in_pool:
            self._queue.append(run)
            self._dispatch()
        else:
            self._track(loop.create_task(self._run_child(run)))

    def nodes(self) -> list[dict[str, Any]]:
        """This machine, the one node: ready once its zygote and pool have started."""
        ready = self._control is not None and not self._stopping and bool(self._pool)
        node = {
            "node_id": "local",
            "address": socket.gethostname(),
            "ready": ready,
            "jobs": len(self._runs),
            "sessions": len(self._sessions),
            "resources": {"CPU": float(os.cpu_count() or 1)},
        }
        return [node]

    async def cancel(self, job_id: str) -> bool:
        run = self._runs.get(job_id)
        if run is None or run.done:
            return False
        self._kill_run(run, ("cancelled", "cancelled on request"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.finished.wait(), 10.0)
        return True

    async def end_session(self, session_id: str) -> None:
        ended = [w for key, w in self._sessions.items() if key[0] == session_id]
        procs: list[_Proc] = []
        for worker in ended:
            worker.ended = True
            del self._sessions[(worker.session_id, worker.sandboxed)]
            for run in list(worker.queue):
                self._finish(run, "error", reason="cancelled", message="the session ended")
            worker.queue.clear()
            if worker.busy is not None:
                self._kill_run(worker.busy, ("cancelled", "the session ended"))
            if worker.proc is not None:
                procs.append(worker.proc)
                self._send_kill(worker.proc)
        for proc in procs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.gone_event.wait(), 10.0)

    # ---- starting processes and jobs ---------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(
        self,
        kind: str,
        *,
        sandbox: bool,
        limits: Mapping[str, int],
        session: _SessionWorker | None = None,
    ) -> _Proc:
        if self._control is None:
            raise QRuntimeError("the worker zygote is not running")
        ours, theirs = socket.socketpair()
        log_read, log_write = os.pipe()
        proc = _Proc(ref=next(self._refs), kind=kind, log_fd=log_read, session=session)
        header = {"op": "spawn", "ref": proc.ref, "kind": kind, "sandbox": sandbox}
        try:
            self._control.send({**header, "limits": dict(limits)}, fds=[theirs.fileno(), log_write])
        except OSError:
            ours.close()
            os.close(log_read)
            raise
        finally:
            theirs.close()
            os.close(log_write)
        os.set_blocking(log_read, False)
        self._procs[proc.ref] = proc
        asyncio.get_running_loop().add_reader(log_read, self._on_log, proc)
        reader, proc.writer = await asyncio.open_unix_connection(sock=ours)
        self._track(asyncio.get_running_loop().create_task(self._read_proc(proc, reader)))
        return proc

    async def _add_pool_worker(self) -> None:
        limits = self._process_limits(_SESSION_CPU_SECONDS)
        proc = await self._spawn("pool", sandbox=self.sandbox, limits=limits)
        if proc.gone:
            return
        self._pool.add(proc)
        self._idle.append(proc)
        self._dispatch()

    def _job_header(self, spec: JobSpec) -> Header:
        return {
            "op": "run",
            "job_id": spec.job_id,
            "program_id": spec.program_id,
            "backend": spec.backend,
            "source": spec.source,
            "archive": None if spec.archive is None else base64.b64encode(spec.archive).decode(),
            "entry_point": spec.entry_point,
            "builtin": spec.builtin,
            "log_level": spec.log_level,
            "session_id": spec.session_id,
            # What the worker's caches may be kept for: the next job of the same session,
            # or of the same owner; another's makes the worker forget them.
            "cache_scope": _cache_scope(spec),
            "caches": self.caches,
            "max_result_bytes": self.max_result_bytes,
            "decode_limits": self.decode_limits,
        }

    def _process_limits(self, cpu_seconds: int) -> dict[str, int]:
        return {
            "memory_bytes": self.memory_limit_bytes,
            "cpu_seconds": cpu_seconds,
            "processes": self.process_limit,
            "tmp_bytes": self.tmp_bytes,
        }

    def _job_limits(self, spec: JobSpec) -> dict[str, int]:
        return self._process_limits(math.ceil(spec.max_execution_time * (os.cpu_count() or 1)) + 10)

    def _start_timer(self, run: _Run) -> None:
        limit = run.spec.max_execution_time
        kill: Kill = ("ran_too_long", f"ran over max_execution_time of {limit:g} s")
        run.timer = asyncio.get_running_loop().call_later(limit, self._kill_run, run, kill)

    async def _run_child(self, run: _Run) -> None:
        self._start_timer(run)
        try:
            proc = await self._spawn("job", sandbox=self.sandbox, limits=self._job_limits(run.spec))
        except (OSError, QRuntimeError) as exc:
            self._finish(run, "error", reason="crashed", message=f"could not start the job: {exc}")
            return
        if run.done:  # cancelled while the process was starting
            self._send_kill(proc)
            return
        proc.run, run.proc = run, proc
        if run.kill is not None:
            self._send_kill(proc)
        assert proc.writer is not None
        proc.writer.writelines(encode_frame(self._job_header(run.spec), run.spec.inputs.encode()))
        self._ensure_running(run)
        with contextlib.suppress(OSError):
            await proc.writer.drain()

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            # The worker whose caches are the job's (its last job was of the same owner),
            # else the one idle for the shortest time: its core is likelier awake (waking
            # an idle core costs a few hundred microseconds here).
            proc = self._take_idle(_cache_scope(self._queue[0].spec))
            if proc.gone or proc.writer is None:
                continue
            run = self._queue.popleft()
            self._send_run(proc, run, self._job_header(run.spec))

    def _take_idle(self, scope: str | None) -> _Proc:
        """The idle worker to give a job of cache ``scope``, out of ``_idle``."""
        if scope is not None:
            for index in range(len(self._idle) - 1, -1, -1):
                proc = self._idle[index]
                if proc.scope == scope:
                    del self._idle[index]
                    return proc
        return self._idle.pop()

    def _send_run(self, proc: _Proc, run: _Run, header: Header) -> None:
        """Hand ``run`` to the idle worker ``proc``; its clock starts now."""
        assert proc.writer is not None
        proc.run, run.proc = run, proc
        proc.jobs += 1
        proc.scope = header.get("cache_scope")
        proc.writer.writelines(encode_frame(header, run.spec.inputs.encode()))
        self._ensure_running(run)
        self._start_timer(run)

    # ---- session workers -------------------------------------------------------------

    def _submit_session(self, run: _Run, session_id: str) -> None:
        uploaded = run.spec.source is not None
        sandboxed = uploaded and self.sandbox and not self.uploads_in_pool
        key = (session_id, sandboxed)
        worker = self._sessions.get(key)
        if worker is None:
            worker = self._sessions[key] = _SessionWorker(session_id, sandboxed)
        run.session = worker
        worker.queue.append(run)
        self._dispatch_session(worker)

    def _dispatch_session(self, worker: _SessionWorker) -> None:
        if worker.ended or worker.busy is not None or not worker.queue:
            return
        proc = worker.proc
        if proc is None or proc.gone or proc.writer is None:
            if not worker.starting and not self._stopping:
                worker.starting = True
                self._track(asyncio.get_running_loop().create_task(self._start_session(worker)))
            return
        run = worker.queue.popleft()
        worker.busy = run
        header = self._job_header(run.spec)
        if worker.sandboxed:
            header["cpu_seconds"] = self._job_limits(run.spec)["cpu_seconds"]
        self._send_run(proc, run, header)

    async def _start_session(self, worker: _SessionWorker) -> None:
        limits = self._process_limits(_SESSION_CPU_SECONDS)
        try:
            proc = await self._spawn("session", sandbox=self.sandbox, limits=limits, session=worker)
        except (OSError, QRuntimeError) as exc:
            worker.starting = False
            self._fail_session_queue(worker, f"could not start the session's worker: {exc}")
            return
        worker.starting = False
        if worker.ended:
            self._send_kill(proc)
            return
        worker.proc = proc
        if not proc.gone:
            self._dispatch_session(worker)

    def _fail_session_queue(self, worker: _SessionWorker, message: str) -> None:
        for run in list(worker.queue):
            self._finish(run, "error", reason="crashed", message=message)
        worker.queue.clear()

    def _session_proc_gone(self, proc: _Proc, worker: _SessionWorker) -> None:
        """A session's worker ended: the next job gets a fresh one."""
        if worker.proc is proc:
            worker.proc = None
        if worker.busy is proc.run:
            worker.busy = None
        if worker.ended or self._stopping or self._control is None:
            return
        if proc.jobs == 0:  # it died before its first job: a new one would too
            _reason, message = _describe_exit(proc.exit_status)
            self._fail_session_queue(worker, f"the session's worker did not start: {message}")
            return
        self._dispatch_session(worker)

    # ---- what comes back -------------------------------------------------------------

    def _on_control(self) -> None:
        assert self._control is not None
        try:
            data = self._control.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._on_zygote_lost()
            return
        for header, _payload in self._parser.feed(data):
            op = header.get("op")
            if op == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(header)
            elif op == "exited":
                self._on_exited(int(header["ref"]), header.get("code"), header.get("signal"))
            elif op == "spawn_failed":
                proc = self._procs.get(int(header["ref"]))
                if proc is not None:
                    proc.spawn_error = str(header.get("message") or "unknown reason")
                self._on_exited(int(header["ref"]), None, None)

    def _on_zygote_lost(self) -> None:
        self._close_control()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(QRuntimeError("the worker zygote exited"))
        if self._stopping:
            return
        logger.error("the worker zygote died; failing its jobs and starting a new one")
        for proc in list(self._procs.values()):
            if proc.run is not None and proc.run.kill is None:
                proc.run.kill = ("crashed", "the worker zygote died")
            self._proc_gone(proc)
        for run in list(self._queue):
            self._finish(run, "error", reason="crashed", message="the worker zygote died")
        self._queue.clear()
        for worker in self._sessions.values():
            self._fail_session_queue(worker, "the worker zygote died")
        self._nodes_changed()  # not ready until the new zygote's pool is
        self._track(asyncio.get_running_loop().create_task(self.start()))

    def _payload_limit(self, proc: _Proc, header: Header) -> int:
        """The most bytes the payload of ``proc``'s frame ``header`` may have."""
        kind = header.get("kind")
        if kind == "result":
            return self.max_result_bytes
        if kind == "interim":
            used = proc.run.interim_bytes if proc.run is not None else 0
            return max(0, self.max_interim_bytes - used)
        return 0  # error frames carry their message in the header

    async def _read_proc(self, proc: _Proc, reader: asyncio.StreamReader) -> None:
        limit = partial(self._payload_limit, proc)
        try:
            while True:
                frame = await read_frame(reader, payload_limit=limit)
                if frame is None:
                    break
                header, payload = frame
                run = proc.run
                if run is None or run.done or header.get("job_id") != run.spec.job_id:
                    continue
                kind = header.get("kind")
                if kind == "interim":
                    run.interim_bytes += len(payload)
                    self._emit(run, WorkerEvent(run.spec.job_id, "interim", data=payload.decode()))
                elif kind in ("result", "error"):
                    reason = header.get("reason")
                    self._finish(
                        run,
                        "result" if kind == "result" else "error",
                        data=payload.decode() if kind == "result" else None,
                        reason=reason if reason in _REASONS else "failed",
                        message=str(header.get("message", "")),
                        metrics=_metrics(proc, header.get("cache"), header.get("timing")),
                    )
                    if proc.gone:
                        continue
                    if proc.kind == "pool":
                        proc.run = None
                        self._idle.append(proc)
                        self._dispatch()
                    elif proc.session is not None:
                        proc.run = None
                        if proc.session.busy is run:
                            proc.session.busy = None
                        self._dispatch_session(proc.session)
        except PayloadOverLimit as exc:
            if exc.header.get("kind") == "interim":
                what, setting, most = "interim results", "max_interim_bytes", self.max_interim_bytes
            else:
                what, setting, most = "result", "max_result_bytes", self.max_result_bytes
            message = f"the job's {what} exceeded {most} bytes, this server's limit ({setting})"
            if proc.run is not None:
                self._kill_run(proc.run, ("limit_exceeded", message))
            else:
                self._send_kill(proc)
        except (ProtocolError, UnicodeDecodeError) as exc:
            if proc.run is not None:
                self._kill_run(proc.run, ("crashed", f"the worker sent a malformed message: {exc}"))
            else:
                self._send_kill(proc)
        except OSError:
            pass
        finally:
            proc.reader_done = True
            if proc.exit_status is not None:
                self._proc_gone(proc)

    def _on_exited(self, ref: int, code: int | None, sig: int | None) -> None:
        proc = self._procs.get(ref)
        if proc is None:
            return
        proc.exit_status = (code, sig)
        if proc.reader_done:
            self._proc_gone(proc)
        else:  # frames sent just before the exit may still be on their way
            asyncio.get_running_loop().call_later(1.0, self._proc_gone, proc)

    def _proc_gone(self, proc: _Proc) -> None:
        if proc.gone:
            return
        proc.gone = True
        self._procs.pop(proc.ref, None)
        self._drain_log(proc)
        if self._loop is not None:
            self._loop.remove_reader(proc.log_fd)
        os.close(proc.log_fd)
        if proc.writer is not None:
            proc.writer.close()
        run = proc.run
        if run is not None and not run.done:
            reason, message = run.kill or _describe_exit(proc.exit_status)
            if proc.spawn_error is not None and run.kill is None:
                message = f"the job's process could not be started: {proc.spawn_error}"
            self._finish(run, "error", reason=reason, message=message)
        if proc.kind == "pool":
            self._pool.discard(proc)
            if not self._stopping and self._control is not None:
                self._track(asyncio.get_running_loop().create_task(self._add_pool_worker()))
        elif proc.session is not None:
            self._session_proc_gone(proc, proc.session)
        proc.gone_event.set()

    def _on_log(self, proc: _Proc) -> None:
        try:
            data = os.read(proc.log_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            assert self._loop is not None
            self._loop.remove_reader(proc.log_fd)
            return
        if proc.run is not None and not proc.run.done:
            self._log(proc.run, data)

    def _drain_log(self, proc: _Proc) -> None:
        """Read what the process wrote to its log before its last message."""
        while True:
            try:
                data = os.read(proc.log_fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            if proc.run is not None and not proc.run.done:
                self._log(proc.run, data)

    def _log(self, run: _Run, data: bytes) -> None:
        room = self.log_limit_bytes - run.log_bytes
        run.log_bytes += len(data)
        if room > 0:
            text = run.decoder.decode(data[:room])
            if text:
                self._emit(run, WorkerEvent(run.spec.job_id, "log", data=text))
        if run.log_bytes > self.log_limit_bytes and not run.log_overflow:
            run.log_overflow = True
            message = f"log output exceeded {self.log_limit_bytes} bytes"
            self._kill_run(run, ("limit_exceeded", message))

    # ---- ending jobs -----------------------------------------------------------------

    def _send_kill(self, proc: _Proc) -> None:
        if self._control is not None and not proc.gone:
            with contextlib.suppress(OSError):
                self._control.send({"op": "kill", "ref": proc.ref})

    def _kill_run(self, run: _Run, kill: Kill) -> None:
        if run.done:
            return
        if run.kill is None or kill[0] == "limit_exceeded":
            run.kill = kill
        if run.proc is None:  # still queued, or its process is still starting
            if run in self._queue:
                self._queue.remove(run)
            if run.session is not None and run in run.session.queue:
                run.session.queue.remove(run)
            self._finish(run, "error", reason=run.kill[0], message=run.kill[1])
        else:
            self._send_kill(run.proc)

    def _ensure_running(self, run: _Run) -> None:
        if not run.started:
            run.started = True
            self._call(run, WorkerEvent(run.spec.job_id, "running"))

    def _emit(self, run: _Run, event: WorkerEvent) -> None:
        self._ensure_running(run)
        self._call(run, event)

    def _call(self, run: _Run, event: WorkerEvent) -> None:
        try:
            run.on_event(event)
        except Exception:  # a broken callback must not break the executor
            logger.exception("on_event raised for job %s (%s)", run.spec.job_id, event.kind)

    def _finish(
        self,
        run: _Run,
        kind: str,
        data: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        if run.done:
            return
        if run.proc is not None and not run.proc.gone:
            self._drain_log(run.proc)
        tail = run.decoder.decode(b"", final=True)
        if tail and not run.log_overflow:
            self._emit(run, WorkerEvent(run.spec.job_id, "log", data=tail))
        if run.log_overflow and run.kill is not None:  # a flood is a failure, whatever came next
            kind, data, (reason, message) = "error", None, run.kill
        run.done = True
        if run.timer is not None:
            run.timer.cancel()
        self._runs.pop(run.spec.job_id, None)
        self._ensure_running(run)
        job_id = run.spec.job_id
        if kind == "result":
            self._call(run, WorkerEvent(job_id, "result", data=data, metrics=metrics))
        else:
            error = cast(ErrorReason, reason if reason in _REASONS else "failed")
            event = WorkerEvent(job_id, "error", reason=error, message=message, metrics=metrics)
            self._call(run, event)
        run.finished.set()


def _metrics(proc: _Proc, cache: Any, timing: Any = None) -> dict[str, Any] | None:
    """The terminal event's metrics from a worker's report; a sandboxed one may send anything."""
    if not isinstance(cache, dict):
        return None
    counters = {}
    for name in _CACHE_COUNTERS:
        value = cache.get(name, 0)
        counters[name] = value if type(value) is int and value >= 0 else 0
    metrics: dict[str, Any] = {"cache": counters, "worker": _ROLES.get(proc.kind, proc.kind)}
    worker_timing = _timing(timing)
    if worker_timing:
        metrics["timing"] = worker_timing
    return metrics


def _timing(timing: Any) -> dict[str, Any]:
    """The worker's timing of a job, if it is well-formed: when it began (ISO 8601, UTC)
    and the seconds it spent decoding, running ``main`` and encoding the result."""
    if not isinstance(timing, dict):
        return {}
    out: dict[str, Any] = {}
    started = timing.get("started")
    if type(started) is float and 0 < started < _LATEST_TIMESTAMP:
        out["started"] = datetime.fromtimestamp(started, UTC).isoformat()
    for name in ("decode", "run", "encode"):
        seconds = timing.get(name)
        if type(seconds) is float and 0 <= seconds < _LONGEST_STAGE:
            out[name] = seconds
    return out


def _describe_exit(status: tuple[int | None, int | None] | None) -> Kill:
    """Why a process that sent no terminal message ended, for a human."""
    code, sig = status or (None, None)
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        if sig == signal.SIGXCPU:
            return "limit_exceeded", "CPU time limit exceeded (killed by signal SIGXCPU)"
        if sig == signal.SIGXFSZ:
            return "limit_exceeded", "file size limit exceeded (killed by signal SIGXFSZ)"
        return "crashed", f"killed by signal {name}"
    if code is None:
        return "crashed", "the worker process was lost"
    if code == 0:
        return "crashed", "exited before returning a result"
    return "crashed", f"exited with code {code} before returning a result"


def _cache_scope(spec: JobSpec) -> str | None:
    if spec.session_id is not None:
        return f"session {spec.session_id}"
    if spec.owner_id is not None:
        return f"owner {spec.owner_id}"
    return None
