"""Server settings: defaults, then the config file's ``[server]`` table, then arguments.

The same TOML file also holds the backend catalogue (``[backends.NAME]`` tables,
read by `qruntime.backends.load_catalogue`)::

    [server]
    db = "postgresql+psycopg://postgres@127.0.0.1:5432/qruntime"
    max_program_bytes = 1_000_000
    access_token_ttl = 3600

    [backends.aer_simulator]
    lanes = 4
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from qruntime.errors import InputValueError

__all__ = ["Settings", "default_db_url"]


def default_db_url() -> str:
    """A SQLite file in the user's data directory."""
    data_dir = Path(platformdirs.user_data_dir("qruntime"))
    return f"sqlite:///{data_dir / 'qruntime.db'}"


@dataclass(frozen=True)
class Settings:
    """Everything a server needs to start; `create_app(settings)` owns the resources."""

    db_url: str = field(default_factory=default_db_url)
    host: str = "127.0.0.1"
    port: int = 8000
    config_file: Path | None = None
    #: The API token ``admin`` gets on first start (else a random one is printed).
    admin_token: str | None = None
    #: Largest program source accepted, in bytes (larger gets 413).
    max_program_bytes: int = 1_000_000
    #: Largest job inputs accepted, in bytes (larger gets 413).
    max_input_bytes: int = 64_000_000
    #: Largest max_execution_time a program may ask for, in seconds.
    max_execution_time_limit: int = 8 * 3600
    #: Lifetime of an access token, in seconds.
    access_token_ttl: int = 3600
    #: Whether the built-in programs (hello-world, circuit-runner, ...) are registered.
    builtin_programs: bool = True
    #: Seconds an idle dedicated session keeps its backend after its last job ends.
    interactive_ttl: int = 60
    #: The longest max_time a session may have, and its default, in seconds.
    max_session_ttl: int = 8 * 3600
    #: How many jobs one user may have queued at once (more gets 429).
    max_queued_jobs_per_user: int = 50_000
    #: Seconds of past use that fair share looks at.
    fair_share_window: int = 3600
    #: Whether workers keep caches (pass managers, transpiled circuits, noisy simulators).
    caches: bool = True
    #: Largest final result one job may return, in bytes (larger fails the job).
    max_result_bytes: int = 50_000_000
    #: Largest total of one job's interim results, in bytes (more fails the job).
    max_interim_bytes: int = 50_000_000
    #: Most bytes that decompressing one request's payloads may produce (zlib in
    #: circuits and arrays); a payload that would expand further is refused with 413.
    max_decoded_bytes: int = 256_000_000
    #: Most qubits (and most clbits) a circuit in a job's inputs may declare.
    max_circuit_qubits: int = 10_000
    #: Failed logins allowed per client address, and per API token prefix, in each
    #: ``login_window`` seconds; more get 429 with ``Retry-After``.
    login_failures: int = 20
    login_window: int = 60
    #: Size of a sandboxed job's private ``/tmp`` (shared with ``/var/tmp`` and
    #: ``/dev/shm``), in bytes; it counts against the machine's memory.
    sandbox_tmp_bytes: int = 256 * 1024**2
    #: Address space a job's process (sandboxed or pooled) may add to the zygote's own.
    worker_memory_bytes: int = 4 * 1024**3
    #: Seconds a stopping server (SIGTERM, SIGINT) waits for running jobs to finish; the
    #: jobs still running then are queued again, to run after the restart.
    drain_seconds: int = 30
    #: Where jobs run: ``"local"`` (worker processes on this machine) or ``"ray"``.
    executor: str = "local"
    #: The Ray cluster of the ray executor (``head:6379``); None: ``RAY_ADDRESS``.
    ray_address: str | None = None

    @classmethod
    def load(cls, *, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``QRUNTIME_*`` variables, the file's ``[server]`` table, then overrides.

        Overrides whose value is None are ignored, so CLI options can be passed as they are.
        """
        values: dict[str, Any] = {}
        env = os.environ
        if env.get("QRUNTIME_DB"):
            values["db_url"] = env["QRUNTIME_DB"]
        if env.get("QRUNTIME_ADMIN_TOKEN"):
            values["admin_token"] = env["QRUNTIME_ADMIN_TOKEN"]
        if env.get("QRUNTIME_DRAIN_SECONDS"):
            values["drain_seconds"] = _env_seconds("QRUNTIME_DRAIN_SECONDS")
        if env.get("QRUNTIME_CACHES"):
            values["caches"] = env["QRUNTIME_CACHES"].lower() not in ("0", "false", "no", "off")
        if env.get("QRUNTIME_EXECUTOR"):
            values["executor"] = env["QRUNTIME_EXECUTOR"]
        if env.get("QRUNTIME_RAY_ADDRESS"):
            values["ray_address"] = env["QRUNTIME_RAY_ADDRESS"]
        if config_file is None and env.get("QRUNTIME_CONFIG"):
            config_file = Path(env["QRUNTIME_CONFIG"])
        if config_file is not None:
            values.update(_read_server_table(config_file))
            values["config_file"] = config_file
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


_FILE_KEYS = {
    "db": "db_url",
    "host": "host",
    "port": "port",
    "max_program_bytes": "max_program_bytes",
    "max_input_bytes": "max_input_bytes",
    "max_execution_time_limit": "max_execution_time_limit",
    "access_token_ttl": "access_token_ttl",
    "builtin_programs": "builtin_programs",
    "interactive_ttl": "interactive_ttl",
    "max_session_ttl": "max_session_ttl",
    "max_queued_jobs_per_user": "max_queued_jobs_per_user",
    "fair_share_window": "fair_share_window",
    "caches": "caches",
    "max_result_bytes": "max_result_bytes",
    "max_interim_bytes": "max_interim_bytes",
    "max_decoded_bytes": "max_decoded_bytes",
    "max_circuit_qubits": "max_circuit_qubits",
    "login_failures": "login_failures",
    "login_window": "login_window",
    "sandbox_tmp_bytes": "sandbox_tmp_bytes",
    "worker_memory_bytes": "worker_memory_bytes",
    "drain_seconds": "drain_seconds",
    "executor": "executor",
    "ray_address": "ray_address",
}


def _env_seconds(name: str) -> int:
    text = os.environ[name]
    try:
        seconds = int(text)
    except ValueError:
        raise InputValueError(f"{name} must be a whole number of seconds, not {text!r}.") from None
    if seconds < 0:
        raise InputValueError(f"{name} must be 0 or more seconds, not {seconds}.")
    return seconds


def _read_server_table(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputValueError(f"Config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputValueError(f"Config file {path} is not valid TOML: {exc}") from None
    table = data.get("server", {})
    if not isinstance(table, dict):
        raise InputValueError(f"{path}: [server] must be a table.")
    unknown = sorted(set(table) - set(_FILE_KEYS))
    if unknown:
        raise InputValueError(
            f"{path}: unknown key(s) in [server]: {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(_FILE_KEYS))}."
        )
    types = {f.name: f.type for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = _FILE_KEYS[key]
        expected = {"int": int, "str": str, "bool": bool}.get(
            str(types[name]).split(" ")[0], object
        )
        if expected is not object and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise InputValueError(
                f"{path}: [server] {key} must be of type {expected.__name__}, got {value!r}."
            )
        values[name] = value
    return values
