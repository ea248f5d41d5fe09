"""`RuntimeService`: the client's entry point to a qruntime server."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from qruntime.client import _account
from qruntime.client._backend import RemoteBackend
from qruntime.client._decoders import decode_params
from qruntime.client._http import ApiClient
from qruntime.client._job import RuntimeJob
from qruntime.client._program import ParameterNamespace, RuntimeProgram
from qruntime.encoding import RuntimeEncoder
from qruntime.errors import BackendNotFoundError, InputValueError
from qruntime.program_files import archive_folder

if TYPE_CHECKING:
    from qruntime.client._session import Session

__all__ = ["RuntimeService"]

_METADATA_KEYS = (
    "name",
    "max_execution_time",
    "description",
    "spec",
    "is_public",
    "entry_point",
    "dependencies",
)
_REQUIRED_METADATA = ("name", "max_execution_time", "description")
_PAGE = 20
_JOB_PAGE = 200
_RUN_OPTIONS = {
    "backend",
    "backend_name",
    "log_level",
    "max_execution_time",
    "job_tags",
    "session_id",
    "private",
}


class RuntimeService:
    """Talk to a qruntime server: programs, backends and (later) jobs.

    The server and API token come from the arguments, else ``QRUNTIME_URL`` and
    ``QRUNTIME_TOKEN``, else the saved account ``name`` (default ``"default"``)::

        service = RuntimeService(url="http://127.0.0.1:8000", token="qrt_...")
        program_id = service.upload_program(data="my_program.py", metadata="my_program.json")
        service.pprint_programs(detailed=True)
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        name: str | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, token = _account.resolve_account(url, token, name)
        self._api = ApiClient(url, token, timeout=timeout, verify=verify, transport=transport)
        self._programs: dict[str, RuntimeProgram] = {}
        # Whether _programs holds every visible program (the list), or only some read
        # one at a time by program().
        self._programs_complete = False
        self._backends: dict[str, RemoteBackend] = {}

    # -- accounts ---------------------------------------------------------------------------

    @staticmethod
    def save_account(
        url: str, token: str, *, name: str = "default", overwrite: bool = False
    ) -> None:
        """Save a server URL and API token so that ``RuntimeService()`` finds them."""
        _account.save_account(url=url, token=token, name=name, overwrite=overwrite)

    @staticmethod
    def saved_accounts() -> dict[str, dict[str, str]]:
        """The saved accounts, by name."""
        return _account.read_accounts()

    @staticmethod
    def delete_account(name: str = "default") -> bool:
        """Forget a saved account; False if there was none of that name."""
        return _account.delete_account(name)

    @property
    def url(self) -> str:
        return self._api.url

    def logout(self) -> None:
        """Revoke this client's access token on the server; the next call logs in again."""
        self._api.logout()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._api.close()

    def __enter__(self) -> RuntimeService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- programs ---------------------------------------------------------------------------

    def _program_from_wire(self, payload: dict[str, Any]) -> RuntimeProgram:
        program_id = payload["id"]
        return RuntimeProgram.from_wire(
            payload, refresh=lambda: self.program(program_id, refresh=True)
        )

    def programs(
        self, refresh: bool = False, limit: int | None = 20, skip: int = 0
    ) -> list[RuntimeProgram]:
        """The programs you can see, from a cache filled on first use or when ``refresh``.

        ``limit=None`` returns them all.
        """
        if refresh or not self._programs_complete:
            programs: dict[str, RuntimeProgram] = {}
            offset = 0
            while True:
                page = self._api.get_json("/programs", params={"limit": _PAGE, "offset": offset})
                for item in page["programs"]:
                    programs[item["id"]] = self._program_from_wire(item)
                offset += len(page["programs"])
                if not page["programs"] or offset >= page["count"]:
                    break
            self._programs = programs
            self._programs_complete = True
        cached = list(self._programs.values())
        return cached[skip:] if limit is None else cached[skip : skip + limit]

    def pprint_programs(
        self, refresh: bool = False, detailed: bool = False, limit: int | None = 20, skip: int = 0
    ) -> None:
        """Print the programs: id, name and description, or everything when ``detailed``."""
        for program in self.programs(refresh=refresh, limit=limit, skip=skip):
            print("=" * 50)
            if detailed:
                print(str(program))
            else:
                print(f"{program.program_id}:")
                print(f"  Name: {program.name}")
                print(f"  Description: {program.description}")
                if program.dependencies:
                    print(f"  Dependencies: {', '.join(program.dependencies)}")

    def program_environment(self) -> dict[str, Any]:
        """What uploaded programs can import on this server: ``{"python": "3.11.2",
        "packages": [{"name": "numpy", "version": "2.1.0"}, ...]}``. A program's
        ``dependencies`` must be among these packages, in a matching version."""
        environment: dict[str, Any] = self._api.get_json("/programs/environment")
        return environment

    def program(self, program_id: str, refresh: bool = False) -> RuntimeProgram:
        """One program; `RuntimeProgramNotFound` if it does not exist or is not visible."""
        if refresh or program_id not in self._programs:
            payload = self._api.get_json(f"/programs/{program_id}")
            self._programs[program_id] = self._program_from_wire(payload)
        return self._programs[program_id]

    def upload_program(
        self, data: str | Path, metadata: dict[str, Any] | str | Path | None = None
    ) -> str:
        """Upload a program and return its id.

        ``data`` is the source (text containing ``def main(``), or the path of a file, of a
        folder or of a zip archive (a folder program: its modules import each other by
        name); ``metadata`` a dict or the path of a JSON file with ``name``,
        ``max_execution_time`` and ``description`` (required), ``spec``, ``is_public``,
        and for a folder ``entry_point`` (the module with ``main``, default
        ``program.py``) and ``dependencies`` (pip requirements the server checks against
        its program environment, `program_environment`).
        """
        meta = _read_metadata(metadata)
        missing = [key for key in _REQUIRED_METADATA if not meta.get(key)]
        if missing:
            raise InputValueError(
                f"Program metadata is missing the required key(s): {', '.join(missing)}."
            )
        body = {
            "name": meta["name"],
            "data": _encode_source(data),
            "cost": meta["max_execution_time"],
            "description": meta["description"],
            "is_public": bool(meta.get("is_public", False)),
            "spec": meta.get("spec") or None,
        }
        for key in ("entry_point", "dependencies"):
            if meta.get(key) is not None:
                body[key] = meta[key]
        response = self._api.request("POST", "/programs", json=body)
        program_id: str = response.json()["id"]
        self._programs_complete = False  # the list lacks it
        return program_id

    def update_program(
        self,
        program_id: str,
        data: str | Path | None = None,
        metadata: dict[str, Any] | str | Path | None = None,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """Change a program's code (``data`` as in `upload_program`) and/or metadata; the
        arguments override ``metadata``."""
        if not any([data, metadata, name, description, max_execution_time, spec]):
            warnings.warn(
                "Nothing to update: give data, metadata, name, description, "
                "max_execution_time or spec.",
                stacklevel=2,
            )
            return
        meta = _read_metadata(metadata) if metadata else {}
        if data:
            new_code = {"data": _encode_source(data)}
            if meta.get("entry_point"):
                new_code["entry_point"] = meta["entry_point"]
            self._api.request("PUT", f"/programs/{program_id}/data", json=new_code)
        changes = {
            "name": name or meta.get("name"),
            "description": description or meta.get("description"),
            "cost": max_execution_time or meta.get("max_execution_time"),
            "spec": spec or meta.get("spec"),
            "entry_point": None if data else meta.get("entry_point"),
        }
        changes = {key: value for key, value in changes.items() if value}
        if meta.get("dependencies") is not None:
            changes["dependencies"] = meta["dependencies"]
        if changes:
            self._api.request("PATCH", f"/programs/{program_id}", json=changes)
        self._forget_program(program_id)

    def _forget_program(self, program_id: str) -> None:
        """Drop a changed program from the cache; the list is read again when next asked."""
        self._programs.pop(program_id, None)
        self._programs_complete = False

    def delete_program(self, program_id: str) -> None:
        """Delete a program; `RuntimeProgramNotFound` if you cannot see it."""
        self._api.request("DELETE", f"/programs/{program_id}")
        self._programs.pop(program_id, None)

    def set_program_visibility(self, program_id: str, public: bool) -> None:
        """Make a program public (everyone can run it) or private (only you)."""
        self._api.request("PUT", f"/programs/{program_id}/{'public' if public else 'private'}")
        self._forget_program(program_id)

    # -- jobs -------------------------------------------------------------------------------

    def run(
        self,
        program_id: str,
        inputs: dict[str, Any] | ParameterNamespace,
        options: dict[str, Any] | None = None,
        callback: Callable[[str, Any], None] | None = None,
        result_decoder: Any = None,
    ) -> RuntimeJob:
        """Run a program as a job and return it at once (it is durable on the server).

        ``options``: ``backend`` (or the legacy ``backend_name``, required), ``log_level``,
        ``max_execution_time``, ``job_tags``, ``session_id``, ``private`` (the server
        never returns the inputs, and the result can be read once, then is deleted
        there). ``callback(job_id, result)`` gets every interim result in order, then the
        final result.
        """
        if isinstance(inputs, ParameterNamespace):
            inputs.validate()
            inputs = inputs.to_dict()
        if not isinstance(inputs, dict):
            raise InputValueError("inputs must be a dict or a ParameterNamespace.")
        opts = dict(options or {})
        unknown = sorted(set(opts) - _RUN_OPTIONS)
        if unknown:
            raise InputValueError(
                f"Unknown run option(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_RUN_OPTIONS))}."
            )
        if opts.get("private") is not None and not isinstance(opts["private"], bool):
            raise InputValueError(
                f"options.private must be True or False, not {opts['private']!r}."
            )
        backend = opts.get("backend") or opts.get("backend_name")
        if not backend:
            raise InputValueError('options must name a backend: {"backend": "aer_simulator"}.')
        if not isinstance(backend, str):
            backend = backend.name
        body: dict[str, Any] = {"program_id": program_id, "backend": backend}
        for key, wire in (
            ("log_level", "log_level"),
            ("max_execution_time", "cost"),
            ("job_tags", "tags"),
            ("session_id", "session_id"),
            ("private", "private"),
        ):
            if opts.get(key) is not None:
                body[wire] = opts[key]
        # Encode the inputs once, straight into the request body.
        text = json.dumps(body)[:-1] + ', "params": ' + json.dumps(inputs, cls=RuntimeEncoder) + "}"
        response = self._api.request(
            "POST", "/jobs", content=text, headers={"Content-Type": "application/json"}
        )
        job = RuntimeJob(
            service=self,
            job_id=response.json()["id"],
            program_id=program_id,
            backend_name=backend,
            inputs=inputs,
            tags=body.get("tags"),
            session_id=body.get("session_id"),
            result_decoder=result_decoder,
            private=bool(body.get("private")),
        )
        if callback is not None:
            job._start_streaming(callback)
        return job

    def _job_from_wire(self, payload: dict[str, Any]) -> RuntimeJob:
        job = RuntimeJob(
            service=self,
            job_id=payload["id"],
            program_id=payload["program"]["id"],
            backend_name=payload["backend"],
            inputs=decode_params(payload["params"]) if "params" in payload else None,
            creation_date=_parse_datetime(payload.get("created")),
            tags=payload.get("tags"),
            session_id=payload.get("session_id"),
            private=bool(payload.get("private")),
        )
        job._update(payload)
        return job

    def job(self, job_id: str) -> RuntimeJob:
        """One of your jobs; `RuntimeJobNotFound` if it does not exist or is not yours."""
        return self._job_from_wire(self._api.get_json(f"/jobs/{job_id}"))

    def jobs(
        self,
        limit: int | None = 10,
        skip: int = 0,
        pending: bool | None = None,
        program_id: str | None = None,
        backend_name: str | None = None,
        session_id: str | None = None,
        job_tags: list[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        descending: bool = True,
        user: str | None = None,
        all_users: bool = False,
    ) -> list[RuntimeJob]:
        """Your jobs, newest first unless ``descending=False``; ``pending=True`` for
        queued and running ones, ``False`` for final ones; ``limit=None`` for all.
        Admins: ``user`` (a name) lists that user's jobs, ``all_users=True`` everyone's."""
        found: list[RuntimeJob] = []
        offset = skip
        while limit is None or len(found) < limit:
            page_size = _JOB_PAGE if limit is None else min(_JOB_PAGE, limit - len(found))
            params: dict[str, Any] = {
                "limit": page_size,
                "offset": offset,
                "pending": pending,
                "program": program_id,
                "backend": backend_name,
                "session_id": session_id,
                "tags": job_tags,
                "created_after": created_after.isoformat() if created_after else None,
                "created_before": created_before.isoformat() if created_before else None,
                "sort": "DESC" if descending else "ASC",
                "user": user,
                "all_users": all_users or None,
            }
            page = self._api.get_json("/jobs", params=params)
            found.extend(self._job_from_wire(item) for item in page["jobs"])
            offset += len(page["jobs"])
            if not page["jobs"] or offset >= page["count"]:
                break
        return found

    def delete_job(self, job_id: str) -> None:
        """Delete a final job and its results; irreversible."""
        self._api.request("DELETE", f"/jobs/{job_id}")

    def usage(self) -> dict[str, Any]:
        """Your usage, in qiskit-ibm-runtime's shape: ``usage_consumed_seconds`` (what your
        jobs have run, in all), ``usage_limit_seconds`` and ``usage_limit_reached``, and
        ``usage_remaining_seconds`` when the server sets a limit."""
        usage: dict[str, Any] = self._api.get_json("/usage")
        limit = usage.get("usage_limit_seconds")
        if limit:
            consumed = usage.get("usage_consumed_seconds") or 0
            usage["usage_remaining_seconds"] = max(limit - consumed, 0)
        return usage

    # -- sessions ---------------------------------------------------------------------------

    def sessions(
        self,
        limit: int | None = 10,
        skip: int = 0,
        *,
        pending: bool | None = None,
        state: str | None = None,
        backend_name: str | None = None,
        mode: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        descending: bool = True,
    ) -> list[Session]:
        """Your sessions and batches (as `Session` and `Batch`), newest first.

        ``pending=True`` keeps those not closed, ``False`` closed ones; ``state`` is one
        of ``open``, ``active``, ``inactive``, ``closed``; ``mode`` ``dedicated`` or
        ``batch``; ``limit=None`` returns them all.
        """
        from qruntime.client._session import Batch, Session

        found: list[Session] = []
        offset = skip
        while limit is None or len(found) < limit:
            page_size = _JOB_PAGE if limit is None else min(_JOB_PAGE, limit - len(found))
            params: dict[str, Any] = {
                "limit": page_size,
                "offset": offset,
                "pending": pending,
                "state": state,
                "backend": backend_name,
                "mode": mode,
                "created_after": created_after.isoformat() if created_after else None,
                "created_before": created_before.isoformat() if created_before else None,
                "sort": "DESC" if descending else "ASC",
            }
            page = self._api.get_json("/sessions", params=params)
            for raw in page["sessions"]:
                cls = Batch if raw["mode"] == "batch" else Session
                found.append(cls._from_details(self, raw))
            offset += len(page["sessions"])
            if not page["sessions"] or offset >= page["count"]:
                break
        return found

    # -- backends ---------------------------------------------------------------------------

    def backends(
        self,
        name: str | None = None,
        *,
        simulator: bool | None = None,
        min_num_qubits: int | None = None,
        refresh: bool = False,
    ) -> list[RemoteBackend]:
        """The server's backends as Qiskit ``BackendV2`` objects, optionally filtered.

        One request: each backend fetches its configuration and properties when first
        used (its target, its documents), so a long catalogue lists at once.
        """
        if name:
            found = [self.backend(name, refresh=refresh)]
        else:
            listing = self._api.get_json("/backends")
            summaries = listing.get("backends")
            if summaries is None:  # a server that lists names only
                found = [self.backend(n, refresh=refresh) for n in listing["devices"]]
            else:
                found = [self._listed_backend(summary, refresh=refresh) for summary in summaries]
        if simulator is not None:
            found = [b for b in found if b.simulator == simulator]
        if min_num_qubits is not None:
            found = [b for b in found if b.num_qubits >= min_num_qubits]
        return found

    def backend(self, name: str, *, refresh: bool = False) -> RemoteBackend:
        """One backend by name; `BackendNotFoundError` if the server has none of that name."""
        if refresh or name not in self._backends:
            backend = RemoteBackend(*self._backend_documents(name))
            # Lets SamplerV2(mode=service.backend(...)) find the service it came from.
            backend.service = self
            self._backends[name] = backend
        return self._backends[name]

    def _listed_backend(self, summary: dict[str, Any], *, refresh: bool) -> RemoteBackend:
        name = str(summary["name"])
        if refresh or name not in self._backends:
            backend = RemoteBackend.from_summary(summary, lambda: self._backend_documents(name))
            backend.service = self
            self._backends[name] = backend
        return self._backends[name]

    def _backend_documents(self, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        configuration: dict[str, Any] = self._api.get_json(f"/backends/{name}/configuration")
        properties = None
        if not configuration.get("simulator", False):
            properties = self._api.get_json(f"/backends/{name}/properties")
        return configuration, properties

    def least_busy(
        self,
        min_num_qubits: int | None = None,
        filters: Callable[[RemoteBackend], bool] | None = None,
        *,
        simulator: bool | None = None,
    ) -> RemoteBackend:
        """The operational backend with the fewest queued jobs (the first one on a tie).

        ``filters`` is called with each candidate backend and keeps those it is true for.
        `BackendNotFoundError` if no backend matches.
        """
        candidates = self.backends(simulator=simulator, min_num_qubits=min_num_qubits)
        if filters is not None:
            candidates = [backend for backend in candidates if filters(backend)]
        best: tuple[int, RemoteBackend] | None = None
        for backend in candidates:
            status = backend.status()
            if status.operational and (best is None or status.pending_jobs < best[0]):
                best = (status.pending_jobs, backend)
        if best is None:
            raise BackendNotFoundError("No operational backend matches the criteria.")
        return best[1]

    def __repr__(self) -> str:
        return f"<RuntimeService url={self.url!r}>"


def _read_metadata(metadata: dict[str, Any] | str | Path | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if isinstance(metadata, str | Path):
        path = Path(metadata)
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputValueError(f"Metadata file {path} does not exist.") from None
        except ValueError as exc:
            raise InputValueError(f"Metadata file {path} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputValueError(f"Metadata file {path} must hold a JSON object.")
        metadata = loaded
    unknown = sorted(set(metadata) - set(_METADATA_KEYS))
    if unknown:
        warnings.warn(
            f"Ignoring unknown program metadata key(s): {', '.join(unknown)}; "
            f"known keys: {', '.join(_METADATA_KEYS)}.",
            stacklevel=3,
        )
    return {key: metadata[key] for key in _METADATA_KEYS if key in metadata}


def _looks_like_source(data: str) -> bool:
    """Whether ``data`` reads as program text rather than a path: several lines, or a line
    of code (brackets, ``=``, ``;``) that names no existing file."""
    if "\n" in data:
        return True
    if not any(char in data for char in "()=;"):
        return False
    try:
        return not Path(data).exists()
    except (OSError, ValueError):  # too long, or a NUL: not a path either
        return True


def _encode_source(data: str | Path) -> str:
    """base64 of the program: ``data`` is the source, or the path of a file, of a folder
    (sent as a zip archive) or of a zip archive."""
    if isinstance(data, Path):
        data = str(data)
    if "def main(" not in data and not _looks_like_source(data):
        path = Path(data)
        if path.is_dir():
            return base64.b64encode(archive_folder(path)).decode("ascii")
        if path.is_file() and path.suffix.lower() == ".zip":
            return base64.b64encode(path.read_bytes()).decode("ascii")
    if "def main(" not in data and _looks_like_source(data):
        raise InputValueError(
            "The program defines no main(): a runtime program is Python source with "
            "def main(backend, user_messenger, **kwargs) at module level."
        )
    if "def main(" not in data:
        path = Path(data)
        try:
            data = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, OSError) as exc:
            raise InputValueError(
                f"{data!r} is neither program source (it has no 'def main(') nor a readable "
                f"file: {exc.strerror or exc}"
            ) from None
    return base64.b64encode(data.encode("utf-8")).decode("ascii")


def _parse_datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
