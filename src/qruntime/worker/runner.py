"""Load a program, run its ``main`` and report the outcome over the job's channel.

Every job ends with exactly one terminal frame from here (``result`` or
``error``) unless the process itself dies; the executor synthesises the
terminal event in that case from how the process ended.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import linecache
import logging
import math
import os
import resource
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qruntime.encoding import DecodeLimits, RuntimeEncoder, loads
from qruntime.programs import cache
from qruntime.worker.backend import get_backend
from qruntime.worker.messenger import UserMessenger
from qruntime.worker.protocol import FrameSocket, Header

__all__ = ["configure_output", "load_main", "run_job", "run_one", "serve_pool"]

_BUILTIN_PACKAGE = "qruntime.programs"


class _JobFailure(Exception):
    """Raised inside this module for a job that cannot run; carries the terminal reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def configure_output() -> None:
    """Point ``sys.stdout`` and ``sys.stderr`` at fds 1 and 2 (the job's log pipe), unbuffered."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="replace",
            line_buffering=True,
            write_through=True,
        )
        setattr(sys, name, stream)


_LIBRARY_LOGGERS = ("qiskit", "qiskit_aer", "stevedore")


def _configure_logging(level_name: str | None) -> None:
    level = logging.getLevelName((level_name or "WARNING").upper())
    if not isinstance(level, int):
        level = logging.WARNING
    root = logging.getLogger()
    library_level = max(level, logging.WARNING)
    if (
        # As the previous job of this worker left it: nothing to do. (Each setLevel
        # clears the cache of every logger, and Qiskit has hundreds.)
        len(root.handlers) == 1
        and getattr(root.handlers[0], "qruntime_job_log", False)
        and getattr(root.handlers[0], "stream", None) is sys.stderr
        and root.level == level
        and all(logging.getLogger(n).level == library_level for n in _LIBRARY_LOGGERS)
    ):
        return
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.qruntime_job_log = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # The job's level is for the program's records, not the libraries' chatter.
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


def _format_traceback(exc: BaseException, *, skip: int = 1) -> str:
    """The traceback of ``exc`` without this module's own frames (the first ``skip``)."""
    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _limits(header: Header) -> DecodeLimits | None:
    """The server's decoding limits, sent with each job (the defaults if absent)."""
    given = header.get("decode_limits")
    if not isinstance(given, dict):
        return None
    return DecodeLimits(
        max_decoded_bytes=int(given["max_decoded_bytes"]),
        max_circuit_qubits=int(given["max_circuit_qubits"]),
    )


#: Folders of folder programs this process has loaded (one per job, in its private /tmp).
_PROGRAM_FOLDERS: list[str] = []
# The server checked the archive's size; this re-check in the sandbox is for its paths.
_UNPACKED_LIMIT = 1 << 31


def _load_folder_program(header: Header) -> types.ModuleType:
    """Write a folder program's files to a fresh folder and import its entry module.

    The folder goes first on ``sys.path``, so the program's modules import each other
    by name (``import helpers``, ``from tools.fit import fit``), as when ``python
    program.py`` runs in that folder. Modules of a program loaded before in this
    process are forgotten first.
    """
    from qruntime.errors import QRuntimeError
    from qruntime.program_files import extract, module_name, read_archive

    _forget_folder_programs()
    try:
        raw = base64.b64decode(header["archive"])
        program = read_archive(
            raw, entry_point=header.get("entry_point"), max_bytes=_UNPACKED_LIMIT
        )
        folder = Path(tempfile.mkdtemp(prefix="qruntime-program-"))
        extract(program, folder)
    except (QRuntimeError, OSError, ValueError) as exc:
        raise _JobFailure("failed", f"cannot unpack the program's files: {exc}") from None
    sys.path.insert(0, str(folder))
    _PROGRAM_FOLDERS.append(str(folder))
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name(program.entry_point))
    except BaseException as exc:
        raise _JobFailure("failed", _format_traceback(exc)) from None


def _forget_folder_programs() -> None:
    for folder in _PROGRAM_FOLDERS:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        prefix = folder + os.sep
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(prefix):
                del sys.modules[name]
    _PROGRAM_FOLDERS.clear()


def load_main(header: Header) -> Callable[..., Any]:
    """The ``main`` of the job's program: a built-in module or uploaded source."""
    builtin = header.get("builtin")
    source = header.get("source")
    if header.get("archive") is not None:
        module = _load_folder_program(header)
    elif source is not None:
        filename = f"<program {header.get('program_id', '?')}>"
        # Registered so that tracebacks show the program's own lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType("__qruntime_program__")
        module.__file__ = filename
        try:
            exec(compile(source, filename, "exec"), module.__dict__)
        except BaseException as exc:
            raise _JobFailure("failed", _format_traceback(exc)) from None
    elif builtin:
        # A dotted name is a module path as-is (tests); otherwise one of the built-ins.
        name = builtin if "." in builtin else f"{_BUILTIN_PACKAGE}.{builtin}"
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise _JobFailure(
                "failed", f"cannot load built-in program {builtin!r}: {exc}"
            ) from None
    else:
        raise _JobFailure("failed", "the job names no program source and no built-in")
    main = getattr(module, "main", None)
    if not callable(main):
        raise _JobFailure(
            "failed", "the program defines no main(backend, user_messenger, **kwargs)"
        )
    return main  # type: ignore[no-any-return]


