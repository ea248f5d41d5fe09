"""Read the backend catalogue from a TOML file.

The format::

    [defaults]
    replace = false            # true: offer only the backends listed below

    [catalogue]
    fake_provider = "all"      # IBM device snapshots of qiskit-ibm-runtime, each under its
                               # own name; or a list of names, patterns ("fake_k*"),
                               # class names or processor families ("Heron", "Eagle")

    [backends.aer_simulator]   # same name as a built-in: replaces it
    kind = "aer"               # "aer" (ideal simulator), "device" (noisy, device-like)
                               # or "provider" (a Python factory's BackendV2)
    lanes = 4                  # aer and provider only (a device runs one job at a time);
    method = "automatic"       # aer: also num_qubits, and device = "GPU" (qiskit-aer-gpu)
    ray_resources = { num_cpus = 1 }   # any kind, ray executor only: what one job needs of
                               # a node (num_cpus, num_gpus, memory in bytes, custom names)

    [backends.fake_27q]
    kind = "device"
    device = "fake_27q"        # or fake_provider = "fake_torino" (or "FakeTorino"), or both
                               # snapshot_configuration / snapshot_properties = "file.json"

    [backends.lab_qpu]
    kind = "provider"
    factory = "lab_driver.qiskit:make_backend"   # called once per process: a BackendV2
    simulator = false          # what clients are told (default false); lanes default 1

Relative snapshot paths are read from the TOML file's folder. Every mistake raises
``InputValueError`` naming the file, the backend and the key. `read_specs` calls each
provider's factory (a failure is one such line); `specs_from_tables`, what the worker
zygote uses, does not: the zygote never runs a lab's code before it forks.
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
    Catalogue,
    aer_max_qubits,
    builtin_specs,
    read_snapshot,
    snapshot_spec,
)
from qruntime.backends.devices import BUILTIN_DEVICES
from qruntime.backends.provider import FACTORY, load_factory_backend
from qruntime.backends.snapshots import find_snapshot, select_snapshots, snapshot_header
from qruntime.errors import InputValueError

__all__ = ["load_catalogue", "read_catalogue_tables", "read_specs", "specs_from_tables"]

# The tables of the file that describe the catalogue (the workers get only these).
_CATALOGUE_TABLES = ("defaults", "catalogue", "backends")

# key -> expected Python type in the TOML document
_COMMON_KEYS: dict[str, type] = {
    "kind": str,
    "description": str,
    "max_shots": int,
    "max_experiments": int,
    "ray_resources": dict,  # what one job needs of a Ray node (the ray executor only)
}
# A device-like backend runs one job at a time: only a simulator has lanes.
_AER_KEYS: dict[str, type] = {"lanes": int, "method": str, "num_qubits": int, "device": str}
AER_DEVICES = ("CPU", "GPU")
_DEVICE_KEYS: dict[str, type] = {
    "device": str,
    "snapshot_configuration": str,
    "snapshot_properties": str,
    "fake_provider": str,
}
_PROVIDER_KEYS: dict[str, type] = {"factory": str, "lanes": int, "simulator": bool}
_KIND_KEYS = {"aer": _AER_KEYS, "device": _DEVICE_KEYS, "provider": _PROVIDER_KEYS}
_POSITIVE = ("lanes", "max_shots", "max_experiments", "num_qubits")


class _Reader:
    """Turns one file's tables into specs; knows the file name for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, *, backend: str | None = None, key: str | None = None) -> NoReturn:
        """Raise one line naming file, table and key: ``FILE: [backends.B] KEY: ...``."""
        where = [f"[backends.{backend}]"] if backend is not None else []
        if key is not None:
            where.append(key)
        place = " ".join(where)
        raise InputValueError(
            f"{self.path}: {place + ': ' if place else ''}{message}", file=str(self.path)
        )

    def spec(self, name: str, table: Any) -> BackendSpec:
        if not BACKEND_NAME.match(name):
            self.fail(
                "a backend name is a letter then letters, digits, '_', '.', '-'", backend=name
            )
        if not isinstance(table, dict):
            self.fail("must be a table", backend=name)
        kind = table.get("kind")
        if kind not in _KIND_KEYS:
            self.fail(
                f"kind must be 'aer', 'device' or 'provider', not {kind!r}",
                backend=name,
                key="kind",
            )
        allowed = _COMMON_KEYS | _KIND_KEYS[kind]
        for key, value in table.items():
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                why = f"unknown key for {'an' if kind == 'aer' else 'a'} {kind} backend"
                if key == "lanes":
                    why = "a device-like backend runs one job at a time: leave lanes out"
                self.fail(f"{why} (allowed: {hint})", backend=name, key=key)
            expected = allowed[key]
            # bool is an int in Python; "lanes = true" is still a mistake.
            if not isinstance(value, expected) or (
                expected is not bool and isinstance(value, bool)
            ):
                self.fail(
                    f"must be {expected.__name__}, not {type(value).__name__}",
                    backend=name,
                    key=key,
                )
            if key in _POSITIVE and isinstance(value, int) and value < 1:
                self.fail("must be at least 1", backend=name, key=key)
        if kind == "provider":
            spec = self._provider(name, table)
        else:
            spec = self._aer(name, table) if kind == "aer" else self._device(name, table)
        if "ray_resources" in table:
            spec = replace(spec, ray_resources=self._ray_resources(name, table["ray_resources"]))
        return spec

    def _ray_resources(self, name: str, table: dict[str, Any]) -> tuple[tuple[str, float], ...]:
        """``{num_cpus = 1, num_gpus = 1, memory = 2e9, lab_qpu_1 = 1}``: amounts above 0."""
        resources = []
        for key, value in table.items():
            if not BACKEND_NAME.match(key):
                self.fail(f"{key!r} is not a resource name", backend=name, key="ray_resources")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                self.fail(
                    f"{key} must be a number above 0, not {value!r}",
                    backend=name,
                    key="ray_resources",
                )
            resources.append((key, float(value)))
        return tuple(sorted(resources))

    def _provider(self, name: str, table: dict[str, Any]) -> BackendSpec:
        factory = table.get("factory")
        if factory is None:
            self.fail("a provider backend needs factory = 'package.module:callable'", backend=name)
        if not FACTORY.match(factory):
            self.fail(f"{factory!r} is not 'package.module:callable'", backend=name, key="factory")
        return BackendSpec(
            name=name,
            kind="provider",
            num_qubits=0,  # known once the factory has run: read_specs fills it in
            lanes=table.get("lanes", 1),
            description=table.get("description", ""),
            simulator=table.get("simulator", False),
            max_shots=table.get("max_shots", 100_000),
            max_experiments=table.get("max_experiments", 300),
            factory=factory,
        )

    def catalogue_specs(self, table: Any) -> list[BackendSpec]:
        """The snapshots ``[catalogue] fake_provider`` names, as device specs."""
        if not isinstance(table, dict):
            self.fail("must be a table", key="catalogue")
        for key in table:
            if key != "fake_provider":
                self.fail("unknown key in [catalogue] (allowed: fake_provider)", key=key)
        selection = table.get("fake_provider", [])
        if not isinstance(selection, str) and not (
            isinstance(selection, list) and all(isinstance(item, str) for item in selection)
        ):
            self.fail('must be "all" or a list of strings', key="[catalogue] fake_provider")
        try:
            return [snapshot_spec(s.name) for s in select_snapshots(selection)]
        except InputValueError as exc:
            self.fail(str(exc), key="[catalogue] fake_provider")

    def _aer(self, name: str, table: dict[str, Any]) -> BackendSpec:
        method = table.get("method", "automatic")
        if method not in AER_METHODS:
            self.fail(f"must be one of {', '.join(AER_METHODS)}", backend=name, key="method")
        device = table.get("device", "CPU")
        if device not in AER_DEVICES:
            self.fail(f"must be one of {', '.join(AER_DEVICES)}", backend=name, key="device")
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
            aer_device=device,
        )

    def _device(self, name: str, table: dict[str, Any]) -> BackendSpec:
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


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The built-in catalogue, or the one a TOML file describes (the format above).

    Every mistake in the file raises ``InputValueError`` naming the file, the backend
    and the key.
    """
    if path is None:
        return Catalogue.from_specs(builtin_specs())
    return Catalogue.from_specs(read_specs(Path(path)))


def read_catalogue_tables(path: Path) -> dict[str, Any]:
    """The file's ``[defaults]``, ``[catalogue]`` and ``[backends]`` tables, nothing else of it.

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
        if key not in ("defaults", "catalogue", "backends", "server"):
            reader.fail(
                "unknown top-level table (allowed: server, defaults, catalogue, backends)",
                key=key,
            )
    return {key: document[key] for key in _CATALOGUE_TABLES if key in document}


