"""The backend catalogue: which backends a server offers, and what each one is.

A backend is described once, by a :class:`BackendSpec`; its :class:`BackendEntry` derives
everything else from it: the Qiskit ``Target``, and IBM's ``configuration``,
``properties``, ``defaults`` and ``status`` documents for the REST API. Three kinds: an
ideal Aer simulator (``aer``), a noisy device-like backend from a snapshot (``device``:
a generated one, an IBM device snapshot of qiskit-ibm-runtime, or a lab's JSON files),
and a lab's own Qiskit ``BackendV2`` made by a factory (``provider``).

Usage::

    catalogue = Catalogue.from_specs(builtin_specs())   # the built-in backends
    entry = catalogue.get("fake_27q")
    entry.target.num_qubits                             # 27
    entry.configuration()["coupling_map"]

A server reads its catalogue with ``qruntime.backends.load_catalogue`` (built-in
backends, or a TOML file's: :mod:`qruntime.backends.config_file`).
"""

from __future__ import annotations

import functools
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
from qruntime.backends.provider import load_factory_backend
from qruntime.backends.snapshots import (
    INSTALL_HINT,
    find_snapshot,
    runtime_package_missing,
    snapshot_header,
)
from qruntime.errors import BackendNotFoundError, InputValueError

__all__ = [
    "AER_METHODS",
    "BACKEND_NAME",
    "DEFAULT_SNAPSHOTS",
    "BackendEntry",
    "BackendSpec",
    "Catalogue",
    "aer_max_qubits",
    "builtin_specs",
    "read_snapshot",
    "snapshot_spec",
]

BackendKind = Literal["aer", "device", "provider"]

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
# Configuration fields of a snapshot that its documents repeat as they are.
_SNAPSHOT_FACTS = ("backend_version", "online_date", "processor_type")
# IBM device snapshots the default catalogue offers (when qiskit-ibm-runtime is installed):
# name -> (qubits, processor), the values their files hold, for when they cannot be read.
DEFAULT_SNAPSHOTS: dict[str, tuple[int, str]] = {
    "fake_sherbrooke": (127, "Eagle r3"),
    "fake_torino": (133, "Heron r1"),
    "fake_fez": (156, "Heron r2"),
}


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
    files), or ``fake_provider`` (a device snapshot of qiskit-ibm-runtime, by IBM name or
    class name); ``kind="provider"`` is the ``BackendV2`` that ``factory``
    (``package.module:callable``) returns. ``lanes`` is how many jobs may run on it at
    once. A provider's ``num_qubits`` is 0 until its factory has been called
    (`qruntime.backends.config_file.read_specs` calls it).
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
    factory: str | None = None
    #: Where an ``aer`` backend simulates: ``"CPU"``, or ``"GPU"`` (Aer's GPU build).
    aer_device: str = "CPU"
    #: What one of its jobs needs of a Ray node (the ray executor only): ``num_cpus``,
    #: ``num_gpus``, ``memory`` (bytes) and custom resources (``("lab_qpu_1", 1.0)``).
    ray_resources: tuple[tuple[str, float], ...] = ()


#: Why a GPU backend cannot run on this machine; what to install.
GPU_MISSING = (
    "this server's Aer has no GPU device: install qiskit-aer-gpu (pip install "
    "qiskit-aer-gpu, in place of qiskit-aer) on a node with an NVIDIA GPU and CUDA"
)


@functools.cache
def aer_devices() -> tuple[str, ...]:
    """The devices this machine's Aer can simulate on (``("CPU",)``, or with ``"GPU"``)."""
    try:
        from qiskit_aer import AerSimulator

        return tuple(AerSimulator().available_devices())
    except Exception:  # an Aer that cannot even say: only what every build has
        return ("CPU",)


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
    for name, (num_qubits, processor) in DEFAULT_SNAPSHOTS.items():
        specs.append(snapshot_spec(name, num_qubits=num_qubits, processor=processor))
    return specs


def snapshot_spec(name: str, *, num_qubits: int | None = None, processor: str = "") -> BackendSpec:
    """The spec of qiskit-ibm-runtime's device snapshot ``name`` (``fake_torino``).

    Size and processor are read from its configuration file when the package has it;
    otherwise ``num_qubits`` and ``processor`` are used as given.
    """
    try:
        header = snapshot_header(find_snapshot(name))
        num_qubits, processor = header.num_qubits, header.processor
    except InputValueError:
        pass  # Catalogue.from_specs tells why it cannot be offered
    title = name.removeprefix("fake_").replace("_", " ").title()
    return BackendSpec(
        name=name,
        kind="device",
        num_qubits=num_qubits or 0,
        lanes=1,
        description=f"Snapshot of IBM {title} ({processor}, {num_qubits} qubits) "
        "from qiskit-ibm-runtime",
        simulator=False,
        fake_provider=name,
    )