def _execute(
    channel: FrameSocket,
    header: Header,
    payload: bytes | bytearray,
    pid: int,
    catalogue_path: Path | None,
    timing: dict[str, float],
) -> tuple[Header, bytes]:
    job_id = str(header.get("job_id"))
    started = time.perf_counter()
    _configure_logging(header.get("log_level"))
    try:
        backend = get_backend(str(header.get("backend")), catalogue_path=catalogue_path)
        inputs = (
            loads(bytes(payload), limits=_limits(header), circuits=cache.DECODED) if payload else {}
        )
    except Exception as exc:
        raise _JobFailure("failed", f"{type(exc).__name__}: {exc}") from None
    if not isinstance(inputs, dict):
        raise _JobFailure("failed", "the job inputs must be a JSON object of keyword arguments")
    decoded = time.perf_counter()
    timing["decode"] = decoded - started
    main = load_main(header)
    messenger = UserMessenger(channel, job_id)
    try:
        value = main(backend, messenger, **inputs)
    except MemoryError as exc:
        message = "memory limit exceeded: the program ran out of memory\n" + _format_traceback(exc)
        raise _JobFailure("limit_exceeded", message) from None
    except BaseException as exc:
        raise _JobFailure("failed", _format_traceback(exc)) from None
    finally:
        # A forked copy of the program that returned here must not report as the job.
        if os.getpid() != pid:
            os._exit(0)
    ran = time.perf_counter()
    timing["run"] = ran - decoded
    text = messenger.final_result
    if text is None:
        try:
            text = json.dumps(value, cls=RuntimeEncoder)
        except Exception as exc:
            message = f"the result could not be encoded: {type(exc).__name__}: {exc}"
            raise _JobFailure("failed", message) from None
    data = text.encode()
    timing["encode"] = time.perf_counter() - ran
    # The executor enforces it too; failing here keeps a pooled worker and its caches.
    limit = header.get("max_result_bytes")
    if type(limit) is int and len(data) > limit:
        message = (
            f"the result is {len(data)} bytes, over this server's limit of {limit} bytes "
            "(max_result_bytes)"
        )
        raise _JobFailure("limit_exceeded", message)
    return {"kind": "result", "job_id": job_id}, data


def run_job(
    channel: FrameSocket,
    header: Header,
    payload: bytes | bytearray,
    *,
    catalogue_path: Path | None = None,
    keep_transpiled: bool = False,
) -> None:
    """Run one job described by a ``run`` frame and send its terminal frame.

    The terminal frame carries ``cache``: the job's cache counters, and ``timing``: when
    the worker began the job (``started``, seconds since the epoch) and the seconds it
    spent decoding the inputs (``decode``), in ``main`` (``run``) and encoding the result
    (``encode``). A header with ``caches: false`` empties every cache of the process
    first; ``keep_transpiled`` keeps the transpiled circuits of earlier jobs (only a
    session's own worker may).
    """
    timing = {"started": time.time()}
    pid = os.getpid()
    cache.begin_job(clear=header.get("caches") is False, keep_transpiled=keep_transpiled)
    try:
        reply, data = _execute(channel, header, payload, pid, catalogue_path, timing)
    except _JobFailure as failure:
        reply = {
            "kind": "error",
            "job_id": header.get("job_id"),
            "reason": failure.reason,
            "message": failure.message,
        }
        data = b""
    # The program may have broken the counters (it shares the process): report none then.
    with contextlib.suppress(Exception):
        reply["cache"] = cache.end_job()
    reply["timing"] = timing
    for stream in (sys.stdout, sys.stderr):
        # The program may have closed or replaced it.
        with contextlib.suppress(Exception):
            stream.flush()
    channel.send(reply, data)


def run_one(channel: FrameSocket, *, catalogue_path: Path | None = None) -> None:
    """The body of a forked job child: read the one ``run`` frame, run it."""
    configure_output()
    frame = channel.recv()
    if frame is None:
        return
    header, payload, fds = frame
    for fd in fds:
        os.close(fd)
    run_job(channel, header, payload, catalogue_path=catalogue_path)


def serve_pool(channel: FrameSocket, *, catalogue_path: Path | None = None) -> None:
    """The body of a pooled or session worker: run ``run`` frames one after another until EOF.

    Transpiled circuits (and decoded ones, and their preparations) are kept from one job
    to the next only while every job names the same ``cache_scope`` (the server's: one
    session, or one owner): a worker shared by several users forgets them.
    A ``cpu_seconds`` in a run frame caps that job's CPU time (a session's
    sandboxed worker outlives many jobs, so one rlimit cannot cap each of them).
    """
    configure_output()
    scope: str | None = None
    while True:
        frame = channel.recv()
        if frame is None:
            return
        header, payload, fds = frame
        for fd in fds:
            os.close(fd)
        if header.get("op") != "run":
            continue
        job_scope = header.get("cache_scope")
        keep = isinstance(job_scope, str) and job_scope == scope
        scope = job_scope if isinstance(job_scope, str) else None
        cpu_seconds = header.get("cpu_seconds")
        if isinstance(cpu_seconds, int | float) and cpu_seconds > 0:
            _limit_cpu(float(cpu_seconds))
        run_job(channel, header, payload, catalogue_path=catalogue_path, keep_transpiled=keep)


def _limit_cpu(seconds: float) -> None:
    """Let this process use ``seconds`` more CPU time, then get ``SIGXCPU``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _old_soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    # Should it fail, the job still has its wall-clock limit.
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
