"""The backend catalogue: which backends a server offers, and what each one is.

A backend is described once, by a :class:`BackendSpec`; its :class:`BackendEntry` derives
everything else from it: the Qiskit ``Target``, and IBM's ``configuration``,
``properties``, ``defaults`` and ``status`` documents for the REST API.

Usage::

    catalogue = load_catalogue()              # the built-in backends
    entry = catalogue.get("fake_27q")
    entry.target.num_qubits                   # 27
    entry.configuration()["coupling_map"]
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.transpiler import Target

from qruntime.backends.devices import BUILTIN_DEVICES, generate_snapshot
from qruntime.backends.ibm_format import (
    CONTROL_FLOW_OPS,
    NON_UNITARY_OPS,
    target_from_ibm_json,
    target_to_configuration,
    target_to_properties,
)
from qruntime.errors import BackendNotFoundError, InputValueError

__all__ = [
    "AER_METHODS",
    "BACKEND_NAME",
    "BackendEntry",
    "BackendSpec",
    "Catalogue",
    "aer_max_qubits",
    "builtin_specs",
    "load_catalogue",
    "read_snapshot",
]

BackendKind = Literal["aer", "device"]

AER_METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
)
# Standard gates Aer's ideal simulator executes natively (checked against Aer in the tests).
AER_GATES = (
    "ccx", "ccz", "cp", "crx", "cry", "crz", "cswap", "csx", "cu", "cu1", "cu3", "cx", "cy",
    "cz", "ecr", "h", "id", "p", "r", "rx", "rxx", "ry", "ryy", "rz", "rzx", "rzz", "s",
    "sdg", "swap", "sx", "sxdg", "t", "tdg", "u", "u1", "u2", "u3", "x", "y", "z",
)  # fmt: skip
BACKEND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def aer_max_qubits(method: str = "automatic") -> int:
    """The most qubits Aer accepts for ``method`` on this machine (Aer's own rule).

    Aer sizes a state vector to the machine's memory (16 bytes per amplitude); computed
    here without importing Aer, which takes half a second.
    """
    if method in ("stabilizer",):
        return 10_000
    if method in ("matrix_product_state", "extended_stabilizer"):
        return 63
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 16 * 2**30
    statevector = int(math.log2(memory / 16))
    return statevector // 2 if method == "density_matrix" else statevector


@dataclass(frozen=True)
class BackendSpec:
    """What the catalogue knows about one backend, as given in the configuration file.

    ``kind="aer"`` is an ideal Aer simulator; ``kind="device"`` is a noisy device-like
    backend whose data comes from exactly one of: ``device`` (a built-in generated
    snapshot), ``snapshot_configuration`` + ``snapshot_properties`` (IBM-format JSON
    files), or ``fake_provider`` (a class name from qiskit-ibm-runtime's fake provider).
    ``lanes`` is how many jobs may run on it at once.
    """

    name: str
    kind: BackendKind
    num_qubits: int
    lanes: int = 2
    description: str = ""
    simulator: bool = True
    max_shots: int = 100_000
    max_experiments: int = 300
    method: str = "automatic"
    device: str | None = None
    snapshot_configuration: Path | None = None
    snapshot_properties: Path | None = None
    fake_provider: str | None = None


def builtin_specs() -> list[BackendSpec]:
    """The backends a server offers when no configuration file says otherwise."""
    specs = [
        BackendSpec(
            name="aer_simulator",
            kind="aer",
            num_qubits=aer_max_qubits(),
            lanes=2,
            description="Ideal Aer simulator (automatic method)",
        )
    ]
    for name, layout in BUILTIN_DEVICES.items():
        specs.append(
            BackendSpec(
                name=name,
                kind="device",
                num_qubits=layout.num_qubits,
                lanes=1,
                description=layout.description,
                simulator=False,
                device=name,
            )
        )
    return specs


# --------------------------------------------------------------------------- snapshots


def _fake_provider_files(class_name: str) -> tuple[Path, Path]:
    """The configuration and properties files qiskit-ibm-runtime ships for a fake backend.

    Found on disk: importing qiskit-ibm-runtime costs 1.4 s and it is not a dependency.
    """
    spec = importlib.util.find_spec("qiskit_ibm_runtime")
    if spec is None or not spec.submodule_search_locations:
        raise InputValueError(
            f"fake_provider = {class_name!r} needs the qiskit-ibm-runtime package: "
            "run `pip install qiskit-ibm-runtime`"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "fake_provider" / "backends"
    pattern = re.compile(rf"^class {re.escape(class_name)}\(", re.MULTILINE)
    for module in sorted(root.glob("*/fake_*.py")):
        source = module.read_text(encoding="utf-8")
        if not pattern.search(source):
            continue
        conf = re.search(r"conf_filename\s*=\s*[\"']([^\"']+)[\"']", source)
        props = re.search(r"props_filename\s*=\s*[\"']([^\"']+)[\"']", source)
        if conf and props:
            return module.parent / conf.group(1), module.parent / props.group(1)
    raise InputValueError(
        f"fake_provider = {class_name!r}: no such backend with configuration and properties "
        f"files in qiskit-ibm-runtime's fake provider (e.g. 'FakeKolkataV2')"
    )


def _read_json(path: Path, *, backend: str, key: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputValueError(
            f"backend {backend!r}: {key} file {str(path)!r} does not exist"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputValueError(f"backend {backend!r}: {key} file {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputValueError(f"backend {backend!r}: {key} file {str(path)!r} is not an object")
    return data


def read_snapshot(spec: BackendSpec) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The IBM-format configuration and properties a device spec points at."""
    if spec.device is not None:
        if spec.device not in BUILTIN_DEVICES:
            known = ", ".join(sorted(BUILTIN_DEVICES))
            raise InputValueError(
                f"backend {spec.name!r}: unknown device {spec.device!r} (known: {known})"
            )
        return generate_snapshot(spec.device, BUILTIN_DEVICES[spec.device])
    if spec.fake_provider is not None:
        conf_path, props_path = _fake_provider_files(spec.fake_provider)
    elif spec.snapshot_configuration is not None and spec.snapshot_properties is not None:
        conf_path, props_path = spec.snapshot_configuration, spec.snapshot_properties
    else:
        raise InputValueError(f"backend {spec.name!r}: a device needs a snapshot source")
    configuration = _read_json(conf_path, backend=spec.name, key="snapshot_configuration")
    properties = _read_json(props_path, backend=spec.name, key="snapshot_properties")
    if not isinstance(configuration.get("n_qubits"), int):
        raise InputValueError(
            f"backend {spec.name!r}: {str(conf_path)!r} has no integer n_qubits: "
            "is it an IBM backend configuration?"
        )
    return configuration, properties


def _ideal_target(num_qubits: int) -> Target:
    target = Target(num_qubits=num_qubits)
    standard = get_standard_gate_name_mapping()
    for name in AER_GATES:
        # properties None: the gate is available on every qubit tuple, so no coupling map.
        target.add_instruction(standard[name], name=name)
    for name in sorted(NON_UNITARY_OPS):
        target.add_instruction(standard[name], {(q,): None for q in range(num_qubits)})
    for name, op in CONTROL_FLOW_OPS.items():
        target.add_instruction(op, name=name)
    return target


# --------------------------------------------------------------------------- entries


class BackendEntry:
    """One backend of the catalogue; its target and documents are computed once, on demand.

    A device's snapshot is read when the entry is made, so a bad file fails at start-up.
    """

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self._snapshot = read_snapshot(spec) if spec.kind == "device" else None

    def __repr__(self) -> str:
        return f"BackendEntry({self.spec.name!r}, kind={self.spec.kind!r})"

    @property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def target(self) -> Target:
        if self._snapshot is None:
            return _ideal_target(self.spec.num_qubits)
        configuration, properties = self._snapshot
        return target_from_ibm_json(configuration, properties)

    def _snapshot_field(self, key: str, default: Any) -> Any:
        return default if self._snapshot is None else self._snapshot[0].get(key, default)

    @functools.cached_property
    def _configuration(self) -> dict[str, Any]:
        return target_to_configuration(
            self.target,
            backend_name=self.spec.name,
            backend_version=str(self._snapshot_field("backend_version", "1.0.0")),
            simulator=self.spec.simulator,
            max_shots=self.spec.max_shots,
            max_experiments=self.spec.max_experiments,
            description=self.spec.description,
            online_date=self._snapshot_field("online_date", "2024-01-01T00:00:00+00:00"),
            processor_type=self._snapshot_field("processor_type", None),
        )

    @functools.cached_property
    def _properties(self) -> dict[str, Any] | None:
        if self._snapshot is None:
            return None
        last = (self._snapshot[1] or {}).get("last_update_date", "2024-01-01T00:00:00+00:00")
        return target_to_properties(
            self.target,
            backend_name=self.spec.name,
            backend_version=self.configuration()["backend_version"],
            last_update_date=str(last),
        )

    def configuration(self) -> dict[str, Any]:
        """IBM's configuration document (a fresh copy: callers may change it)."""
        return json.loads(json.dumps(self._configuration))  # type: ignore[no-any-return]

    def properties(self) -> dict[str, Any] | None:
        """IBM's properties document, or None for an ideal simulator (a fresh copy)."""
        props = self._properties
        return None if props is None else json.loads(json.dumps(props))

    def defaults(self) -> dict[str, Any] | None:
        """IBM's pulse defaults: only the estimated frequencies, as pulse control is gone."""
        props = self._properties
        if props is None:
            return None
        freqs = []
        for records in props["qubits"]:
            freq = next((r["value"] for r in records if r["name"] == "frequency"), None)
            freqs.append(freq)
        return {
            "qubit_freq_est": freqs,
            "meas_freq_est": [7.0] * len(freqs),
            "buffer": 0,
            "pulse_library": [],
            "cmd_def": [],
        }

    def status(
        self, *, pending_jobs: int, operational: bool = True, status_msg: str = "active"
    ) -> dict[str, Any]:
        """IBM's status document; the caller knows the queue, the catalogue does not."""
        return {
            "backend_name": self.spec.name,
            "backend_version": self._snapshot_field("backend_version", "1.0.0"),
            "operational": operational,
            "pending_jobs": pending_jobs,
            "status_msg": status_msg,
        }


class Catalogue:
    """The backends a server offers, by name, in the order they were configured."""

    def __init__(self, entries: Mapping[str, BackendEntry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def from_specs(cls, specs: list[BackendSpec]) -> Catalogue:
        return cls({spec.name: BackendEntry(spec) for spec in specs})

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> BackendEntry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise BackendNotFoundError(
                f"Backend {name!r} not found; this server offers: {known}", backend=name
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[BackendEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The built-in catalogue, or the one a TOML file describes.

    The file's format is described in :mod:`qruntime.backends.config_file`. Every mistake
    in it raises ``InputValueError`` naming the file, the backend and the key.
    """
    if path is None:
        return Catalogue.from_specs(builtin_specs())
    # Imported here: the file reader builds on this module's specs.
    from qruntime.backends.config_file import read_specs

    return Catalogue.from_specs(read_specs(Path(path)))
