"""Read the backend catalogue from a TOML file.

The format::

    [defaults]
    replace = false            # true: offer only the backends listed below

    [backends.aer_simulator]   # same name as a built-in: replaces it
    kind = "aer"               # "aer" (ideal simulator) or "device" (noisy, device-like)
    lanes = 4
    method = "automatic"       # aer only; also num_qubits

    [backends.fake_27q]
    kind = "device"
    device = "fake_27q"        # or fake_provider = "FakeKolkataV2", or both
                               # snapshot_configuration / snapshot_properties = "file.json"

Relative snapshot paths are read from the TOML file's folder. Every mistake raises
``InputValueError`` naming the file, the backend and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from qruntime.backends.catalogue import (
    AER_METHODS,
    BACKEND_NAME,
    BackendSpec,
    aer_max_qubits,
    builtin_specs,
    read_snapshot,
)
from qruntime.backends.devices import BUILTIN_DEVICES
from qruntime.errors import InputValueError

__all__ = ["read_catalogue_tables", "read_specs", "specs_from_tables"]

# key -> expected Python type in the TOML document
_COMMON_KEYS: dict[str, type] = {
    "kind": str,
    "lanes": int,
    "description": str,
    "max_shots": int,
    "max_experiments": int,
}
_AER_KEYS: dict[str, type] = {"method": str, "num_qubits": int}
_DEVICE_KEYS: dict[str, type] = {
    "device": str,
    "snapshot_configuration": str,
    "snapshot_properties": str,
    "fake_provider": str,
}
_POSITIVE = ("lanes", "max_shots", "max_experiments", "num_qubits")


class _Reader:
    """Turns one file's tables into specs; knows the file name for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, *, backend: str | None = None, key: str | None = None) -> NoReturn:
        where = [f"{self.path}"]
        if backend is not None:
            where.append(f"backend {backend!r}")
        if key is not None:
            where.append(f"key {key!r}")
        raise InputValueError(f"{', '.join(where)}: {message}", file=str(self.path))

    def spec(self, name: str, table: Any) -> BackendSpec:
        if not BACKEND_NAME.match(name):
            self.fail(
                "a backend name is a letter then letters, digits, '_', '.', '-'", backend=name
            )
        if not isinstance(table, dict):
            self.fail("must be a table", backend=name)
        kind = table.get("kind")
        if kind not in ("aer", "device"):
            self.fail(f"kind must be 'aer' or 'device', not {kind!r}", backend=name, key="kind")
        allowed = _COMMON_KEYS | (_AER_KEYS if kind == "aer" else _DEVICE_KEYS)
        for key, value in table.items():
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.fail(
                    f"unknown key for a {kind} backend (allowed: {hint})", backend=name, key=key
                )
            expected = allowed[key]
            # bool is an int in Python; "lanes = true" is still a mistake.
            if not isinstance(value, expected) or isinstance(value, bool):
                self.fail(
                    f"must be {expected.__name__}, not {type(value).__name__}",
                    backend=name,
                    key=key,
                )
            if key in _POSITIVE and isinstance(value, int) and value < 1:
                self.fail("must be at least 1", backend=name, key=key)
        return self._aer(name, table) if kind == "aer" else self._device(name, table)

    def _aer(self, name: str, table: dict[str, Any]) -> BackendSpec:
        method = table.get("method", "automatic")
        if method not in AER_METHODS:
            self.fail(f"must be one of {', '.join(AER_METHODS)}", backend=name, key="method")
        return BackendSpec(
            name=name,
            kind="aer",
            num_qubits=table.get("num_qubits", aer_max_qubits(method)),
            lanes=table.get("lanes", 2),
            description=table.get("description", f"Ideal Aer simulator ({method} method)"),
            simulator=True,
            max_shots=table.get("max_shots", 100_000),
            max_experiments=table.get("max_experiments", 300),
            method=method,
        )

    def _device(self, name: str, table: dict[str, Any]) -> BackendSpec:
        if table.get("lanes", 1) != 1:
            self.fail("a device-like backend runs one job at a time: 1", backend=name, key="lanes")
        sources = [
            key for key in ("device", "fake_provider", "snapshot_configuration") if key in table
        ]
        if len(sources) != 1:
            self.fail(
                "give exactly one of device, fake_provider or snapshot_configuration "
                "(with snapshot_properties)",
                backend=name,
            )
        if ("snapshot_configuration" in table) != ("snapshot_properties" in table):
            self.fail(
                "snapshot_configuration and snapshot_properties go together",
                backend=name,
                key="snapshot_properties",
            )
        device = table.get("device")
        if device is not None and device not in BUILTIN_DEVICES:
            known = ", ".join(sorted(BUILTIN_DEVICES))
            self.fail(f"unknown device {device!r} (known: {known})", backend=name, key="device")
        paths: dict[str, Path | None] = {}
        for key in ("snapshot_configuration", "snapshot_properties"):
            paths[key] = None
            if key in table:
                path = Path(table[key]).expanduser()
                path = path if path.is_absolute() else self.path.parent / path
                if not path.is_file():
                    self.fail(f"file {str(path)!r} does not exist", backend=name, key=key)
                paths[key] = path
        num_qubits = BUILTIN_DEVICES[device].num_qubits if device is not None else 0
        return BackendSpec(
            name=name,
            kind="device",
            num_qubits=num_qubits,  # for snapshots: filled in from the file by read_specs
            lanes=1,
            description=table.get("description", ""),
            simulator=False,
            max_shots=table.get("max_shots", 100_000),
            max_experiments=table.get("max_experiments", 300),
            device=device,
            snapshot_configuration=paths["snapshot_configuration"],
            snapshot_properties=paths["snapshot_properties"],
            fake_provider=table.get("fake_provider"),
        )