# --------------------------------------------------------------------------- snapshots


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
        snapshot = find_snapshot(spec.fake_provider)
        conf_path, props_path = snapshot.configuration, snapshot.properties
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

    A device's snapshot files are read on first use: a catalogue of every IBM snapshot
    starts in milliseconds (`qruntime.backends.config_file` reads a lab's own snapshot
    files at start-up, so that a bad one fails there). A provider's factory is called
    on first use too, once per process.
    """

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"BackendEntry({self.spec.name!r}, kind={self.spec.kind!r})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run jobs on this machine (it is listed, not
        operational); None when it can."""
        if self.spec.kind == "aer" and self.spec.aer_device not in aer_devices():
            return (
                GPU_MISSING
                if self.spec.aer_device == "GPU"
                else (f"this server's Aer has no {self.spec.aer_device} device")
            )
        return None

    @functools.cached_property
    def _device(self) -> tuple[Target, dict[str, Any]] | None:
        """A device's target and the few snapshot fields its documents repeat.

        The snapshot's JSON itself is not kept: a large device's is megabytes in memory.
        """
        if self.spec.kind != "device":
            return None
        configuration, properties = read_snapshot(self.spec)
        facts = {key: configuration.get(key) for key in _SNAPSHOT_FACTS}
        facts["last_update_date"] = (properties or {}).get("last_update_date")
        return target_from_ibm_json(configuration, properties), facts

    @property
    def backend(self) -> Any:
        """A provider's ``BackendV2``, made by its factory (``InputValueError`` if that fails)."""
        if self.spec.kind != "provider" or self.spec.factory is None:
            raise InputValueError(f"backend {self.name!r} is not a provider backend")
        return load_factory_backend(self.name, self.spec.factory)

    @functools.cached_property
    def target(self) -> Target:
        if self.spec.kind == "provider":
            target: Target = self.backend.target
            return target
        if self._device is None:
            return _ideal_target(self.spec.num_qubits)
        return self._device[0]

    def _snapshot_field(self, key: str, default: Any) -> Any:
        if self.spec.kind == "provider":
            attribute = {"backend_version": "backend_version", "online_date": "online_date"}
            value = getattr(self.backend, attribute.get(key, ""), None)
            return default if value is None else value
        value = None if self._device is None else self._device[1].get(key)
        return default if value is None else value

    @functools.cached_property
    def _configuration(self) -> dict[str, Any]:
        return target_to_configuration(
            self.target,
            backend_name=self.spec.name,
            backend_version=str(self._snapshot_field("backend_version", "1.0.0")),
            simulator=self.spec.simulator,
            max_shots=self.spec.max_shots,
            max_experiments=self.spec.max_experiments,
            description=self.spec.description or self._provider_description(),
            online_date=self._snapshot_field("online_date", "2024-01-01T00:00:00+00:00"),
            processor_type=self._snapshot_field("processor_type", None),
        )

    def _provider_description(self) -> str:
        if self.spec.kind != "provider":
            return ""
        return str(getattr(self.backend, "description", None) or "")

    @functools.cached_property
    def _properties(self) -> dict[str, Any] | None:
        if self.spec.kind == "provider":
            return target_to_properties(
                self.target,
                backend_name=self.spec.name,
                backend_version=self.configuration()["backend_version"],
            )
        if self._device is None:
            return None
        last = self._snapshot_field("last_update_date", "2024-01-01T00:00:00+00:00")
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
        reason = self.unavailable_reason
        if reason is not None:
            operational, status_msg = False, reason
        return {
            "backend_name": self.spec.name,
            "backend_version": str(self._snapshot_field("backend_version", "1.0.0")),
            "operational": operational,
            "pending_jobs": pending_jobs,
            "status_msg": status_msg,
        }


class Catalogue:
    """The backends a server offers, by name, in the order they were configured.

    ``unavailable`` maps the backends it cannot offer here to the reason, which says
    what to install: the default IBM device snapshots on a server without
    qiskit-ibm-runtime. Asking for one of them raises ``BackendNotFoundError`` with it.
    """

    def __init__(
        self, entries: Mapping[str, BackendEntry], unavailable: Mapping[str, str] | None = None
    ) -> None:
        self._entries = dict(entries)
        self.unavailable = dict(unavailable or {})

    @classmethod
    def from_specs(cls, specs: list[BackendSpec]) -> Catalogue:
        entries: dict[str, BackendEntry] = {}
        unavailable: dict[str, str] = {}
        for spec in specs:
            reason = _why_unavailable(spec)
            if reason is None:
                entries[spec.name] = BackendEntry(spec)
            else:
                unavailable[spec.name] = reason
        return cls(entries, unavailable)

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> BackendEntry:
        try:
            return self._entries[name]
        except KeyError:
            if name in self.unavailable:
                raise BackendNotFoundError(self.unavailable[name], backend=name) from None
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


def _why_unavailable(spec: BackendSpec) -> str | None:
    """Why this server cannot offer ``spec`` (a missing package), or None."""
    if spec.fake_provider is None:
        return None
    if runtime_package_missing():
        return (
            f"Backend {spec.name!r} is an IBM device snapshot and needs the qiskit-ibm-runtime "
            f"package on the server: run `{INSTALL_HINT}` there and restart it"
        )
    try:
        find_snapshot(spec.fake_provider)
    except InputValueError as exc:
        return f"Backend {spec.name!r} cannot be offered: {exc}"
    return None