def read_specs(path: Path) -> list[BackendSpec]:
    """The backend specs a TOML file describes, merged with the built-ins unless replaced.

    Each provider's factory is called here (once per process): its size is filled in,
    and a factory that fails raises ``InputValueError`` naming the backend and the error.
    """
    reader = _Reader(path)
    specs = specs_from_tables(path, read_catalogue_tables(path))
    for index, spec in enumerate(specs):
        if spec.kind == "provider" and spec.factory is not None:
            try:
                backend = load_factory_backend(spec.name, spec.factory)
            except InputValueError as exc:
                reader.fail(str(exc.details.get("reason", exc)), backend=spec.name)
            specs[index] = replace(spec, num_qubits=int(backend.target.num_qubits))
    return specs


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
    if "catalogue" in document:
        specs.update((s.name, s) for s in reader.catalogue_specs(document["catalogue"]))
    for name, table in backends.items():
        spec = reader.spec(name, table)
        try:
            if spec.fake_provider is not None:
                # The package's own files: the size is enough now, the rest on first use.
                num_qubits = snapshot_header(find_snapshot(spec.fake_provider)).num_qubits
                spec = replace(spec, num_qubits=num_qubits)
            elif spec.kind == "device" and spec.device is None:
                # A lab's files are read once now: a broken one fails here.
                configuration, _ = read_snapshot(spec)
                spec = replace(spec, num_qubits=int(configuration["n_qubits"]))
        except InputValueError as exc:
            reader.fail(str(exc), backend=name, key=_source_key(spec))
        specs[name] = spec
    if not specs:
        reader.fail("no backends: [defaults] replace = true and no [backends.<name>] tables")
    return list(specs.values())


def _source_key(spec: BackendSpec) -> str:
    return "fake_provider" if spec.fake_provider is not None else "snapshot_configuration"