def read_catalogue_tables(path: Path) -> dict[str, Any]:
    """The file's ``[defaults]`` and ``[backends]`` tables, and nothing else of it.

    What the worker processes are given instead of the file, which may also hold the
    server's settings (a database URL with its password): a sandboxed job's memory is
    a copy of theirs.
    """
    reader = _Reader(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        reader.fail("the backend configuration file does not exist")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reader.fail(f"not a readable TOML file: {exc}")
    for key in document:
        # [server] belongs to the server's settings, which share this file.
        if key not in ("defaults", "backends", "server"):
            reader.fail("unknown top-level table (allowed: server, defaults, backends)", key=key)
    return {key: document[key] for key in ("defaults", "backends") if key in document}


def read_specs(path: Path) -> list[BackendSpec]:
    """The backend specs a TOML file describes, merged with the built-ins unless replaced."""
    return specs_from_tables(path, read_catalogue_tables(path))


def specs_from_tables(path: Path, document: dict[str, Any]) -> list[BackendSpec]:
    """The specs of `read_catalogue_tables`' tables; ``path`` places relative snapshot paths."""
    reader = _Reader(path)
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        reader.fail("must be a table", key="defaults")
    for key, value in defaults.items():
        if key != "replace":
            reader.fail("unknown key in [defaults] (allowed: replace)", key=key)
        if not isinstance(value, bool):
            reader.fail("must be true or false", key="replace")
    backends = document.get("backends", {})
    if not isinstance(backends, dict):
        reader.fail("must be a table of backends", key="backends")

    specs = {} if defaults.get("replace", False) else {s.name: s for s in builtin_specs()}
    for name, table in backends.items():
        spec = reader.spec(name, table)
        if spec.kind == "device" and spec.device is None:
            # Read the snapshot once now: a broken file fails here, and the size is known.
            try:
                configuration, _ = read_snapshot(spec)
            except InputValueError as exc:
                reader.fail(str(exc), backend=name)
            spec = replace(spec, num_qubits=int(configuration["n_qubits"]))
        specs[name] = spec
    if not specs:
        reader.fail("no backends: [defaults] replace = true and no [backends.<name>] tables")
    return list(specs.values())
