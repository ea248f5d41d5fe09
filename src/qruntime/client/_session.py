"""`Session` and `Batch`: group jobs so the scheduler serves them together."""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Callable
from typing import Any

from qruntime.client._job import RuntimeJob
from qruntime.client._program import ParameterNamespace
from qruntime.client._service import RuntimeService
from qruntime.errors import InputValueError, RuntimeInvalidStateError

__all__ = ["Batch", "Session", "current_session", "parse_max_time"]

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "qruntime_session", default=None
)


def current_session() -> Session | None:
    """The session of the innermost ``with Session(...)`` block, if any."""
    return _current.get()


_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_max_time(max_time: int | str | None) -> int | None:
    """Seconds, from an int or a string like ``"2h 30m 40s"``."""
    if max_time is None:
        return None
    if isinstance(max_time, bool):
        raise InputValueError(f"Invalid max_time {max_time!r}.")
    if isinstance(max_time, int | float):
        seconds = int(max_time)
    else:
        match = _DURATION.match(max_time)
        if not match or not any(match.groups()):
            raise InputValueError(
                f"Invalid max_time {max_time!r}: give seconds or a string like '2h 30m 40s'."
            )
        hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise InputValueError(f"max_time must be positive, got {max_time!r}.")
    return seconds


class Session:
    """A session: your jobs on one backend, served one after another ahead of the queue.

    The session starts when its first job starts running; ``max_time`` (seconds or
    ``"1h 30m"``) runs on the wall clock from then. Usage::

        with Session(service=service, backend="fake_27q", max_time="1h") as session:
            job = session.run("circuit-runner", inputs={"circuits": qc})
            print(session.session_id, session.status(), session.details())
    """

    _mode = "dedicated"

    def __init__(
        self,
        service: RuntimeService | None = None,
        backend: str | Any | None = None,
        max_time: int | str | None = None,
    ) -> None:
        if backend is None:
            raise InputValueError("A session needs a backend: Session(backend='aer_simulator').")
        self._service = service if service is not None else RuntimeService()
        self._backend: str = backend if isinstance(backend, str) else backend.name
        self._max_time = parse_max_time(max_time)
        self._session_id: str | None = None
        # Threads that share the session and send its first jobs at once create it once.
        self._creating = threading.Lock()
        self._active = True
        self._tokens: list[contextvars.Token[Session | None]] = []

    @property
    def service(self) -> RuntimeService:
        return self._service

    @property
    def session_id(self) -> str | None:
        """The session's id; None until its first job is submitted."""
        return self._session_id

    def backend(self) -> str:
        return self._backend

    def _create(self) -> str:
        body: dict[str, Any] = {"mode": self._mode, "backend": self._backend}
        if self._max_time is not None:
            body["max_ttl"] = self._max_time
        created = self._service._api.request("POST", "/sessions", json=body).json()
        session_id: str = created["id"]
        return session_id

    def run(
        self,
        program_id: str,
        inputs: dict[str, Any] | ParameterNamespace,
        options: dict[str, Any] | None = None,
        callback: Callable[[str, Any], None] | None = None,
        result_decoder: Any = None,
    ) -> RuntimeJob:
        """Run a program as a job in this session; refused once it is closed."""
        if not self._active:
            raise RuntimeInvalidStateError(
                f"Session {self._session_id} is closed: it accepts no new jobs."
            )
        if self._session_id is None:
            with self._creating:
                if self._session_id is None:
                    self._session_id = self._create()
        opts = dict(options or {})
        opts["backend"] = self._backend
        opts["session_id"] = self._session_id
        return self._service.run(
            program_id, inputs, options=opts, callback=callback, result_decoder=result_decoder
        )

    def close(self) -> None:
        """Accept no new jobs; queued and running jobs finish."""
        self._active = False
        if self._session_id is not None:
            self._service._api.request(
                "PATCH", f"/sessions/{self._session_id}", json={"accepting_jobs": False}
            )

    def cancel(self) -> None:
        """Close the session and cancel its queued jobs (running ones finish)."""
        self._active = False
        if self._session_id is not None:
            self._service._api.request("DELETE", f"/sessions/{self._session_id}/close")

    def details(self) -> dict[str, Any] | None:
        """State, clocks and timestamps from the server; None before the first job."""
        if self._session_id is None:
            return None
        raw = self._service._api.get_json(f"/sessions/{self._session_id}")
        return {
            "id": raw["id"],
            "backend_name": raw["backend_name"],
            "mode": raw["mode"],
            "state": raw["state"],
            "state_reason": raw.get("state_reason"),
            "accepting_jobs": raw["accepting_jobs"],
            "max_time": raw["max_ttl"],
            "interactive_timeout": raw["interactive_ttl"],
            "active_timeout": raw["active_ttl"],
            "elapsed_time": raw["elapsed_time"],
            "usage_time": raw["usage_time"],
            "started_at": raw["started_at"],
            "activated_at": raw["activated_at"],
            "last_job_started": raw["last_job_started"],
            "last_job_completed": raw["last_job_completed"],
            "closed_at": raw["closed_at"],
        }

    def status(self) -> str | None:
        """``Pending``, ``In progress, accepting new jobs``, ``In progress, not accepting new
        jobs`` or ``Closed``; None before the first job."""
        details = self.details()
        if details is None:
            return None
        state, accepting = details["state"], details["accepting_jobs"]
        if state == "closed":
            return "Closed"
        if state == "open":
            return "Pending"
        return "In progress, " + ("accepting new jobs" if accepting else "not accepting new jobs")

    def usage(self) -> float | None:
        """Seconds the session's jobs have used the backend; None before the first job."""
        details = self.details()
        return None if details is None else float(details["usage_time"])

    @classmethod
    def from_id(
        cls,
        session_id: str,
        service: RuntimeService | None = None,
        backend: str | Any | None = None,
    ) -> Session:
        """A Session object for an existing session (no new session is created)."""
        service = service if service is not None else RuntimeService()
        raw = service._api.get_json(f"/sessions/{session_id}")
        if backend is not None:
            raw = {**raw, "backend_name": backend if isinstance(backend, str) else backend.name}
        return cls._from_details(service, raw)

    @classmethod
    def _from_details(cls, service: RuntimeService, raw: dict[str, Any]) -> Session:
        """The object for a session the server described (``GET /sessions[/{id}]``)."""
        session = cls(service=service, backend=raw["backend_name"])
        session._session_id = raw["id"]
        session._max_time = raw["max_ttl"]
        session._active = bool(raw["accepting_jobs"])
        return session

    def __enter__(self) -> Session:
        self._tokens.append(_current.set(self))  # the default mode of primitives made inside
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tokens:
            _current.reset(self._tokens.pop())
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._session_id} backend={self._backend!r}>"


class Batch(Session):
    """A session in batch mode: its jobs may run in parallel, in any order::

    with Batch(service=service, backend="aer_simulator") as batch:
        jobs = [batch.run("circuit-runner", inputs={"circuits": c}) for c in circuits]
    """

    _mode = "batch"
